"""The real launch system and ros2cli (built from ../shared/ros2_tooling beside the venv) on the installed package:
`ros2 launch ha2g_ros gestures.launch.py` under a namespace with a params file, remapped trajectories reaching a
controller, a failing node ending the launch with its reason in the ROS log, `ros2 param set` on a live node, clean
shutdown on repeated SIGINT; and the params file's precedence against a command-line `-p`, in a real process."""
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import Int16MultiArray  # noqa: E402

from conftest import SHARED  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ha2g_ros"  # the ament_python package folder
TOOLING = SHARED / "ros2_tooling"
CONTROLLER_REMAPS = {"left_arm/joint_trajectory": "/left_arm_controller/joint_trajectory",
                     "right_arm/joint_trajectory": "/right_arm_controller/joint_trajectory"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # emulate_tty colours the nodes' log lines


def spin_until(executor, done, timeout_s: float, process=None) -> bool:
    """Spin until done() (True), the deadline, or `process` ending (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if done():
            return True
        if process is not None and process.poll() is not None:
            return False
    return done()


class Launched:
    """A `ros2 launch` in its own process group (a terminal's Ctrl-C reaches the group: launch and its nodes)."""

    def __init__(self, arguments: list[str], env: dict, log: Path):
        self.log = log
        self.started = time.monotonic()
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                ["ros2", "launch", "ha2g_ros", "gestures.launch.py", *arguments], env=env, stdout=out,
                stderr=subprocess.STDOUT, process_group=0,
                # pytest may run with SIGINT ignored (a background job); launch keeps what it inherits
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def output(self) -> str:
        return ANSI.sub("", self.log.read_text())

    def wait(self, timeout_s: float):
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Whatever is left of the group, for sure (SIGINT first so launch can stop its nodes)."""
        for sig, grace_s in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            if self.wait(grace_s) is not None:
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    return  # launch and every node of the group are gone


@pytest.fixture(scope="session")
def ros2_tooling(tmp_path_factory) -> dict:
    """The environment of `ros2` (launch, launch_ros, ros2cli built beside the venv, cached under ~/.cache) with
    ha2g_ros and ha2g_interfaces built by colcon into a scratch ament prefix, as on a robot."""
    if not (TOOLING / "build.sh").is_file():
        pytest.skip(f"{TOOLING} not found: the ROS 2 launch tooling sources sit beside the checkout in CI")
    # conftest points XDG_CACHE_HOME at a per-session folder; the tooling's cache must outlive the session
    cache = {"XDG_CACHE_HOME": str(Path.home() / ".cache")}
    build = subprocess.run(["bash", str(TOOLING / "build.sh"), str(Path(sys.executable).parent / "python")],
                           env={**os.environ, **cache}, capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stderr[-3000:]
    env_sh = build.stdout.strip().splitlines()[-1]
    sourced = subprocess.run(["bash", "-c", f'. "{env_sh}" && env -0'], env=dict(os.environ), capture_output=True,
                             check=True)
    env = dict(line.split("=", 1) for line in sourced.stdout.decode().split("\0") if "=" in line)
    tmp = tmp_path_factory.mktemp("ament")
    workspace = tmp / "ws"
    # the checkout as a robot's workspace src/: colcon crawls it and must find and build both packages, the
    # interfaces (CMake, rosidl) before the nodes that depend on them
    colcon = subprocess.run(["colcon", "--log-base", str(workspace / "log"), "build", "--base-paths", str(REPO),
                             "--build-base", str(workspace / "build"), "--install-base", str(workspace / "install"),
                             "--merge-install", "--cmake-args", "-DBUILD_TESTING=OFF",
                             f"-DPython3_EXECUTABLE={Path(sys.executable).parent / 'python'}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert colcon.returncode == 0, colcon.stdout[-3000:] + colcon.stderr[-3000:]
    assert "Summary: 2 packages finished" in colcon.stdout, colcon.stdout[-2000:]
    env["AMENT_PREFIX_PATH"] = f"{workspace / 'install'}:{env['AMENT_PREFIX_PATH']}"
    env["ROS_HOME"] = str(tmp / "ros_home")  # launch's and the nodes' log files
    return env


@pytest.fixture(scope="module")
def controllers(rclpy_module_context):
    """What a robot offers the gesture node in namespace robot1: joint_states, and controllers on the remapped
    trajectory topics (the simulated robot, under the same remapping rules as the launch)."""
    from ha2g_ros.retargeting import Retargeter, load_profile
    from ha2g_ros.simulated_robot import SimulatedRobot

    retargeter = Retargeter(load_profile("pepper"))
    remaps = [arg for source, target in CONTROLLER_REMAPS.items() for arg in ("-r", f"{source}:={target}")]
    robot = SimulatedRobot(retargeter.groups, dict(zip(retargeter.joint_names, retargeter.rest_pose())),
                           context=rclpy_module_context, namespace="robot1", cli_args=["--ros-args", *remaps])
    listener = rclpy.create_node("launch_test_listener", context=rclpy_module_context)
    audio = []
    listener.create_subscription(Int16MultiArray, "/robot1/audio", audio.append, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=rclpy_module_context)
    executor.add_node(robot)
    executor.add_node(listener)
    yield robot, audio, executor
    executor.shutdown()
    robot.destroy_node()
    listener.destroy_node()


@pytest.fixture(scope="module")
def rclpy_module_context():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture(scope="module")
def user_params(tmp_path_factory, checkpoint):
    """A robot's copy of the params file, values changed in both node sections."""
    config = yaml.safe_load((PACKAGE / "config" / "gestures.yaml").read_text())
    config["/**/gesture_node"]["ros__parameters"].update(amplitude=0.8, checkpoint=str(checkpoint))
    config["/**/microphone_node"]["ros__parameters"].update(chunk_size=800)
    path = tmp_path_factory.mktemp("robot1") / "robot1.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def launched(ros2_tooling, user_params, speech, tmp_path_factory):
    _, _, wav, transcript = speech
    folder = tmp_path_factory.mktemp("launch")
    launch = Launched(["namespace:=robot1", f"params_file:={user_params}", "audio_source:=file",
                       f"audio_file:={wav}", f"transcript_file:={transcript}", "speech_player:=wav",
                       f"speech_wav:={folder / 'relayed.wav'}",
                       "remappings:=" + " ".join(f"{s}:={t}" for s, t in CONTROLLER_REMAPS.items())],
                      ros2_tooling, folder / "launch.log")
    launch.relayed = folder / "relayed.wav"
    yield launch
    launch.kill()
    print(f"\nros2 launch (namespace robot1, file audio) ran {time.monotonic() - launch.started:.1f} s")


def ros2(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_launch_under_a_namespace_reaches_the_remapped_controllers(launched, controllers):
    robot, audio, executor = controllers
    arrived = spin_until(executor, lambda: all(robot.received[g] for g in ("left_arm", "right_arm"))
                         and len(audio) >= 10, 240, launched.process)
    output = launched.output()
    assert arrived, output[-4000:]
    # the namespaced microphone node got the params file's chunk size; the gesture node its amplitude (below)
    sizes = [len(message.data) for message in audio]
    assert set(sizes[:10]) == {800}, sizes
    assert "[robot1.gesture_node]" in output and "[robot1.microphone_node]" in output


@pytest.mark.slow
def test_ros2_param_get_and_set_on_the_live_namespaced_node(launched, controllers, ros2_tooling):
    """Through the real ros2cli: the params file's value (0.8, not the default 1.0), then a live change."""
    def param(*args):
        result = ros2(ros2_tooling, "param", *args, "/robot1/gesture_node", "amplitude", *(
            ("0.5",) if args == ("set",) else ()), "--no-daemon", "--spin-time", "5")
        assert result.returncode == 0, result.stdout + result.stderr + launched.output()[-2000:]
        return result.stdout

    assert spin_until(controllers[2], lambda: controllers[0].received["left_arm"], 240, launched.process)
    assert "Double value is: 0.8" in param("get")
    assert "Set parameter successful" in param("set")
    assert "Double value is: 0.5" in param("get")


@pytest.mark.slow
def test_repeated_sigint_stops_the_launch_cleanly(launched):
    """A terminal's Ctrl-C signals the whole process group; launch then forwards its own SIGINT to each node."""
    # all three nodes up and the voice relayed for a while (so the test stands alone, not only after the others)
    up = ("[robot1.gesture_node]: robot", "[robot1.microphone_node]: playing", "[robot1.speech_player]: writing")
    deadline = time.monotonic() + 120
    while not all(line in launched.output() for line in up) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(line in launched.output() for line in up), launched.output()[-4000:]
    time.sleep(3.0)
    os.killpg(launched.process.pid, signal.SIGINT)
    assert launched.wait(60) == 0, launched.output()[-4000:]
    output = launched.output()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-4000:]
    assert output.count("process has finished cleanly") == 3, output[-4000:]
    # the speech player heard the live voice the gesture node relayed, and wrote it out as it stopped
    played = json.loads(launched.relayed.with_name("relayed.wav.json").read_text())
    assert played["played_messages"] > 10 and played["refused_messages"] == 0, played


@pytest.mark.slow
def test_a_node_failing_at_start_ends_the_launch_with_its_reason_in_the_ros_log(ros2_tooling, tmp_path):
    env = {**ros2_tooling, "ROS_HOME": str(tmp_path / "ros_home")}
    launch = Launched(["namespace:=robot1", "robot:=no_such_robot", "audio_source:=none"], env,
                      tmp_path / "launch.log")
    try:
        assert launch.wait(120) is not None, "the launch kept running after its gesture node died"
    finally:
        launch.kill()
    output = launch.output()
    reason = "[robot1.gesture_node]: unknown robot profile 'no_such_robot'"
    assert "[FATAL]" in output and reason in output and "Traceback" not in output, output
    assert "shutting down launched system" in output, output
    # the node's ROS log file too, not only the console
    logged = [p for p in (tmp_path / "ros_home" / "log").rglob("*.log") if reason in p.read_text()]
    assert logged, sorted(str(p) for p in (tmp_path / "ros_home" / "log").rglob("*"))


@pytest.mark.parametrize("namespace", ["/", "/robot1"])
def test_a_command_line_parameter_after_the_params_file_wins(namespace, speech, rclpy_context):
    """rcl applies a node's matching sections in the order they first appear and puts `-p` in `/**`: with `/**` last
    in config/gestures.yaml, `-p chunk_size:=400` wins over the file's `/**/microphone_node` (1600). A real
    microphone node process; its audio messages show the chunk size it took."""
    _, _, wav, _ = speech
    received = []
    listener = rclpy.create_node("chunk_listener", context=rclpy_context)
    listener.create_subscription(Int16MultiArray, f"{namespace.rstrip('/')}/audio", received.append,
                                 qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(listener)
    node = subprocess.Popen([sys.executable, "-m", "ha2g_ros.microphone_node", "--ros-args", "-r", f"__ns:={namespace}",
                             "--params-file", str(PACKAGE / "config" / "gestures.yaml"),
                             "-p", "source:=file", "-p", f"file:={wav}", "-p", "chunk_size:=400"],
                            env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        started = spin_until(executor, lambda: len(received) >= 5, 60, node)
    finally:
        node.send_signal(signal.SIGINT)
        try:
            output, _ = node.communicate(timeout=20)
        finally:
            if node.poll() is None:
                node.kill()
        executor.shutdown()
        listener.destroy_node()
    assert started, output
    assert {len(message.data) for message in received[:5]} == {400}


def _load_launch_file(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), PACKAGE / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def launch_importable(ros2_tooling, monkeypatch):
    """launch and launch_ros importable here, and the installed ha2g_ros in the ament index (as `ros2 launch` has)."""
    for path in reversed(ros2_tooling["PYTHONPATH"].split(":")):
        monkeypatch.syspath_prepend(path)
    monkeypatch.setenv("AMENT_PREFIX_PATH", ros2_tooling["AMENT_PREFIX_PATH"])


def test_launch_arguments_offer_what_the_nodes_accept(launch_importable):
    """choices= are the nodes' own values ("" keeps the params file's, none = no microphone node)."""
    from ha2g_model.backends import BACKENDS
    from ha2g_ros.microphone_node import SOURCES

    arguments = {a.name: a for a in _load_launch_file("gestures.launch.py").generate_launch_description()
                 .get_launch_arguments()}
    assert set(arguments["backend"].choices) == {"", "auto", *BACKENDS}
    assert set(arguments["audio_source"].choices) == {"", "none", *SOURCES}
    assert {"use_sim_time", "log_level"} <= set(arguments)


def test_preview_launch_describes_robot_state_publisher_and_rviz(ros2_tooling, launch_importable, user_params):
    """robot_state_publisher and rviz2 cannot be installed here: the preview's description is built and checked."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.utilities import perform_substitutions

    preview = _load_launch_file("preview.launch.py")
    description = preview.generate_launch_description()
    arguments = {a.name for a in description.get_launch_arguments()}
    assert {"robot", "namespace", "params_file", "use_sim_time", "log_level", "audio_source"} <= arguments
    context = LaunchContext()
    context.launch_configurations.update(namespace="robot1", robot="nao")
    for action in description.entities:
        if isinstance(action, DeclareLaunchArgument):
            action.visit(context)
    nodes = {node.node_package: node for node in preview._preview_nodes(context)}
    assert set(nodes) == {"robot_state_publisher", "rviz2"}
    for node in nodes.values():
        node._perform_substitutions(context)  # what launch does before starting it
        assert node.expanded_node_namespace == "/robot1"
    # the gesture node's preview (the motion it sends) drives the model
    assert nodes["robot_state_publisher"].expanded_remapping_rules == [("joint_states", "gesture_joint_states")]
    rviz_arguments = [perform_substitutions(context, part) for part in nodes["rviz2"].cmd[1:3]]
    installed = Path(ros2_tooling["AMENT_PREFIX_PATH"].split(":")[0]) / "share" / "ha2g_ros" / "config"
    assert rviz_arguments == ["-d", str(installed / "preview.rviz")] and (installed / "preview.rviz").is_file()
    config = yaml.safe_load((installed / "preview.rviz").read_text())
    displays = {d["Class"]: d for d in config["Visualization Manager"]["Displays"]}
    # relative names: RViz runs in the nodes' namespace, where the gesture node publishes exactly these
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "gesture_skeleton"
    assert displays["rviz_default_plugins/RobotModel"]["Description Topic"]["Value"] == "robot_description"
    node_source = (PACKAGE / "ha2g_ros" / "gesture_node.py").read_text()
    assert '"gesture_skeleton"' in node_source and '"gesture_joint_states"' in node_source
    # the URDF: robot:=nao's, else the params file's robot (this copy names NAO under /**/gesture_node)
    assert "HipYawPitch" in preview.robot_description("nao", str(user_params), "/robot1/gesture_node")
    config = yaml.safe_load(user_params.read_text())
    config["/**/gesture_node"]["ros__parameters"]["robot"] = "nao"
    nao_params = user_params.with_name("nao.yaml")
    nao_params.write_text(yaml.safe_dump(config))
    assert "HipYawPitch" in preview.robot_description("", str(nao_params), "/robot1/gesture_node")
    assert "HipYawPitch" not in preview.robot_description("", str(user_params), "/robot1/gesture_node")  # Pepper


@pytest.mark.parametrize("distro, localhost_only", [("humble", "1"), ("jazzy", None), ("kilted", None), ("", None)])
def test_loopback_discovery_on_every_distro(distro, localhost_only, monkeypatch):
    """Humble has no ROS_AUTOMATIC_DISCOVERY_RANGE (only ROS_LOCALHOST_ONLY keeps it local); newer distros warn about
    ROS_LOCALHOST_ONLY and then ignore the range."""
    from ha2g_ros.bringup import loopback_discovery

    monkeypatch.setenv("ROS_DISTRO", distro)
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "0")
    loopback_discovery()
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ.get("ROS_LOCALHOST_ONLY") == localhost_only
