"""Gesture node footprint on a robot CPU: CPU share of one core, peak RSS and warm start to first trajectory,
streaming real speech at the defaults.

    python benchmarks/node_footprint.py [--seconds 30] [--checkpoint DIR] [--robot NAME ...] [--baseline CHECKOUT]
                                        [--chart PNG]

The gesture node runs alone in its own process (`python -m ha2g_ros.gesture_node` with the shipped params file).
This script's process plays the speech on `audio` in real time (the microphone node's file source, looped), stands
in for the robot (simulated controllers publishing joint_states) and counts the trajectories. Reported for the node
process: CPU share of one core while speech streams (user + system time from /proc over the streaming window),
peak RSS (VmHWM), start to first trajectory (process start; the ONNX cache is primed by an untimed first start),
and the node's own compute per window and account of where its CPU goes (`cpu_percent_by_stage`: the stages of
its tick and its whole process, from the cpu_percent_* of its /diagnostics, averaged; `--chart` draws them); for the
audio, how late its chunks came against their due times (the jitter the node sees). `--robot` names the robot
profiles to drive (default Pepper, as the params file), one after the other. `--baseline CHECKOUT` measures another
checkout (e.g. a git worktree of an older commit) in the same run, one after the other, for a side-by-side
comparison on the same load.
Speech: the real clips of ../shared/data/ted_culture, concatenated (espeak-ng speech where they are absent).
Results: benchmarks/results/node_footprint.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "ted_culture"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def speech_file(folder: Path, seconds: float, speech_s: float | None = None) -> Path:
    """A WAV of real speech (the TED clips one after the other) `seconds` long; with `speech_s`, only its first
    `speech_s` seconds are speech and the rest silence (a microphone in a quiet room after a sentence)."""
    import soundfile

    if SHARED.is_dir():
        clips = [np.load(path)["audio"].astype(np.float32) / 32767 for path in sorted(SHARED.glob("*.npz"))]
        audio = np.concatenate(clips)
    else:
        from ha2g_ros.demo import synthesize_speech

        audio, _ = soundfile.read(synthesize_speech(folder)[0], dtype="float32")
    audio = np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)]
    if speech_s is not None:
        audio[int(speech_s * 16000):] = 0.0
    path = folder / "speech.wav"
    soundfile.write(path, audio, 16000)
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of /proc/PID/status in MB: VmHWM (peak resident) or VmRSS (resident now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(child: subprocess.Popen, executor, nodes, context) -> None:
    """SIGINT to the node's process (its clean shutdown; killed after 20 s), then this process's ROS side."""
    child.send_signal(2)
    try:
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
    executor.shutdown()
    for node in nodes:
        if node is not None:
            node.destroy_node()
    context.try_shutdown()


def chunk_lateness_ms(chunks: list[tuple[float, int]], rate: int = 16000) -> dict:
    """How late the audio chunks (arrival, samples) of one playback came against their due times (the time of their
    last sample), relative to the earliest: what the node sees as the link's jitter. Mean and max in ms."""
    if len(chunks) < 2:
        return {}
    arrival, samples = np.array(chunks).T
    late = arrival - np.cumsum(samples) / rate
    late -= late.min()
    return {"mean": round(1e3 * float(late.mean()), 1), "max": round(1e3 * float(late.max()), 1)}


def package_folder(checkout: Path) -> Path:
    """Where a checkout's Python packages and config/ lie: <checkout>/ha2g_ros in the two-package layout, the
    checkout itself in the older one."""
    return checkout / "ha2g_ros" if (checkout / "ha2g_ros" / "config").is_dir() else checkout


def measure(checkout: Path, wav: Path, seconds: float, checkpoint: str | None, domain: int,
            profile: Path | None = None, state_rate_hz: float = 50.0, robot_name: str = "pepper") -> dict:
    """Start the checkout's gesture node, stream `wav`, measure it, stop it with SIGINT. `profile`: run the node
    under py-spy, writing its collapsed stacks there (the CPU figures are then py-spy's own)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Int16MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from ha2g_ros.microphone_node import MicrophoneNode
    from ha2g_ros.retargeting import Retargeter, load_profile
    from ha2g_ros.simulated_robot import SimulatedRobot

    packages = package_folder(checkout)
    env = {**os.environ, "PYTHONPATH": str(packages), "ROS_DOMAIN_ID": str(domain)}
    command = [sys.executable, "-m", "ha2g_ros.gesture_node", "--ros-args", "--params-file",
               str(packages / "config" / "gestures.yaml")]
    if checkpoint:
        command += ["-p", f"checkpoint:={checkpoint}"]
    command += ["-p", f"robot:={robot_name}"]
    if profile:
        command = ["py-spy", "record", "--format", "raw", "--rate", "200", "-o", str(profile), "--"] + command
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    retargeter = Retargeter(load_profile(robot_name))
    robot = SimulatedRobot(retargeter.groups, dict(zip(retargeter.joint_names, retargeter.rest_pose())), state_rate_hz,
                           context=context)
    listener = rclpy.create_node("footprint_listener", context=context)
    trajectories, timing = [], []
    first_group = next(iter(retargeter.groups))
    listener.create_subscription(JointTrajectory, f"{first_group}/joint_trajectory", trajectories.append, 50)
    chunks = []  # (arrival, samples) of the audio the node hears, as the node's own subscription gets it
    listener.create_subscription(Int16MultiArray, "audio", lambda m: chunks.append((time.monotonic(), len(m.data))),
                                 qos_profile_sensor_data)
    # The node's figures from /diagnostics, which it publishes anyway (once a second): a gesture_timing subscriber
    # would make it publish a report every hop, which a robot's node does not.
    listener.create_subscription(DiagnosticArray, "/diagnostics", lambda m: timing.append(
        {kv.key: kv.value for status in m.status for kv in status.values}), 50)
    executor = SingleThreadedExecutor(context=context)
    for node in (robot, listener):
        executor.add_node(node)
    started = time.monotonic()
    # cwd: `python -m` puts the working directory first on sys.path, so the package folder must be it
    child = subprocess.Popen(command, env=env, cwd=packages, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    microphone = None
    try:
        microphone = MicrophoneNode(context=context, parameter_overrides=[
            Parameter("source", value="file"), Parameter("file", value=str(wav)), Parameter("loop", value=True)])
        executor.add_node(microphone)
        while not trajectories:
            if child.poll() is not None:
                raise RuntimeError(f"the gesture node exited: {child.stderr.read()[-2000:]}")
            if time.monotonic() - started > 120:
                raise RuntimeError("no trajectory within 120 s")
            executor.spin_once(timeout_sec=0.01)
        start_s = time.monotonic() - started
        cpu0, wall0, n0, reports0, c0 = cpu_seconds(child.pid), time.monotonic(), len(trajectories), len(timing), \
            len(chunks)
        while time.monotonic() - wall0 < seconds:
            executor.spin_once(timeout_sec=0.01)
        share = (cpu_seconds(child.pid) - cpu0) / (time.monotonic() - wall0)
        rss = memory_mb(child.pid)
        report = {k: float(v) for k, v in timing[-1].items() if k in (
            "compute_ms_mean", "latency_ms_mean", "latency_ms_p95", "late_frames", "frames")} if timing else {}
        # the node's own account of where its CPU went, a report a second: averaged over the window
        window = [{k.removeprefix("cpu_percent_"): float(v) for k, v in r.items() if k.startswith("cpu_percent_")}
                  for r in timing[reports0 + 1:]]
        split = {k: round(float(np.mean([r[k] for r in window])), 2) for k in window[0]} if window else {}
        # diagnostics come once a second: ticks between the first and the last report of the window
        ticks = [float(r["ticks"]) for r in timing[max(0, reports0 - 1):] if "ticks" in r]
        return {"checkout": str(checkout), "robot": robot_name, "start_to_first_trajectory_s": round(start_s, 2),
                "cpu_share_of_one_core": round(share, 4), "peak_rss_mb": round(rss, 1),
                "trajectories_per_s": round((len(trajectories) - n0) / seconds, 2),
                "ticks_per_s": round((ticks[-1] - ticks[0]) / (len(ticks) - 1), 1) if len(ticks) > 1 else None,
                "compute_ms_mean": report.get("compute_ms_mean"), "latency_ms_mean": report.get("latency_ms_mean"),
                "latency_ms_p95": report.get("latency_ms_p95"), "late_frames": report.get("late_frames"),
                "frames": report.get("frames"), "audio_chunk_lateness_ms": chunk_lateness_ms(chunks[c0:]),
                "cpu_percent_by_stage": split}
    finally:
        stop(child, executor, (microphone, robot, listener), context)


def draw_split(results: dict[str, dict], path: Path, goal_percent: float = 5.0) -> None:
    """One stacked bar per measured node (checkout and robot): its CPU share of a core by stage of its tick (the
    node's own /diagnostics account), and the rest of its process (rclpy's executor, the middleware's threads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in results.items() if r.get("cpu_percent_by_stage")]
    if not names:
        raise SystemExit("no CPU split to draw: the node published no cpu_percent_* on /diagnostics")
    all_stages = [s for s in results[names[0]]["cpu_percent_by_stage"] if s != "process"]
    stages = [s for s in all_stages if any(results[n]["cpu_percent_by_stage"][s] >= 0.05 for n in names)]
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.7 * len(names)))
    colours = plt.get_cmap("tab10").colors
    for row, name in enumerate(names):
        split = results[name]["cpu_percent_by_stage"]
        left = 0.0
        parts = [(s.replace("_", " "), split[s]) for s in stages]
        parts.append(("rest of the process", max(split["process"] - sum(split[s] for s in all_stages), 0.0)))
        for k, (label, width) in enumerate(parts):
            ax.barh(row, width, left=left, color=colours[k % len(colours)], label=label if row == 0 else None)
            if width >= 0.35:
                ax.text(left + width / 2, row, f"{width:.1f}", ha="center", va="center", fontsize=8, color="white")
            left += width
        ax.text(left + 0.05, row, f"{split['process']:.1f} %", va="center", fontsize=9)
    ax.axvline(goal_percent, color="black", linestyle="--", linewidth=1)
    ax.text(goal_percent, len(names) - 0.5, f" goal {goal_percent:g} %", fontsize=8, va="bottom")
    several = {key: len({results[n].get(key) for n in names}) > 1 for key in ("robot", "checkout")}

    def label(name: str) -> str:
        checkout = f"{name.split(',')[0]} ({Path(results[name]['checkout']).name})" if several["checkout"] else ""
        return "\n".join(filter(None, [results[name]["robot"] if several["robot"] else "", checkout])) \
            or results[name].get("robot", name)

    ax.set_yticks(range(len(names)), [label(n) for n in names])
    ax.invert_yaxis()  # the first measured on top
    ax.set_xlabel("% of one CPU core while speech streams")
    ax.set_xlim(0, max(goal_percent, max(results[n]["cpu_percent_by_stage"]["process"] for n in names)) * 1.25)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Where the gesture node's CPU goes (its /diagnostics, averaged over the run)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"written {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="streaming window measured (s)")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--baseline", type=Path, help="another checkout measured the same way in the same run")
    parser.add_argument("--profile", type=Path, help="only profile this checkout's node with py-spy (collapsed "
                        "stacks written here)")
    parser.add_argument("--silence-after", type=float, metavar="S", help="speech for the first S seconds only, "
                        "silence after it (the measured window starts at the first trajectory): the resting cost")
    parser.add_argument("--joint-states-hz", type=float, default=50.0,
                        help="rate of the simulated robot's joint_states (ros2_control: 50-1000 Hz)")
    parser.add_argument("--robot", nargs="+", default=["pepper"], help="robot profile(s) the node drives, measured "
                        "one after the other (default: the params file's, pepper)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "node_footprint.json")
    parser.add_argument("--chart", type=Path, metavar="PNG", help="also draw where the CPU goes, by stage, here "
                        "(docs/images/node_cpu_robots.png)")
    args = parser.parse_args()
    from ha2g_ros.demo import loopback_environment

    loopback_environment()
    domain = int(os.environ["ROS_DOMAIN_ID"])
    checkouts = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_file(Path(tmp), args.seconds + 60, args.silence_after)
        if args.profile:
            measure(REPO, wav, args.seconds, args.checkpoint, domain, args.profile, args.joint_states_hz,
                    args.robot[0])
            return
        for robot in args.robot:
            for checkout_name, checkout in checkouts.items():
                name = checkout_name if len(args.robot) == 1 else f"{checkout_name}, {robot}"
                # untimed: primes caches (ONNX export, files)
                measure(checkout, wav, 3.0, args.checkpoint, domain, robot_name=robot)
                results[name] = measure(checkout, wav, args.seconds, args.checkpoint, domain,
                                        state_rate_hz=args.joint_states_hz, robot_name=robot)
                print(name, json.dumps(results[name]))
    result = {"seconds": args.seconds, "checkpoint": args.checkpoint or "shipped", "robots": args.robot,
              "speech": "ted_culture clips" if SHARED.is_dir() else "espeak-ng",
              "silence_after_s": args.silence_after, "joint_states_hz": args.joint_states_hz,
              "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
              **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")
    if args.chart:
        draw_split(results, args.chart)


if __name__ == "__main__":
    main()
