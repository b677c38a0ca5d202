"""The gesture node as a managed (lifecycle) node, its /diagnostics, and the URDF from robot_description.

Transitions go through the node's standard lifecycle services (lifecycle_msgs/srv/ChangeState, GetState), called by a
real rclpy client in the harness's executor; time is simulated (tests/ros_harness.py).
"""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("diagnostic_msgs")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ha2g_ros.cpu_stages import TICK_STAGES  # noqa: E402
from ros_harness import RATE, Harness, played_problems  # noqa: E402


def call(h: Harness, client, request):
    """A service call from the harness's robot node, the executor spinning until the answer comes."""
    assert client.wait_for_service(timeout_sec=10.0), f"{client.srv_name} is not offered"
    future = client.call_async(request)
    deadline = time.monotonic() + 20
    while not future.done() and time.monotonic() < deadline:
        h.executor.spin_once(timeout_sec=0.05)
    assert future.done(), f"{client.srv_name} did not answer"
    return future.result()


def change_state(h: Harness, transition: int) -> bool:
    client = h.robot.create_client(ChangeState, "gesture_node/change_state")
    return call(h, client, ChangeState.Request(transition=Transition(id=transition))).success


def state_of(h: Harness) -> int:
    return call(h, h.robot.create_client(GetState, "gesture_node/get_state"), GetState.Request()).current_state.id


def test_deactivate_fades_to_rest_and_holds_activate_resumes_cleanup_releases(rclpy_context, checkpoint, speech):
    """deactivate mid-gesture: the robot fades to its rest pose within the fade time, holds it while speech goes on
    (no new frames), all within the limits; activate: gestures resume; cleanup: topics and model released, and a new
    configure brings it all back."""
    audio = speech[0]
    h = Harness(rclpy_context, checkpoint)
    try:
        assert state_of(h) == State.PRIMARY_STATE_ACTIVE  # autostart
        h.play(audio[: 4 * RATE])
        assert h.gesture.weight > 0, "no gesture before the deactivation: the test would prove nothing"
        start = h.now()
        assert change_state(h, Transition.TRANSITION_DEACTIVATE)
        frames = h.gesture.stats["frames"]
        deactivated = h.now()
        h.play(audio[4 * RATE: 8 * RATE])  # speech goes on: ignored
        assert h.gesture.stats["frames"] == frames
        resting_by = deactivated + h.gesture.commit_lead + h.gesture.get_parameter("fade_out_s").value + 0.5
        assert h.now() > resting_by + 1.0
        rest = h.gesture.rest
        for t in np.arange(resting_by, h.now(), 0.1):
            np.testing.assert_allclose(h.played_state(t), rest, atol=1e-9)
        assert {g: played_problems(h, g, start, h.now()) for g in h.groups} == {g: [] for g in h.groups}
        sent = {g: len(m) for g, m in h.received.items()}
        h.spin(1.0)
        assert {g: len(m) for g, m in h.received.items()} == sent, "still sending while holding the rest pose"

        assert change_state(h, Transition.TRANSITION_ACTIVATE)
        h.play(audio[: 4 * RATE])
        assert h.gesture.stats["frames"] > frames and h.gesture.weight > 0

        assert change_state(h, Transition.TRANSITION_DEACTIVATE)
        assert change_state(h, Transition.TRANSITION_CLEANUP)
        assert state_of(h) == State.PRIMARY_STATE_UNCONFIGURED
        assert h.gesture.engine is None and not h.gesture.configured
        assert h.gesture.count_subscribers("audio") == 0 and h.gesture.count_publishers("left_arm/joint_trajectory") == 0
        assert change_state(h, Transition.TRANSITION_CONFIGURE)
        assert change_state(h, Transition.TRANSITION_ACTIVATE)
        assert h.gesture.count_subscribers("audio") == 1 and h.gesture.engine is not None
    finally:
        h.close()


def test_a_failed_configure_leaves_an_unconfigured_node_that_says_why(rclpy_context, checkpoint):
    """Without autostart a bad configuration is a failed transition (FAILURE, the node stays unconfigured, alive and
    answering); with autostart the constructor raises it (ha2g-bringup and ros2 run turn it into one FATAL line)."""
    from ha2g_ros.gesture_node import GestureNode

    overrides = [Parameter("checkpoint", value=str(checkpoint)), Parameter("robot", value="no_such_robot"),
                 Parameter("robot_description_wait_s", value=0.0)]
    node = GestureNode(context=rclpy_context, parameter_overrides=overrides + [Parameter("autostart", value=False)])
    try:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node._state_machine.current_state[1] == "unconfigured"
        assert "no_such_robot" in str(node._configure_error)
        assert not node.configured and node.engine is None
    finally:
        node.destroy_node()
    with pytest.raises(Exception, match="no_such_robot"):
        GestureNode(context=rclpy_context, parameter_overrides=overrides)


def test_diagnostics_say_ok_while_gesturing_and_warn_when_the_robot_is_unseen(rclpy_context, checkpoint, speech):
    audio = speech[0]
    h = Harness(rclpy_context, checkpoint)
    reports = []
    h.robot.create_subscription(DiagnosticArray, "/diagnostics", reports.append, 50)
    try:
        h.spin(0.5)  # the subscription is matched before anything is counted
        h.play(audio[: 4 * RATE])
        seen = len(reports)
        h.state_override = False  # the robot vanishes
        h.play(audio[4 * RATE: 6 * RATE])
    finally:
        h.close()
    assert seen >= 3, "about one report per second of ROS time"
    statuses = [r.status[0] for r in reports]
    assert all(s.name.endswith("gesture_node: gestures") and s.hardware_id == "pepper" for s in statuses)
    values = dict((kv.key, kv.value) for kv in statuses[seen - 1].values)
    assert {"late_frames", "compute_ms_p95", "latency_ms_p95", "robot_seen", "state"} <= set(values)
    assert statuses[seen - 1].level == DiagnosticStatus.OK and values["state"] == "gesturing"
    unseen = [s for s in statuses[seen:] if s.level == DiagnosticStatus.WARN]
    assert unseen and "without joint_states" in unseen[-1].message
    # Where the CPU went, in percent of a core per report: the process and each stage of the tick
    cpu = [{k.removeprefix("cpu_percent_"): float(kv.value) for kv in s.values if (k := kv.key).startswith("cpu_")}
           for s in statuses]
    assert all(set(c) == {"process", *TICK_STAGES} and min(c.values()) >= 0 for c in cpu)
    total = {k: sum(c[k] for c in cpu) for k in cpu[0]}
    assert min(total["model"], total["retargeting"], total["planning"], total["publishing"]) > 0
    # the stages are the tick's thread's share of the process (which here also runs the test's robot)
    assert sum(total[stage] for stage in TICK_STAGES) <= 1.01 * total["process"]


@pytest.fixture(scope="module")
def pepper_urdf() -> str:
    from ha2g_ros.retargeting import load_profile
    from ha2g_ros.retargeting.robot import resolve_urdf

    return resolve_urdf(load_profile("pepper").urdf).read_text()


def latch(h_node, xml: str):
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = h_node.create_publisher(String, "robot_description", qos)
    publisher.publish(String(data=xml))
    return publisher


def test_the_urdf_latched_on_robot_description_is_the_one_used(rclpy_context, checkpoint, pepper_urdf):
    """A robot_state_publisher latches the robot's real URDF: its limits are the ones the node plans with. A URDF
    there without the profile's joints is a configuration error naming them, not a silent fallback."""
    import rclpy

    from ha2g_ros.gesture_node import GestureNode

    publisher_node = rclpy.create_node("robot_state_publisher", context=rclpy_context)
    overrides = [Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description_wait_s", value=5.0)]
    try:
        first = latch(publisher_node, _with_upper_limit(pepper_urdf, "LElbowRoll", -0.2))
        node = GestureNode(context=rclpy_context, parameter_overrides=overrides)
        try:
            assert node.urdf_source == "the robot_description topic"
            assert node.upper[node.joint_names.index("LElbowRoll")] == pytest.approx(-0.2)
        finally:
            node.destroy_node()
        publisher_node.destroy_publisher(first)
        latch(publisher_node, _renamed_joint(pepper_urdf, "RElbowRoll", "r_elbow"))
        with pytest.raises(Exception, match="RElbowRoll"):
            GestureNode(context=rclpy_context, parameter_overrides=overrides).destroy_node()
    finally:
        publisher_node.destroy_node()


def _with_upper_limit(xml: str, joint: str, upper: float) -> str:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    limit = root.find(f"joint[@name='{joint}']/limit")
    limit.set("upper", str(upper))
    return ET.tostring(root, encoding="unicode")


def _renamed_joint(xml: str, joint: str, name: str) -> str:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    root.find(f"joint[@name='{joint}']").set("name", name)
    return ET.tostring(root, encoding="unicode")
