"""Soak: the gesture node streaming looped real speech for a long time, every message checked, memory watched.

    python benchmarks/soak.py --minutes 60

The gesture node runs in its own process as in benchmarks/node_footprint.py (shipped params, Pepper, the shipped
checkpoint); this process plays the speech in real time, looped (the microphone node's file source), plays every
trajectory on a simulated robot (which publishes joint_states) and checks every message as joint_trajectory_controller
would (trajectory.validate_trajectory against the URDF limits) and what the controllers played, sampled at 1 kHz a few
seconds at a time (never holding up the simulated controllers' callbacks), against position, scaled velocity and
acceleration limits, with every jump where a message took over, and how late each message reached its controller
(`late_deliveries`: later than commit_lead_s and a frame after the point it starts with, when a jump is possible).
Every minute: the node's RSS and CPU share. Reported: RSS growth (MB per minute, least squares after the first 2
minutes), late frames, invalid messages and played-limit problems (both must be 0). Results: benchmarks/results/soak.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from node_footprint import REPO, cpu_seconds, memory_mb, speech_file, stop  # benchmarks/ is on the path of a script run from it

from ha2g_ros.gesture_node import COMMIT_LEAD_S


CHECK_EVERY_S = 5.0


def check_played_span(robot, rt, start: float, now: float, counts: dict, problems: list) -> float:
    """Check what every controller of `robot` played from `start` to `now` (1 kHz samples and takeover jumps) against
    the retargeter `rt`'s URDF position limits, scaled velocity limits and acceleration limits; returns where the
    check ended."""
    vmax = rt.velocity_limits * rt.speed_scale
    amax = np.array([rt.profile.acceleration_limit_of(n) for n in rt.joint_names])
    n = len(np.arange(start, now, 1e-3))  # whole milliseconds: the next check goes on from the last sample's grid
    if not n:
        return start
    end = start + n * 1e-3
    for group, joints in rt.groups.items():
        index = [rt.joint_names.index(j) for j in joints]
        found = robot.controllers[group].problems(start, end, rt.lower[index], rt.upper[index], vmax[index],
                                                  amax[index])
        counts["played_problems"] += len(found)
        problems.extend(found[:3])
    counts["played_samples"] += n
    return end


def delivery_lags(robot) -> list[float]:
    """For the messages the controllers got since the last call (then forgotten): arrival minus the message's first
    point (the knot that started the segment playing when the node planned it, at most one frame before that).
    Above commit_lead_s plus a frame, the message surely reached the controller later than the plan allows (a
    starved process on either side): its takeover may jump."""
    from ha2g_ros.trajectory import absolute_times_ns

    lags = []
    for received in robot.received.values():
        lags += [arrival - int(absolute_times_ns(msg)[0]) * 1e-9 for arrival, msg in received]
        received.clear()
    # An hour of kept messages made the garbage collector pause this process (and so the simulated controllers)
    # for longer and longer: what is kept from here on is never scanned again.
    gc.freeze()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    args = parser.parse_args()
    from ha2g_ros.demo import loopback_environment

    loopback_environment()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from ha2g_ros.microphone_node import MicrophoneNode
    from ha2g_ros.retargeting import Retargeter, load_profile
    from ha2g_ros.simulated_robot import SimulatedRobot
    from ha2g_ros.trajectory import validate_trajectory

    rt = Retargeter(load_profile("pepper"))
    names = list(rt.joint_names)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    robot = SimulatedRobot(rt.groups, dict(zip(names, rt.rest_pose())), context=context)
    checker = rclpy.create_node("soak_checker", context=context)
    counts = {"messages": 0, "invalid": 0, "played_samples": 0, "played_problems": 0, "late_deliveries": 0,
              "max_delivery_lag_s": 0.0}
    too_late = COMMIT_LEAD_S + 1 / 15
    problems: list[str] = []
    timing: list[dict] = []

    def check(group):
        index = [names.index(j) for j in rt.groups[group]]

        def on_trajectory(msg):
            counts["messages"] += 1
            found = validate_trajectory(msg, rt.groups[group], rt.lower[index], rt.upper[index],
                                        rt.velocity_limits[index])
            counts["invalid"] += bool(found)
            problems.extend(found[:3])
        return on_trajectory

    for group in rt.groups:
        checker.create_subscription(JointTrajectory, f"{group}/joint_trajectory", check(group), 50)
    checker.create_subscription(String, "gesture_timing", lambda m: timing.append(json.loads(m.data)), 50)
    executor = SingleThreadedExecutor(context=context)
    for node in (robot, checker):
        executor.add_node(node)
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_file(Path(tmp), 120.0)
        child = subprocess.Popen([sys.executable, "-m", "ha2g_ros.gesture_node", "--ros-args", "--params-file",
                                  str(REPO / "config" / "gestures.yaml")], cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        microphone = MicrophoneNode(context=context, parameter_overrides=[
            Parameter("source", value="file"), Parameter("file", value=str(wav)), Parameter("loop", value=True)])
        executor.add_node(microphone)
        samples, began = [], time.monotonic()
        checked_until = robot.now_s()
        try:
            last_cpu, last_wall = cpu_seconds(child.pid), time.monotonic()
            last_check = time.monotonic()
            while context.ok() and time.monotonic() - began < args.minutes * 60:  # Ctrl-C shuts the context down
                executor.spin_once(timeout_sec=0.01)
                if time.monotonic() - last_check >= CHECK_EVERY_S:
                    # A few seconds at a time: milliseconds of work, so the simulated controllers' callbacks (same
                    # executor) are never held up long enough to take a message over late.
                    last_check = time.monotonic()
                    checked_until = check_played_span(robot, rt, checked_until, robot.now_s(), counts, problems)
                    lags = delivery_lags(robot)
                    counts["late_deliveries"] += sum(lag > too_late for lag in lags)
                    counts["max_delivery_lag_s"] = round(max([counts["max_delivery_lag_s"], *lags]), 4)
                if time.monotonic() - last_wall >= 60:
                    cpu, wall = cpu_seconds(child.pid), time.monotonic()
                    samples.append({"minute": round((wall - began) / 60, 2), "rss_mb": round(memory_mb(child.pid, "VmRSS"), 1),
                                    "cpu_share": round((cpu - last_cpu) / (wall - last_wall), 4)})
                    last_cpu, last_wall = cpu, wall
                    print(json.dumps({**samples[-1], **counts,
                                      "late_frames": timing[-1].get("late_frames") if timing else None}), flush=True)
        finally:
            stop(child, executor, (microphone, robot, checker), context)
    steady = [s for s in samples if s["minute"] > 2]
    slope = (float(np.polyfit([s["minute"] for s in steady], [s["rss_mb"] for s in steady], 1)[0])
             if len(steady) >= 2 else None)
    report = timing[-1] if timing else {}
    result = {"minutes": args.minutes, "rss_growth_mb_per_min": slope, **counts, "problems": problems[:20],
              "late_frames": report.get("late_frames"), "frames": report.get("frames"), "samples": samples,
              "machine": {"python": platform.python_version(), "cores": os.cpu_count(),
                          "load_average_1min": round(os.getloadavg()[0], 2)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))


if __name__ == "__main__":
    main()
