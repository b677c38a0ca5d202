# Building beside the ROS 2 wheels of the Python package index (pip-installed rclpy, no apt ROS 2).
#
# Those wheels were built in a manylinux image, and the <pkg>__rosidl_generator_py targets they export name that
# image's Python and NumPy include folders (/opt/python/...). CMake refuses imported targets whose include folders do
# not exist, so an interface package that depends on their messages would not configure. Once every target is known
# (deferred to the end of this directory), each such folder is replaced by this build's Python or NumPy headers.
# With an apt-installed ROS 2 no target names /opt/python and nothing changes.
function(_ha2g_use_this_python_headers)
  find_package(Python3 REQUIRED COMPONENTS Development NumPy)
  get_property(targets DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs "${target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs MATCHES "(^|;)/opt/python/")
      continue()
    endif()
    set(kept "")
    foreach(dir IN LISTS dirs)
      if(NOT dir MATCHES "^/opt/python/")
        list(APPEND kept "${dir}")
      endif()
    endforeach()
    list(APPEND kept ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
    list(REMOVE_DUPLICATES kept)
    set_target_properties("${target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
  endforeach()
endfunction()
cmake_language(DEFER CALL _ha2g_use_this_python_headers)
