"""ha2g-say as a user runs it: a real process, espeak-ng speech, the speak action of a gesture node (here in the test
process, real time, with the simulated robot), and its clear errors."""
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                                  reason="espeak-ng is not installed: ha2g-say's default voice")]
SAY = [str(Path(sys.executable).parent / "ha2g-say")]


def say(*args, timeout=120):
    return subprocess.run(SAY + list(args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture
def robot(checkpoint, request):
    """A gesture node and a simulated robot spinning in the background, as `ha2g-bringup --simulated-robot` runs,
    in a namespace of their own: an earlier test's nodes, still in the ROS graph for a moment after they were
    destroyed, must not answer (or swallow) this test's goals."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ha2g_interfaces.msg import SpeechAudio
    from ha2g_ros.bringup import create_nodes

    namespace = f"/say_{request.node.name.replace('test_', '')[:40]}"
    context = rclpy.context.Context()
    rclpy.init(context=context, args=["test", "--ros-args", "-r", f"__ns:={namespace}"])
    nodes = create_nodes(context, gesture_overrides=[Parameter("checkpoint", value=str(checkpoint)),
                                                           Parameter("robot_description_wait_s", value=0.0)],
                         microphone=False, simulated_robot=True)
    heard = []
    nodes[0].create_subscription(SpeechAudio, "speech_audio", heard.append, 10)
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield nodes[0], heard, ["--ros-args", "-r", f"__ns:={namespace}"]
    executor.shutdown()
    spinner.join(10)
    for node in nodes:
        node.destroy_node()
    context.try_shutdown()


def test_say_speaks_with_gestures_through_the_action(robot):
    gesture, heard, ros_args = robot
    done = say("Hello, I am a robot. I move my arms while I speak.", *ros_args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("done:"), done.stdout
    speech, = [m for m in heard if m.utterance_id]
    audio = np.frombuffer(speech.samples, np.float32)
    assert speech.sample_rate == 16_000 and len(audio) / 16_000 > 2.0 and np.abs(audio).max() > 0.5
    assert gesture.stats["trajectories"] > 0


def test_any_tts_command_that_writes_a_wav_can_speak(robot):
    gesture, heard, ros_args = robot
    done = say("--tts", "espeak-ng -w {wav} {text}", "Any voice will do.", *ros_args)
    assert done.returncode == 0, done.stderr
    speech, = [m for m in heard if m.utterance_id]
    assert speech.sample_rate == 22_050  # espeak-ng's own rate, passed as it is


def test_say_errors_are_one_clear_line():
    nobody = ["--ros-args", "-r", "speak:=nobody_offers_this"]  # whatever else runs in this ROS domain
    no_server = say("--server-timeout", "1", "Is anybody there?", *nobody)
    assert no_server.returncode == 1 and "no gesture node offers the speak action" in no_server.stderr
    bad_tts = say("--server-timeout", "1", "--tts", "false {wav}", "Hello", *nobody)
    assert bad_tts.returncode == 1 and "no gesture node" in bad_tts.stderr  # the server is checked first
    assert say().returncode == 2  # argparse: nothing to say


def test_a_failing_tts_command_is_named(robot):
    done = say("--tts", "false {wav}", "Hello", *robot[2])
    assert done.returncode == 1 and "the TTS command 'false' failed" in done.stderr


def test_listen_says_every_text_on_the_say_topic(robot, rclpy_context):
    import rclpy
    from std_msgs.msg import String

    gesture, heard, ros_args = robot
    listener = subprocess.Popen(SAY + ["--listen", *ros_args], env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("texter", context=rclpy_context, namespace=ros_args[-1].split(":=")[1])
    try:
        publisher = node.create_publisher(String, "say", 10)
        deadline = time.monotonic() + 60
        while not [m for m in heard if m.utterance_id] and time.monotonic() < deadline:
            if publisher.get_subscription_count():
                publisher.publish(String(data="Hello from the topic."))
                time.sleep(3.0)  # espeak-ng and the goal take a moment; one utterance is enough
            time.sleep(0.1)
        assert [m for m in heard if m.utterance_id], "nothing was said"
    finally:
        node.destroy_node()
        listener.send_signal(signal.SIGINT)
        assert listener.wait(20) == 0, listener.stdout.read()
