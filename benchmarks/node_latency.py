"""Gesture node timing under real-time speech: per-hop compute and audio -> trajectory latency. Prints and writes JSON.

    python benchmarks/node_latency.py [--checkpoint DIR] [--backend torch] [--hop 6 --lookahead 4] [--seconds 30]

A publisher streams espeak-ng speech in 100 ms chunks at real time to the gesture node (same process, one
SingleThreadedExecutor, as in `ha2g-bringup`); a controller-side subscriber timestamps every trajectory. Reported:
- compute_ms: one engine window (the node's `engine.last_compute_s`), per hop;
- tick_ms: one pass of the node's pipeline (engine + retargeting + limits + publishing);
- latency_ms (node): arrival of the audio chunk holding a hop's first frame -> its trajectory published (the
  hop's worst case: lookahead + hop + chunk + compute);
- latency_ms (external): arrival of the audio of a trajectory's newest frame -> a controller-side subscriber holds
  the trajectory (lookahead + chunk + compute + transport); playback_delay_s minus it is the headroom;
- late_frames: frames computed after their playback time (raise playback_delay_s if not 0).
Writes benchmarks/results/node_latency.json. Loopback only: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
ROS_DOMAIN_ID of its own unless set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))  # runs from a checkout without installing the package

from timing import stats_ms  # noqa: E402  (benchmarks/ is on the path of a script run from it)

CHUNK = 1600  # 100 ms at 16 kHz


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--backend", help="the gesture node's backend parameter (default: the node's own default)")
    parser.add_argument("--robot", default="pepper")
    parser.add_argument("--hop", type=int, default=6, help="hop_frames")
    parser.add_argument("--lookahead", type=int, default=4, help="lookahead_frames")
    parser.add_argument("--delay", type=float, default=1.2, help="playback_delay_s")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of speech to stream")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "node_latency.json")
    args = parser.parse_args(argv)

    from ha2g_ros.demo import loopback_environment, synthesize_speech

    loopback_environment()
    import rclpy
    import soundfile
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Int16MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from ha2g_ros.audio_messages import from_samples
    from ha2g_ros.gesture_node import GestureNode
    from ha2g_ros.simulated_robot import SimulatedRobot

    with tempfile.TemporaryDirectory() as tmp:
        wav, _ = synthesize_speech(Path(tmp))
        speech, _ = soundfile.read(wav, dtype="float32")
    audio = np.tile(speech, int(np.ceil(args.seconds * 16000 / len(speech))))[: int(args.seconds * 16000)]

    context = rclpy.context.Context()
    rclpy.init(context=context)
    overrides = {"robot": args.robot, "hop_frames": args.hop, "lookahead_frames": args.lookahead,
                 "playback_delay_s": args.delay}
    if args.backend:
        overrides["backend"] = args.backend
    if args.checkpoint:
        overrides["checkpoint"] = args.checkpoint
    node = GestureNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    client = rclpy.create_node("benchmark_client", context=context)
    # the robot: plays the trajectories and publishes joint_states, so the node sees it and starts at once
    robot = SimulatedRobot(node.retargeter.groups, dict(zip(node.joint_names, node.rest.tolist())), context=context)
    received: list[tuple[float, float]] = []  # (ROS time received, play time of the newest planned knot)
    group = next(iter(node.groups))
    # (the newest planned knot, not the message's last point: every message ends with its braking tail)
    client.create_subscription(JointTrajectory, f"{group}/joint_trajectory",
                               lambda m: received.append((now_s(), node.plan.times[-1])), 100)
    publisher = client.create_publisher(Int16MultiArray, "audio", qos_profile_sensor_data)
    now_s = lambda: client.get_clock().now().nanoseconds * 1e-9  # noqa: E731
    ticks: list[float] = []
    pipeline = node._run_pipeline

    def timed_pipeline():  # the node's own tick, timed from outside
        began = time.perf_counter()
        pipeline()
        ticks.append(time.perf_counter() - began)

    node._run_pipeline = timed_pipeline
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(client)
    executor.add_node(robot)
    try:
        while publisher.get_subscription_count() == 0 or robot.state_pub.get_subscription_count() == 0:
            executor.spin_once(timeout_sec=0.05)
        start = time.monotonic()
        for k, begin in enumerate(range(0, len(audio), CHUNK)):
            while time.monotonic() < start + k * CHUNK / 16000:
                executor.spin_once(timeout_sec=0.005)
            publisher.publish(from_samples(audio[begin:begin + CHUNK], "std_msgs/msg/Int16MultiArray", 16000))
        end = time.monotonic() + args.delay + 2.0  # the last frames: lookahead + playback delay
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        compute = list(node.compute_s)
        latency = list(node.latency_s)
        stats = dict(node.stats)
    finally:
        executor.shutdown()
        node.destroy_node()
        client.destroy_node()
        robot.destroy_node()
        context.try_shutdown()

    # External latency: a trajectory's newest frame plays at (its audio's arrival + delay) by the node's clock map,
    # so (reception - (play - delay)) is the time from that audio's arrival to the controller side holding its
    # gesture; delay minus it is the headroom left before the frame would be late.
    external = [arrival - (play - args.delay) for arrival, play in received]
    result = {
        "config": {**overrides, "backend": node.engine.backend.name,  # the one that loaded
                   "checkpoint": args.checkpoint or "shipped default", "seconds": args.seconds},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "compute_ms": stats_ms(compute), "tick_ms": stats_ms(ticks), "latency_ms_node": stats_ms(latency),
        "latency_ms_external": stats_ms(external), "late_frames": stats["late_frames"], "frames": stats["frames"],
        "expected_latency_ms": round(1e3 * (args.lookahead + args.hop) / 15 + CHUNK / 16, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
