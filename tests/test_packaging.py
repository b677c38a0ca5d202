"""Packaging: package.xml's rosdep keys resolve on every supported ROS 2 distribution, every module the robot runtime
imports is declared (package.xml for rosdep, requirements/ for pip) and nothing else is, and an install ships the
URDFs of the profiles that do not come from a separate package.

The rosdep rules are the ones vendored in tests/data/rosdep_keys.yaml (copied from ros/rosdistro, commits noted
there): no network here. What runs on the robot is found by following the imports of the nodes, the bringup and the
launch files through the package, as Python would, without importing anything.
"""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import yaml

from ha2g_ros.retargeting import shipped_profiles
from ha2g_ros.retargeting.robot import resolve_urdf

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "ha2g_ros"  # the ament_python package folder
KEYS = yaml.safe_load((REPO / "tests" / "data" / "rosdep_keys.yaml").read_text())
# The repository's packages: rosdep resolves them from the workspace (`--from-paths src --ignore-src`)
WORKSPACE_PACKAGES = {path.parent.name: path for path in REPO.glob("*/package.xml")}
DISTRIBUTIONS = sorted(KEYS["distributions"])
ENTRY_MODULES = ["ha2g_ros.gesture_node", "ha2g_ros.microphone_node", "ha2g_ros.bringup", "ha2g_ros.say",
                 "ha2g_ros.speech_player"]
# What an import of the runtime needs: (rosdep key, or None where rosdistro has none; PyPI distribution, or None for
# ROS 2 packages, which are never pip requirements). A new import fails the test until it is added here and declared.
RUNTIME_IMPORTS = {
    "numpy": ("python3-numpy", "numpy"),
    "scipy": ("python3-scipy", "scipy"),
    "yaml": ("python3-yaml", "pyyaml"),
    "tqdm": ("python3-tqdm", "tqdm"),
    "soundfile": ("python3-soundfile", "soundfile"),
    "sounddevice": ("python3-sounddevice-pip", "sounddevice"),
    "onnxruntime": ("python3-onnxruntime-pip", "onnxruntime"),
    "pinocchio": ("pinocchio", "pin"),
    "coal": ("coal", "coal"),
    "daqp": (None, "daqp"),
    "soxr": (None, "soxr"),
}
ROS_MODULES = {"rclpy", "std_msgs", "sensor_msgs", "trajectory_msgs", "visualization_msgs", "geometry_msgs",
               "builtin_interfaces", "rcl_interfaces", "diagnostic_msgs", "ament_index_python", "launch",
               "launch_ros", "action_msgs", "ha2g_interfaces"}
# System libraries behind an import, with no import of their own: sounddevice loads PortAudio
SYSTEM_KEYS = {"portaudio19-dev"}
# Only behind a choice (backend:=torch / tensorrt, exporting graphs): these may be imported inside functions only
OPTIONAL = {"torch", "safetensors", "onnx", "tensorrt", "cuda"}
PACKAGES = ("ha2g_model", "ha2g_ros")


def package_keys(*tags: str, package: str = "ha2g_ros") -> list[str]:
    root = ET.parse(WORKSPACE_PACKAGES[package]).getroot()
    return [element.text.strip() for tag in tags for element in root.iter(tag)]


def resolve(key: str, release: str):
    """What rosdep installs for `key` on Ubuntu `release`, from the vendored rule: ('apt'|'pip', packages) or None."""
    rule = KEYS["rules"][key]
    if isinstance(rule, dict) and "pip" not in rule:
        rule = rule.get(release, rule.get("*"))
    if rule is None:
        return None
    if isinstance(rule, dict):
        return "pip", rule["pip"]["packages"]
    return "apt", rule


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, imported when the module loads) for every absolute import in the file."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.append((child.module, not in_function))
                # `from package import submodule`
                found.extend((f"{child.module}.{alias.name}", not in_function) for alias in child.names
                             if module_file(f"{child.module}.{alias.name}"))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


def launched_packages() -> set[str]:
    """ROS packages whose executables the launch files start (`Node(package="...")`), other than this one. The
    preview launch is for a desktop (robot_state_publisher and RViz come with ROS 2's desktop install): declaring
    rviz2 would put Qt and OGRE on every robot."""
    found = set()
    for path in set((ROOT / "launch").glob("*.launch.py")) - {ROOT / "launch" / "preview.launch.py"}:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                found |= {keyword.value.value for keyword in node.keywords if keyword.arg == "package"
                          and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)}
    return found - {"ha2g_ros"}


def optional_at_load(path: Path) -> set[str]:
    return {name.split(".")[0] for name, at_load in imports_of(path) if at_load} & OPTIONAL


def runtime_imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the runtime files importing it, following the package's own imports from the
    nodes, the bringup and the launch files. A module that needs an optional package to load (the torch model, the
    exporter) is reached only from inside a function, behind the choice that needs it: it is not followed."""
    files = [module_file(name) for name in ENTRY_MODULES] + sorted((ROOT / "launch").glob("*.launch.py"))
    seen, queue, third_party = set(files), list(files), {}
    while queue:
        path = queue.pop()
        for name, at_load in imports_of(path):
            top = name.split(".")[0]
            if top not in PACKAGES:
                if top not in sys.stdlib_module_names and top != "__future__":
                    third_party.setdefault(top, set()).add(str(path.relative_to(ROOT)))
                continue
            target = module_file(name)
            if target is None or target in seen:
                continue
            if optional_at_load(target):
                assert not at_load, (f"{path.relative_to(ROOT)} imports {name} when it loads, and {name} needs "
                                     f"{sorted(optional_at_load(target))}: the robot runtime would need them")
                continue
            seen.add(target)
            queue.append(target)
    return third_party


@pytest.fixture(scope="module")
def runtime():
    return runtime_imports()


def requirement_names(name: str) -> set[str]:
    """Distribution names of requirements/<name> and its `-r` includes."""
    names = set()
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(line[3:].strip())
        elif line:
            names.add(line.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower())
    return names


def test_the_workspace_holds_both_packages():
    """colcon finds a package only in a folder that is not itself inside a package: each has its own folder."""
    assert set(WORKSPACE_PACKAGES) == {"ha2g_ros", "ha2g_interfaces"}
    assert not (REPO / "package.xml").exists()


@pytest.mark.parametrize("package", ["ha2g_ros", "ha2g_interfaces"])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_key_resolves(distribution, package):
    release = KEYS["distributions"][distribution]
    unresolved = []
    for key in package_keys("depend", "exec_depend", "build_depend", "buildtool_depend", "test_depend",
                            package=package):
        if key in WORKSPACE_PACKAGES:
            ok = True
        elif key in KEYS["ros_packages"]:
            ok = distribution in KEYS["ros_packages"][key]
        else:
            ok = key in KEYS["rules"] and resolve(key, release) is not None
        if not ok:
            unresolved.append(key)
    assert not unresolved, (f"rosdep cannot resolve {unresolved} on {distribution} ({release}): "
                            f"{[KEYS['missing'].get(key, 'not in tests/data/rosdep_keys.yaml') for key in unresolved]}")


def test_the_resolver_follows_rosdep_rules():
    """Guards the resolver itself: a key released for some Ubuntu releases only is refused on the others."""
    KEYS["rules"]["only-on-jammy"] = {"jammy": ["x"]}
    try:
        assert resolve("only-on-jammy", "jammy") == ("apt", ["x"])
        assert resolve("only-on-jammy", "noble") is None
        assert resolve("python3-tqdm", "xenial") is None
        assert resolve("python3-onnxruntime-pip", "noble") == ("pip", ["onnxruntime"])
    finally:
        del KEYS["rules"]["only-on-jammy"]


def test_run_dependencies_are_exactly_what_the_runtime_imports(runtime):
    unknown = set(runtime) - set(RUNTIME_IMPORTS) - ROS_MODULES - OPTIONAL
    assert not unknown, f"new runtime imports {({m: sorted(runtime[m]) for m in unknown})}: declare them " \
                        "(package.xml, requirements/runtime.txt) and add them to RUNTIME_IMPORTS"
    wanted = {RUNTIME_IMPORTS[m][0] for m in runtime if m in RUNTIME_IMPORTS} | (set(runtime) & ROS_MODULES)
    wanted = (wanted - {None}) | SYSTEM_KEYS | launched_packages()
    declared = set(package_keys("depend", "exec_depend"))
    assert declared == wanted, (f"undeclared: {sorted(wanted - declared)}; declared but not imported by the runtime "
                                f"(demo, training or tests only?): {sorted(declared - wanted)}")


def test_imports_without_a_rosdep_key_are_the_documented_pip_step(runtime):
    without_key = {RUNTIME_IMPORTS[m][1] for m in runtime if m in RUNTIME_IMPORTS and RUNTIME_IMPORTS[m][0] is None}
    assert without_key == requirement_names("no-rosdep-key.txt")


def test_pip_runtime_requirements_are_exactly_what_the_runtime_imports(runtime):
    wanted = {RUNTIME_IMPORTS[m][1] for m in runtime if m in RUNTIME_IMPORTS}
    assert requirement_names("runtime.txt") | requirement_names("pinocchio.txt") == wanted


def test_optional_packages_load_only_when_chosen(runtime):
    """torch & co. may appear in the runtime, but only inside the functions behind the choice that needs them."""
    for module in set(runtime) & OPTIONAL:
        for file in runtime[module]:
            loaded = optional_at_load(ROOT / file)
            assert module not in loaded, f"{file} imports {module} when it loads: a robot without it cannot start"


def test_keys_known_to_be_missing_are_not_used():
    used = set(package_keys("depend", "exec_depend", "build_depend", "test_depend"))
    assert not used & set(KEYS["missing"])


def test_shipped_profiles_need_no_extra_pip_step():
    """Every shipped profile's URDF comes from this package or from an installable package (example-robot-data),
    never from a Python package outside the requirements (qibullet)."""
    for name in shipped_profiles():
        source = yaml.safe_load((ROOT / "config" / "robots" / f"{name}.yaml").read_text())["urdf"]
        if source.startswith("python://"):
            assert source.startswith("python://ha2g_ros/"), f"{name}: {source} needs a package outside requirements/"
            path = resolve_urdf(source)
            assert (ROOT / "ha2g_ros") in path.parents, path
        else:
            assert source.startswith("package://example-robot-data/"), f"{name}: {source}"


def test_a_built_wheel_ships_the_urdfs_and_the_config(tmp_path):
    """What pip and colcon install: the package data the default robot reads."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel, = tmp_path.glob("ha2g_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("ha2g_ros/urdf/pepper.urdf", "ha2g_ros/urdf/nao.urdf", "ha2g_ros/urdf/README.md"):
        assert shipped in names
    assert any(name.endswith("share/ha2g_ros/config/robots/pepper.yaml") for name in names)
