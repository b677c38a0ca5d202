"""Retargeting benchmark: accuracy, hard limits and speed per robot on the real TED clips, plus pictures.

    python benchmarks/retargeting.py        # every shipped profile, every clip in ../shared/data/ted_culture
    python benchmarks/retargeting.py --robots pepper g1 --no-pictures

Per robot it prints and writes (benchmarks/results/retargeting.json):
- the angle between each human bone direction (in the speaker's torso frame) and the matching robot direction (in
  the robot's torso frame), mean and p95 in degrees, for the upper arms, forearms and (where the robot has a wrist
  to orient) the hands;
- position and velocity limit violations (must be 0), and how often an arm / a hand joint moves at its velocity
  limit (a robot slower than the speaker lags behind there);
- the time of one `Retargeter.solve` call (both arms and hands) in milliseconds: CPU time of the calling thread
  (what the solve costs, whatever else runs on the machine) and wall-clock time (what a caller waits, which on a
  loaded machine includes time spent preempted), mean / p95 / max.
Pictures (docs/images/): a few frames side by side per robot (PNG), and one clip as MP4 per robot and GIF for Pepper.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pinocchio as pin
from tqdm import tqdm
from timing import stats_ms  # benchmarks/ is on the path of a script run from it

from ha2g_ros.retargeting import Retargeter, load_profile, shipped_profiles
from ha2g_ros.retargeting.visualize import save_animation, save_frames_png

REPO = Path(__file__).resolve().parents[1]


def load_clips(data_dir: Path) -> list[dict]:
    clips = []
    for path in sorted(data_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            clips.append({"id": path.stem, "dir_vec": data["dir_vec"], "fps": float(data["fps"])})
    if not clips:
        raise SystemExit(f"no clips (*.npz) in {data_dir}")
    return clips


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def evaluate(robot: str, clips: list[dict]) -> tuple[dict, Retargeter, list[np.ndarray]]:
    start = time.perf_counter()
    rt = Retargeter(load_profile(robot))
    load_s = time.perf_counter() - start
    wall, cpu, errors, trajectories = [], [], {}, []
    position_violations = velocity_violations = n_frames = 0
    arm = np.arange(len(rt.joint_names)) < len(rt.profile.arm_joints)
    at_limit = {"arm": 0, "hand": 0}
    for clip in clips:
        dt = 1.0 / clip["fps"]
        rt.reset()
        q_prev, q = rt.rest_pose(), []
        for frame in clip["dir_vec"]:
            start, start_cpu = time.perf_counter(), time.thread_time()
            q.append(rt.solve(frame, dt))
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        q = np.array(q)
        trajectories.append(q)
        steps = np.abs(np.diff(np.vstack([q_prev, q]), axis=0))
        budget = rt.velocity_limits * rt.speed_scale * dt
        position_violations += int(((q < rt.lower) | (q > rt.upper)).sum())
        velocity_violations += int((steps > budget).sum())
        saturated = steps >= 0.999 * budget
        at_limit["arm"] += int(saturated[:, arm].any(axis=1).sum())
        at_limit["hand"] += int(saturated[:, ~arm].any(axis=1).sum())
        n_frames += len(q)
        human = np.array([rt.human_directions(d) for d in clip["dir_vec"]])
        robot_dirs = np.array([rt.link_directions(x) for x in q])
        for k, term in enumerate(rt.terms):
            errors.setdefault(term.kind, []).append(angles_deg(human[:, k], robot_dirs[:, k]))

    result = {
        "robot": robot,
        "joints": len(rt.joint_names),
        "arm_joints": len(rt.profile.arm_joints),
        "frames": n_frames,
        "angle_error_deg": {kind: {"mean": float(np.nanmean(np.concatenate(e))),
                                   "p95": float(np.nanpercentile(np.concatenate(e), 95))}
                            for kind, e in errors.items()},
        "position_limit_violations": position_violations,
        "velocity_limit_violations": velocity_violations,
        "frames_at_velocity_limit": {part: count / n_frames for part, count in at_limit.items()},
        "solve_cpu_ms": stats_ms(cpu),
        "solve_wall_ms": stats_ms(wall),
        "load_s": load_s,
    }
    return result, rt, trajectories


def print_table(results: list[dict]) -> None:
    kinds = ["upper_arm", "forearm", "hand_forward", "hand_side"]
    header = f"{'robot':<11}" + "".join(f"{k + ' mean/p95':>22}" for k in kinds) + \
        f"{'pos viol':>9}{'vel viol':>9}{'v-lim arm/hand':>16}{'cpu ms':>8}{'wall ms':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        cells = "".join(f"{r['angle_error_deg'][k]['mean']:>13.1f} /{r['angle_error_deg'][k]['p95']:>6.1f}"
                        if k in r["angle_error_deg"] else f"{'-':>22}" for k in kinds)
        print(f"{r['robot']:<11}{cells}{r['position_limit_violations']:>9}{r['velocity_limit_violations']:>9}"
              f"{r['frames_at_velocity_limit']['arm']:>9.1%} /{r['frames_at_velocity_limit']['hand']:>5.0%}"
              f"{r['solve_cpu_ms']['mean']:>8.3f}{r['solve_wall_ms']['mean']:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", nargs="+", default=shipped_profiles(), help="profile names (default: all)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ted_culture",
                        help="folder of TED Expressive clips (*.npz with dir_vec, fps)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "retargeting.json")
    parser.add_argument("--images", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--no-pictures", action="store_true", help="skip the PNG/MP4/GIF output")
    parser.add_argument("--clip", type=int, default=0, help="index of the clip drawn in the pictures")
    args = parser.parse_args()

    clips = load_clips(args.data)
    load_before = os.getloadavg()
    results = []
    for robot in tqdm(args.robots, desc="robots"):
        result, rt, trajectories = evaluate(robot, clips)
        results.append(result)
        if not args.no_pictures:
            clip, q = clips[args.clip], trajectories[args.clip]
            picks = list(np.linspace(0, len(q) - 1, 4).round().astype(int))
            save_frames_png(args.images / f"retarget_{robot}.png", rt, clip["dir_vec"], q, picks, clip["fps"])
            save_animation(args.images / f"retarget_{robot}.mp4", rt, clip["dir_vec"], q, clip["fps"])
            if robot == "pepper":  # GIF only for the default robot: GIFs are large
                save_animation(args.images / f"retarget_{robot}.gif", rt, clip["dir_vec"][::2], q[::2],
                               clip["fps"] / 2)
    print_table(results)
    report = {
        "clips": [c["id"] for c in clips],
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "pinocchio": pin.__version__, "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}" + ("" if args.no_pictures else f" and pictures in {args.images}"))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
