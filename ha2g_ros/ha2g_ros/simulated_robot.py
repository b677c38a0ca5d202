"""A stand-in for a robot's joint_trajectory_controllers, for working without a robot (`ha2g-bringup
--simulated-robot`, the demo, benchmarks): it plays every trajectory it receives as the controller would
(trajectory.PlayedMotion: takeover on arrival, splines between points) and publishes the played state on
`joint_states`, as a robot whose joints track their commands perfectly. The gesture node commands only a robot it
sees, so without a robot something must publish joint_states.
"""
from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from ha2g_ros.trajectory import PlayedMotion

STATE_RATE_HZ = 50.0  # a typical ros2_control joint_state_broadcaster publishes at 50-100 Hz


class SimulatedRobot(Node):
    def __init__(self, groups: dict[str, list[str]], start: dict[str, float], state_rate_hz: float = STATE_RATE_HZ,
                 **kwargs):
        super().__init__("simulated_robot", **kwargs)
        now = self.now_s()
        self.groups = {g: list(joints) for g, joints in groups.items()}
        self.controllers = {g: PlayedMotion(joints, [start[j] for j in joints], now) for g, joints in groups.items()}
        self.received: dict[str, list[tuple[float, JointTrajectory]]] = {g: [] for g in groups}  # (arrival s, msg)
        # Commands must not be lost (reliable), as between a node and its controller.
        for group in groups:
            self.create_subscription(JointTrajectory, f"{group}/joint_trajectory", self._on_trajectory(group), 10)
        self.state_pub = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.create_timer(1.0 / state_rate_hz, self.publish_state)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_trajectory(self, group: str):
        def on_trajectory(msg: JointTrajectory) -> None:
            arrival = self.now_s()
            self.received[group].append((arrival, msg))
            self.controllers[group].receive(msg, arrival)
        return on_trajectory

    def positions(self, t: float) -> dict[str, float]:
        """Every joint's commanded position at ROS time `t`."""
        return {name: float(q) for group, motion in self.controllers.items()
                for name, q in zip(self.groups[group], motion.state(t)[0])}

    def publish_state(self) -> None:
        state = self.positions(self.now_s())
        msg = JointState(name=list(state), position=list(state.values()))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.state_pub.publish(msg)
