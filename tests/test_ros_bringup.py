"""The params file, remapping, the microphone node, the single-process bringup and the launch file."""
import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Float32MultiArray, Int16MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from ha2g_ros.bringup import SOURCE_CONFIG, params_file  # noqa: E402
from ha2g_ros.gesture_node import PARAMS  # noqa: E402
from ha2g_ros.trajectory import validate_trajectory  # noqa: E402

from ros_harness import Harness, interrupt_when  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "ha2g_ros" / "launch" / "gestures.launch.py"


def load_yaml():
    return yaml.safe_load(SOURCE_CONFIG.read_text())


def test_params_file_matches_the_declared_defaults():
    config = load_yaml()
    values = {**config["/**"]["ros__parameters"], **config["/**/gesture_node"]["ros__parameters"]}
    declared = {p.name: p.default for p in PARAMS}
    assert set(values) == set(declared), "config/gestures.yaml and gesture_node.PARAMS list different parameters"
    for name, default in declared.items():
        assert values[name] == default and type(values[name]) is type(default), name
    assert params_file() == SOURCE_CONFIG


def test_params_from_yaml_reach_both_nodes(tmp_path, checkpoint, speech):  # noqa: F811
    """A user's copy of the params file, loaded the way the bringup loads it (global --params-file)."""
    from ha2g_ros.bringup import create_nodes

    config = load_yaml()
    config["/**"]["ros__parameters"]["audio_type"] = "std_msgs/msg/Float32MultiArray"
    config["/**/gesture_node"]["ros__parameters"].update(amplitude=0.7, checkpoint=str(checkpoint), hop_frames=5)
    config["/**/microphone_node"]["ros__parameters"].update(source="file", file=str(speech[2]), chunk_size=800)
    user_yaml = tmp_path / "my_robot.yaml"
    user_yaml.write_text(yaml.safe_dump(config))
    context = rclpy.context.Context()
    rclpy.init(context=context, args=["test", "--ros-args", "--params-file", str(user_yaml)])
    try:
        microphone, gesture = create_nodes(context, gesture_overrides=[Parameter("speaker", value=1)])
        try:
            assert gesture.get_parameter("amplitude").value == 0.7 and gesture.retargeter.amplitude == 0.7
            assert gesture.get_parameter("hop_frames").value == 5 and gesture.engine.config.hop_frames == 5
            assert gesture.get_parameter("speaker").value == 1 and gesture.engine.speaker == 1  # override wins
            for node in (microphone, gesture):
                assert node.get_parameter("audio_type").value == "std_msgs/msg/Float32MultiArray"
            assert microphone.get_parameter("chunk_size").value == 800
            assert microphone.audio_pub.msg_type is Float32MultiArray
        finally:
            microphone.destroy_node()
            gesture.destroy_node()
    finally:
        context.try_shutdown()


def test_trajectory_topics_follow_remapping(rclpy_context, checkpoint, speech):  # noqa: F811
    remap = ["--ros-args", "-r", "left_arm/joint_trajectory:=/left_arm_controller/joint_trajectory"]
    h = Harness(rclpy_context, checkpoint, cli_args=remap)
    try:
        # The node's own publishers, not the ROS graph: an earlier test's process may linger there under the same name
        topics = {publisher.topic_name for publisher in h.gesture.publishers}
        assert "/left_arm_controller/joint_trajectory" in topics and "/left_arm/joint_trajectory" not in topics
        assert "/right_arm/joint_trajectory" in topics
        h.spin(0.1)
        h.play(speech[0][: 2 * 16000])
        h.spin(0.5)
    finally:
        h.close()
    assert h.topics["left_arm"] == "/left_arm_controller/joint_trajectory"
    assert h.received["left_arm"] and h.received["right_arm"]


def listen_to_file_source(context, overrides, seconds: float, enough=lambda chunks: False) -> tuple[list, list]:
    """Spin a file-source microphone node (parameter `overrides`) beside a listener for `seconds`, or until
    `enough(chunks)`: the (arrival time, message) of every audio chunk, and the transcripts."""
    from rclpy.qos import qos_profile_sensor_data

    from ha2g_ros.microphone_node import MicrophoneNode

    node = MicrophoneNode(context=context, parameter_overrides=[Parameter("source", value="file"), *overrides])
    listener = rclpy.create_node("listener", context=context)
    chunks, texts = [], []
    listener.create_subscription(Int16MultiArray, "audio", lambda m: chunks.append((time.monotonic(), m)),
                                 qos_profile_sensor_data)
    listener.create_subscription(String, "transcript", texts.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not enough(chunks):
            executor.spin_once(timeout_sec=0.01)
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
    return chunks, texts


def test_file_source_plays_in_real_time_with_its_transcript(rclpy_context, speech):  # noqa: F811
    _, words, wav, transcript = speech
    chunks, texts = listen_to_file_source(rclpy_context, [
        Parameter("file", value=str(wav)), Parameter("transcript_file", value=str(transcript)),
        Parameter("sample_rate", value=8000), Parameter("chunk_size", value=400)], seconds=6.0)
    assert len(texts) == 1
    message = json.loads(texts[0].data)
    assert message["clock"] == "ros" and [w["word"] for w in message["words"]] == [w for w, _, _ in words]
    assert len(chunks) > 20 and all(len(m.data) == 400 for _, m in chunks[:-1])
    # real time: 400 samples at 8 kHz = 50 ms per chunk, within timer jitter over the whole run
    elapsed = chunks[-1][0] - chunks[0][0]
    assert elapsed == pytest.approx((len(chunks) - 1) * 0.05, abs=0.5)


def test_file_source_loops_with_its_transcript(rclpy_context, speech, tmp_path):  # noqa: F811
    """loop: true plays the file again from its first sample at its end, transcript included, every chunk once and
    whole (the last of each playback holding the file's rest)."""
    import soundfile

    audio, words, _, _ = speech
    wav = tmp_path / "two_seconds.wav"
    soundfile.write(wav, audio[:32000], 16000, subtype="PCM_16")  # 2 s: 3 chunks of 0.6 s and one of 0.2 s
    transcript = tmp_path / "two_seconds.json"
    transcript.write_text(json.dumps({"words": [{"word": w, "start": a, "end": b} for w, a, b in words if b <= 2.0]}))
    received, texts = listen_to_file_source(rclpy_context, [
        Parameter("file", value=str(wav)), Parameter("loop", value=True),
        Parameter("transcript_file", value=str(transcript)), Parameter("chunk_size", value=9600)],
        seconds=60.0, enough=lambda chunks: len(chunks) >= 9)  # two whole playbacks and the start of a third
    chunks = [np.array(m.data) for _, m in received]
    assert [len(c) for c in chunks[:9]] == [9600, 9600, 9600, 3200] * 2 + [9600]
    played = np.concatenate(chunks[:4])
    np.testing.assert_array_equal(np.concatenate(chunks[4:8]), played)
    np.testing.assert_array_equal(chunks[8], played[:9600])
    assert np.abs(played.astype(float) - audio[:32000] * 32767).max() <= 2  # the file's samples, as 16-bit PCM
    assert len(texts) >= 3 and len({t.data for t in texts}) == len(texts), "one transcript per playback, each anew"


def test_no_input_device_is_a_clear_error(rclpy_context):
    sounddevice = pytest.importorskip("sounddevice")
    from ha2g_ros.microphone_node import MicrophoneError, MicrophoneNode

    if any(d["max_input_channels"] > 0 for d in sounddevice.query_devices()):
        with pytest.raises(MicrophoneError, match="no input device matches"):
            MicrophoneNode(context=rclpy_context, parameter_overrides=[Parameter("device", value="no-such-mic")])
    else:
        with pytest.raises(MicrophoneError, match="no audio input device found"):
            MicrophoneNode(context=rclpy_context)


def test_bringup_command_runs_the_pipeline(rclpy_context, checkpoint, speech, tmp_path):  # noqa: F811
    """`ha2g-bringup` in its own process, file source, one params file; a controller-side node listens here."""
    import soundfile

    audio, words, _, _ = speech
    short = tmp_path / "short.wav"
    soundfile.write(short, audio[: 4 * 16000], 16000)
    (tmp_path / "short.json").write_text(json.dumps({"words": [
        {"word": w, "start": s, "end": e} for w, s, e in words if e < 4.0]}))
    listener = rclpy.create_node("controllers", context=rclpy_context)
    received = []
    listener.create_subscription(JointTrajectory, "right_arm/joint_trajectory", received.append, 50)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(listener)
    command = [sys.executable, "-m", "ha2g_ros.bringup", "--checkpoint", str(checkpoint), "--audio-source", "file",
               "--audio-file", str(short), "--transcript-file", str(tmp_path / "short.json"), "--duration", "14",
               "--simulated-robot",
               "--", "--ros-args", "-p", "gesture_node:playback_delay_s:=3.0"]
    child = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        while child.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        output = child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
        executor.shutdown()
        listener.destroy_node()
    assert child.returncode == 0, output
    assert "finished playing the file" in output, output
    assert received, output
    joints = ["RShoulderPitch", "RShoulderRoll", "RElbowYaw", "RElbowRoll", "RWristYaw"]
    for msg in received:
        assert validate_trajectory(msg, joints) == []


@pytest.mark.parametrize("command, message", [
    (["ha2g_ros.gesture_node", "--ros-args", "-p", "robot:=no_such_robot"], "[gesture_node]: unknown robot profile"),
    (["ha2g_ros.gesture_node", "--ros-args", "-p", "hop_frames:=500"], "[gesture_node]: Invalid parameter value"),
    (["ha2g_ros.microphone_node", "--ros-args", "-p", "source:=file", "-p", "file:=/no/such.wav"],
     "[microphone_node]: audio file /no/such.wav does not exist"),
], ids=["unknown robot", "hop out of range", "missing audio file"])
def test_node_executables_end_configuration_errors_in_one_line(command, message):
    """`ros2 run` (here `python -m`, where the node's module is __main__): exit 1, the reason as one FATAL line of
    the node's logger, no traceback."""
    result = subprocess.run([sys.executable, "-m", *command], env=os.environ.copy(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FATAL]" in result.stderr and message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_idle_node_stops_on_a_signal(rclpy_context, signal_name):
    """The spin loop waits without a timeout: an unconfigured gesture node (autostart false: no timer, nothing to do)
    must still stop at once on Ctrl-C or SIGTERM, cleanly (exit 0), woken by the signal itself."""
    import signal

    listener = rclpy.create_node("idle_watcher", context=rclpy_context)
    up_since = []

    def waiting(_output):  # up, and a second later well inside its spin loop's wait
        if not up_since and "gesture_node" in listener.get_node_names():
            up_since.append(time.monotonic())
        return bool(up_since) and time.monotonic() - up_since[0] > 1.0

    try:
        code, output = interrupt_when("ha2g_ros.gesture_node", waiting, "-p", "autostart:=false",
                                      sig=getattr(signal, signal_name), ready_timeout_s=60, exit_timeout_s=10)
    finally:
        listener.destroy_node()
    assert code == 0, output
    assert "Traceback" not in output, output


def test_launch_file_uses_the_one_params_file():
    """The launch file reads share/ha2g_ros/config/gestures.yaml: the installed copy of the bringup's file."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert {"config", "gestures.yaml", "gesture_node", "microphone_node"} <= strings
    assert SOURCE_CONFIG.parent.name == "config" and SOURCE_CONFIG.name == "gestures.yaml"


def test_launch_description_builds():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (the PyPI ROS 2 wheels lack it)")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("ha2g_ros")
    except PackageNotFoundError:
        pytest.skip("ha2g_ros is not installed into an ament prefix (colcon build) here")
    spec = importlib.util.spec_from_file_location("gestures_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch import LaunchContext

    description = module.generate_launch_description()
    arguments = {a.name for a in description.get_launch_arguments()}
    assert {"robot", "checkpoint", "backend", "audio_source", "remappings", "params_file"} <= arguments
    context = LaunchContext()
    for action in description.entities:
        action.visit(context)
    nodes = module._nodes(context)
    assert [n.node_executable for n in nodes] == ["gesture_node", "microphone_node"]
    assert module.PARAMS_FILE.name == "gestures.yaml"
