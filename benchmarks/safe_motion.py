"""Safe-motion benchmark: what joint_trajectory_controller plays from the gesture node's trajectories, sampled at
1 kHz, on every real clip and every shipped robot.

    python benchmarks/safe_motion.py                       # all robots, all clips (a few minutes)
    python benchmarks/safe_motion.py --robots pepper --amplitude 1.5

Motion per clip: the real speaker's (ground truth: real people move faster than the model) and the shipped model's,
generated from the clip's speech. Each is retargeted frame by frame and planned exactly as the gesture node plans
it (KnotPlan.update once per hop of 6 frames, 1.2 s playback delay, the node's commit lead), and every message
reaches the controller 0 to 60 ms after it is sent and takes over there as ros2_controllers' controller does
(trajectory.PlayedMotion). Clips: ../shared/data/ted_culture (12 clips) and the motion-capture take of
../shared/data/beat_scott (64 s, English).

Per robot (benchmarks/results/safe_motion.json): position / velocity (x the profile's speed scale) / acceleration
violations of the played spline (must all be 0) and the samples checked; how far the played motion lags the
retargeted targets (degrees, mean / p95); the share of samples at the acceleration limit; CPU time per frame of the
retargeting and of the planning (ms).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from timing import stats_ms  # benchmarks/ is on the path of a script run from it
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))  # training/ (the real clips' readers) is not an installed package

from ha2g_model.skeleton import FPS  # noqa: E402
from ha2g_ros.gesture_node import COMMIT_LEAD_S  # noqa: E402
from ha2g_ros.retargeting import Retargeter, load_profile, shipped_profiles  # noqa: E402
from ha2g_ros.safe_motion import KnotPlan, MotionLimits, SafeMotion  # noqa: E402
from ha2g_ros.trajectory import PlayedMotion, Timeline, build_trajectory, check_played  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
T0 = 1_800_000_000.0  # today's ROS time
HOP, DELAY = 6, 1.2  # the node's defaults


def load_motion(max_clips: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ground-truth directions (T, 42, 3), speech at 16 kHz) of every real clip with motion."""
    from training.beat import find_takes, load_take
    from training.ted_culture import load_clips

    clips = [(c.name, c.directions, c.audio) for c in load_clips(SHARED / "ted_culture")]
    clips += [(s.name, s.directions, s.audio) for s in (load_take(*take) for take in find_takes(SHARED / "beat_scott"))]
    return clips[:max_clips] if max_clips else clips


def stream(retargeter: Retargeter, directions: np.ndarray, rng: np.random.Generator) -> dict:
    """Retarget and plan `directions` hop by hop as the node does; check what the controllers play."""
    names = retargeter.joint_names
    vmax = retargeter.velocity_limits * retargeter.speed_scale
    amax = np.array([retargeter.profile.acceleration_limit_of(n) for n in names])
    plan = KnotPlan(SafeMotion(MotionLimits(retargeter.lower, retargeter.upper, vmax, amax), 1 / FPS),
                    body=retargeter)
    rest = np.asarray(retargeter.rest_pose(), float)
    groups = {g: [names.index(j) for j in joints] for g, joints in retargeter.groups.items()}
    controllers = {g: PlayedMotion([names[i] for i in index], rest[index], T0) for g, index in groups.items()}
    targets = Timeline()
    retargeter.reset(rest)
    solve_s, plan_s = [], []
    for first in range(0, len(directions), HOP):
        now = T0 + first / FPS + 0.01  # the hop's frames are computed now and play DELAY after their audio
        for k in range(first, min(first + HOP, len(directions))):
            began = time.process_time()
            targets.append(T0 + DELAY + k / FPS, np.asarray(retargeter.solve(directions[k], dt=1 / FPS), float))
            solve_s.append(time.process_time() - began)
        measured = np.empty(len(names))  # the robot's joint_states: what its controllers play now
        for g, index in groups.items():
            measured[index] = controllers[g].state(now)[0]
        began = time.process_time()
        added = plan.update(now, COMMIT_LEAD_S, targets.at, targets.last()[0], measured, T0 + DELAY + first / FPS)
        if added:
            plan.forget_before(now)
            times_ns, positions, velocities = plan.to_send()
        plan_s.append((time.process_time() - began) / HOP)
        if added:
            arrival = now + rng.uniform(0.0, COMMIT_LEAD_S)  # any delivery within the lead
            for g, index in groups.items():
                controllers[g].receive(build_trajectory([names[i] for i in index], times_ns, positions[:, index],
                                                        velocities[:, index]), arrival)
    times = np.arange(T0, T0 + DELAY + len(directions) / FPS + 2.0, 1e-3)
    result = {"samples": len(times), "position": 0, "speed": 0, "acceleration": 0, "jumps": 0, "problems": []}
    frame_times = T0 + DELAY + np.arange(len(directions)) / FPS
    wanted = np.stack([targets.at(t) for t in frame_times])
    at_limit, lag = 0, []
    for g, index in groups.items():
        p, v, a = controllers[g].sample(times)
        problems = check_played([names[i] for i in index], times, p, v, a, retargeter.lower[index],
                                retargeter.upper[index], vmax[index], amax[index])
        for kind in ("position", "speed", "acceleration"):
            result[kind] += sum(f": {kind}" in text for text in problems)
        jumps = controllers[g].takeover_problems(times[0], times[-1])
        result["jumps"] += len(jumps)
        result["problems"] += problems + jumps
        at_limit += int((np.abs(a) >= amax[index] * (1 - 1e-6)).sum())
        lag.append(np.abs(controllers[g].sample(frame_times)[0] - wanted[:, index]))
    result["at_acceleration_limit"] = at_limit / (len(times) * len(names))
    result["tracking_deg"] = np.degrees(np.concatenate(lag, axis=1)).ravel()
    result["solve_s"], result["plan_s"] = solve_s, plan_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robots", nargs="+", default=shipped_profiles())
    parser.add_argument("--clips", type=int, help="only the first N clips")
    parser.add_argument("--amplitude", type=float, default=1.0, help="gesture size (the node's amplitude)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "safe_motion.json")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"the real clips are not there: {SHARED}")
    from ha2g_model.engine import GestureEngine

    clips = load_motion(args.clips)
    engine = GestureEngine.from_checkpoint(None, backend="auto")
    sources = {"ground_truth": [(name, d) for name, d, _ in clips],
               "generated": [(name, engine.generate_utterance(audio)) for name, _, audio in
                             tqdm(clips, desc="generating (shipped model)")]}
    seconds = sum(len(d) for _, d, _ in clips) / FPS
    report = {"config": {"hop_frames": HOP, "playback_delay_s": DELAY, "commit_lead_s": COMMIT_LEAD_S,
                         "transport_delay_s": [0.0, COMMIT_LEAD_S], "amplitude": args.amplitude, "sample_rate_hz": 1000,
                         "clips": [name for name, _, _ in clips], "seconds_of_motion_per_source": round(seconds, 1)},
              "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
              "robots": {}}
    rng = np.random.default_rng(0)
    for robot in args.robots:
        retargeter = Retargeter(load_profile(robot))
        retargeter.amplitude = args.amplitude
        per_source = {}
        for source, motions in sources.items():
            runs = [stream(retargeter, d, rng) for _, d in tqdm(motions, desc=f"{robot} {source}")]
            tracking = np.concatenate([r["tracking_deg"] for r in runs])
            per_source[source] = {
                "samples_1khz": sum(r["samples"] for r in runs),
                "position_violations": sum(r["position"] for r in runs),
                "velocity_violations": sum(r["speed"] for r in runs),
                "acceleration_violations": sum(r["acceleration"] for r in runs),
                "takeover_jumps": sum(r["jumps"] for r in runs),
                "problems": [p for r in runs for p in r["problems"]][:10],
                "share_at_acceleration_limit": round(float(np.mean([r["at_acceleration_limit"] for r in runs])), 4),
                "tracking_error_deg": {"mean": round(float(tracking.mean()), 2),
                                       "p95": round(float(np.percentile(tracking, 95)), 2)},
                "retarget_cpu_ms_per_frame": stats_ms([s for r in runs for s in r["solve_s"]]),
                "plan_cpu_ms_per_frame": stats_ms([s for r in runs for s in r["plan_s"]]),
            }
        report["robots"][robot] = per_source
        for source, r in per_source.items():
            print(f"{robot:>10} {source:>12}: {r['samples_1khz']:>8} samples, violations position "
                  f"{r['position_violations']} velocity {r['velocity_violations']} acceleration "
                  f"{r['acceleration_violations']}; tracking {r['tracking_error_deg']['mean']:.2f} deg "
                  f"(p95 {r['tracking_error_deg']['p95']:.2f}); at the acceleration limit "
                  f"{100 * r['share_at_acceleration_limit']:.1f} %; retarget "
                  f"{r['retarget_cpu_ms_per_frame']['mean']:.2f} ms, plan {r['plan_cpu_ms_per_frame']['mean']:.3f} ms "
                  "per frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
