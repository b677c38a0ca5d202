"""Test harness for the gesture node: the node and a 'robot' node in one executor on simulated ROS time.

The robot plays every trajectory it receives as joint_trajectory_controller does (trajectory.PlayedMotion: takeover
on arrival, cubic splines between points) and publishes the played state as joint_states, as a robot whose joints
track their commands would.

Shared by the ROS test modules (the `checkpoint` and `speech` fixtures they use live in conftest.py).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from ha2g_ros.audio_messages import STD_TYPES, from_samples, message_class
from ha2g_ros.trajectory import PlayedMotion, to_time
from ha2g_ros.transcript import to_json

RATE = 16_000
CHUNK = 1_600  # 100 ms
HOP_PARAMS = {"hop_frames": 6, "lookahead_frames": 6, "playback_delay_s": 1.2}
STYLE_SEED = 0  # the styles sampled per utterance (style_per_utterance, on by default) are the same every run


class Harness:
    """The gesture node plus a 'robot' node (controllers' side) in one executor, as they would meet on a robot.

    ROS time is simulated (use_sim_time, /clock published here) and advances only when the node has handled what
    is due, so the behaviour checked does not depend on how loaded the machine is.
    """

    STEP = 0.05  # s of simulated time per clock tick

    def __init__(self, context, checkpoint, audio_type=STD_TYPES[0], cli_args=None, **params):
        from ha2g_ros.gesture_node import GestureNode

        # no robot_state_publisher here: the profile's URDF at once
        overrides = {"checkpoint": str(checkpoint), "audio_type": audio_type, "use_sim_time": True,
                     "robot_description_wait_s": 0.0, "seed": STYLE_SEED, **HOP_PARAMS, **params}
        self.gesture = GestureNode(context=context, cli_args=cli_args,
                                   parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.robot = rclpy.create_node("robot", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.gesture)
        self.executor.add_node(self.robot)
        r = self.gesture.retargeter
        self.groups = {g: list(j) for g, j in r.groups.items()}
        self.index = {name: i for i, name in enumerate(r.joint_names)}
        self.received = {g: [] for g in self.groups}
        self.timing = []
        self.topics = {g: f"{g}/joint_trajectory" for g in self.groups}
        if cli_args:
            self.topics.update(remapped_topics(cli_args))
        self.t = 1000.0  # simulated ROS time, s
        self.set_pose(self.gesture.rest)
        for group, topic in self.topics.items():
            self.robot.create_subscription(JointTrajectory, topic, self._controller(group), 50)
        self.robot.create_subscription(String, "gesture_timing", lambda m: self.timing.append(json.loads(m.data)), 50)
        self.clock_pub = self.robot.create_publisher(Clock, "/clock", 10)
        self.audio_pub = self.robot.create_publisher(message_class(audio_type), "audio", qos_profile_sensor_data)
        self.text_pub = self.robot.create_publisher(String, "transcript", 10)
        self.state_pub = self.robot.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.audio_type = audio_type
        # What joint_states says: the controllers' played state (None), given positions (J,), or nothing (False).
        self.state_override = None
        self._wait_for_discovery()

    def _wait_for_discovery(self):
        subs = [s for s in self.robot.subscriptions if s.topic_name != "/parameter_events"]
        pubs = (self.audio_pub, self.text_pub, self.clock_pub, self.state_pub)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() for p in pubs) and all(s.get_publisher_count() for s in subs):
                self.tick(0.0)
                return
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError("discovery did not match the gesture node's topics within 20 s")

    def now(self):
        return self.t

    def set_pose(self, q):
        """The robot stands at `q` (all commanded joints) now, e.g. moved there by someone else."""
        self.controllers = {g: PlayedMotion(joints, [q[self.index[j]] for j in joints], self.t)
                            for g, joints in self.groups.items()}

    def _controller(self, group):
        def on_trajectory(msg):
            self.received[group].append(msg)
            self.controllers[group].receive(msg, self.t)
        return on_trajectory

    def played_state(self, t=None):
        """Positions (J,) the controllers command at `t` (default now), in the node's joint order."""
        q = np.zeros(len(self.index))
        for group, joints in self.groups.items():
            q[[self.index[j] for j in joints]] = self.controllers[group].state(self.t if t is None else t)[0]
        return q

    def tick(self, dt):
        """Advance simulated time by `dt` and let both nodes handle what became due."""
        self.t = round(self.t + dt, 9)  # whole nanoseconds, as /clock carries it: the node's now and ours agree
        self.clock_pub.publish(Clock(clock=to_time(self.t)))
        if self.state_override is not False:
            q = self.played_state() if self.state_override is None else self.state_override
            self.state_pub.publish(JointState(name=list(self.index), position=[float(x) for x in q]))
        deadline = time.monotonic() + 5
        while self.gesture.now_s() < self.t - 1e-6 and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
        for _ in range(8):  # the timers and messages now due
            self.executor.spin_once(timeout_sec=0.002)

    def spin(self, seconds):
        for _ in range(int(round(seconds / self.STEP))):
            self.tick(self.STEP)

    def play(self, audio, words=None):
        """Publish `audio` in 100 ms chunks paced by simulated time, the transcript (ROS clock) with the first one."""
        for k, start in enumerate(range(0, len(audio), CHUNK)):
            if k == 0 and words:
                self.text_pub.publish(String(data=to_json(words, clock="ros", origin=self.now())))
            self.audio_pub.publish(from_samples(audio[start:start + CHUNK], self.audio_type, RATE))
            self.spin(CHUNK / RATE)

    def close(self):
        self.executor.shutdown()
        self.gesture.destroy_node()
        self.robot.destroy_node()


def remapped_topics(cli_args):
    pairs = [a.split(":=") for a in cli_args if ":=" in a]
    return {src.split("/")[0]: dst for src, dst in pairs if src.endswith("joint_trajectory")}


def joint_limits(gesture, joints):
    """Position (lower, upper), velocity (x speed scale) and acceleration limits of `joints` in node `gesture`."""
    index = [gesture.joint_names.index(j) for j in joints]
    return gesture.lower[index], gesture.upper[index], gesture.vmax[index], gesture.amax[index]


def limits(harness, group):
    return joint_limits(harness.gesture, harness.groups[group])[:3]


def played_problems(harness, group, start, end, rate=1000.0):
    """Limit violations of what the group's controller played between ROS times `start` and `end`, sampled at
    `rate` Hz (position, velocity x speed scale, acceleration: the node's contract), and jumps where a message took
    over."""
    return controller_problems(harness.gesture, harness.controllers[group], harness.groups[group], start, end, rate)


def controller_problems(gesture, controller, joints, start, end, rate=1000.0):
    """played_problems for any controller (a PlayedMotion) of `joints`, against gesture node `gesture`'s limits."""
    return controller.problems(start, end, *joint_limits(gesture, joints), rate)


def interrupt_when(module, ready, *ros_args, sig=signal.SIGINT, ready_timeout_s=30.0, exit_timeout_s=20.0, env=None):
    """Run node `module` (as `ros2 run` would, `python -m`) with `ros_args`; once ready(output so far) holds, send it
    `sig` (Ctrl-C by default) and wait for it to end. Returns its exit code and output."""
    command = [sys.executable, "-m", module, "--ros-args", *ros_args]
    child = subprocess.Popen(command, env=env or os.environ.copy(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not ready("".join(lines)):
            assert child.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        child.send_signal(sig)
        code = child.wait(timeout=exit_timeout_s)
        reader.join(timeout=5)
        return code, "".join(lines)
    finally:
        if child.poll() is None:
            child.kill()
