"""A first real ROS 2 test: JointTrajectory messages cross from one process to another over loopback discovery."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    rclpy.init()
    node = rclpy.create_node("trajectory_publisher")
    publisher = node.create_publisher(JointTrajectory, "arm/joint_trajectory", 10)
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)  # wait until discovery matched, or the first messages are lost
    if publisher.get_subscription_count() == 0:
        sys.exit("no subscriber appeared")
    for i in range(5):
        msg = JointTrajectory(joint_names=["LShoulderPitch", "LElbowRoll"])
        msg.points = [JointTrajectoryPoint(positions=[0.1 * i, -0.2 * i], velocities=[0.0, 0.0],
                                           time_from_start=Duration(sec=0, nanosec=(k + 1) * 66_666_667))
                      for k in range(3)]
        publisher.publish(msg)
        time.sleep(0.05)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
""")


def test_joint_trajectory_crosses_processes(rclpy_context):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"  # set by conftest, inherited by the child
    node = rclpy.create_node("trajectory_listener", context=rclpy_context)
    received = []
    node.create_subscription(JointTrajectory, "arm/joint_trajectory", received.append, 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(received) < 5 and time.monotonic() < deadline and child.poll() in (None, 0):
            executor.spin_once(timeout_sec=0.05)
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        executor.shutdown()
        node.destroy_node()
    assert child.returncode == 0, output
    assert len(received) == 5
    last = received[-1]
    assert list(last.joint_names) == ["LShoulderPitch", "LElbowRoll"]
    assert [list(p.positions) for p in last.points] == [pytest.approx([0.4, -0.8])] * 3
    stamps = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in last.points]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
