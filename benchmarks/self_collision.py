"""Self-collision benchmark: the margin on real and generated motion, its cost, and the physics check, per robot.

    python benchmarks/self_collision.py                  # all shipped robots, a few minutes on 2 cores
    python benchmarks/self_collision.py --robots pepper --physics-seconds 10 --no-pictures

Motion (all at 15 fps, TED Expressive directions):
- ground truth: every clip of ../shared/data/ted_culture (100 s, pose estimated from video) and the BEAT motion
  capture of ../shared/data/beat_scott (64 s with fingers; read with training.recordings.read_bvh at 15 fps: its
  header claims 120 fps, see that folder's README);
- generated: the shipped model on the audio and words of the ted_culture clips (generate_utterance).
Per robot it prints and writes (benchmarks/results/self_collision.json):
- the closest approach between declared parts over all frames, with and without the margin, and the number of
  frames that penetrate (distance < 0) without it and with it (must be 0) or come closer than the margin;
- how often the margin changed the pose (frames where the filter moved some joint by > 0.1 degree) and by how much
  (mean / max over those frames of the largest joint change, degrees);
- solve time per frame (both arms and hands, margin included; CPU time of the thread, ms);
- along the played motion (targets planned by the safe-motion layer as the gesture node does, see played(), and
  sampled at 100 Hz): the closest approach and the share of samples closer than the margin or penetrating;
- the physics check (ha2g_ros.retargeting.physics) on the played first `--physics-seconds` of the ground-truth
  motion: arm tracking error mean / p95 (degrees), self-contact steps and peak / p99 effort as a fraction of the
  URDF limit, overall and in the steps without self-contact.
Picture per robot (docs/images/closest_<robot>.png): the frame of the closest approach with the margin, beside the
speaker.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from timing import stats_ms  # benchmarks/ is on the path of a script run from it

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))

from ha2g_model.skeleton import FPS, TED_EXPRESSIVE  # noqa: E402
from ha2g_ros.retargeting import Retargeter, load_profile, shipped_profiles  # noqa: E402
from ha2g_ros.retargeting.physics import PhysicsRobot  # noqa: E402
from ha2g_ros.retargeting.visualize import save_frames_png  # noqa: E402
from ha2g_ros.safe_motion import KnotPlan, MotionLimits, SafeMotion  # noqa: E402
from ha2g_ros.trajectory import PlayedMotion, Timeline, build_trajectory  # noqa: E402
from safe_motion import COMMIT_LEAD_S, DELAY, HOP, T0  # noqa: E402  (the node's defaults, as that benchmark plays them)
from training.recordings import map_positions, read_bvh, to_ted_frame  # noqa: E402

# BEAT (v1 skeleton) joint -> TED Expressive joint.
BEAT_JOINTS = {"spine": "Spine1", "neck": "Neck", **{f"{s}_{j}": f"{S}{b}" for s, S in (("left", "Left"),
                                                                                        ("right", "Right"))
                                                     for j, b in (("shoulder", "Arm"), ("elbow", "ForeArm"),
                                                                  ("wrist", "Hand"))},
               **{f"{s}_{f}_{k}": f"{S}Hand{F}{k}" for s, S in (("left", "Left"), ("right", "Right"))
                  for f, F in (("index", "Index"), ("middle", "Middle"), ("pinky", "Pinky"), ("ring", "Ring"),
                               ("thumb", "Thumb")) for k in (1, 2, 3)}}


def ted_clips(folder: Path) -> list[dict]:
    clips = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            clips.append({"id": path.stem, "dir_vec": data["dir_vec"].astype(np.float64),
                          "audio": data["audio"].astype(np.float32) / 32767,
                          "words": [(str(w).strip(), max(float(a), 0.0), max(float(b), 0.0))
                                    for w, (a, b) in zip(data["words"], data["word_times"]) if str(w).strip()]})
    return clips


def beat_motion(path: Path) -> np.ndarray:
    """(T, 42, 3) TED Expressive directions at 15 fps from the BEAT BVH (y up, facing +z, cm)."""
    names, positions, _ = read_bvh(path)  # frame time ignored: the file holds 15 fps (README)
    positions = positions @ to_ted_frame("+y", "+z").T
    return map_positions(positions, {ted: names.index(beat) for ted, beat in BEAT_JOINTS.items()}).astype(np.float64)


def generated_motion(clips: list[dict]) -> list[np.ndarray]:
    from ha2g_model.engine import GestureEngine

    engine = GestureEngine.from_checkpoint(None, backend="auto")
    return [engine.generate_utterance(c["audio"], c["words"]).astype(np.float64) for c in clips]


def run(rt: Retargeter, motion: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Joint trajectory, per-frame filter change (rad, max over joints) and solve CPU times."""
    rt.margin = margin
    rt.reset()
    q, change, cpu = [], [], []
    for frame in motion:
        start = time.thread_time()
        q.append(rt.solve(frame, 1 / FPS))
        cpu.append(time.thread_time() - start)
        change.append(np.abs(rt.margin_correction).max() if margin > 0 else 0.0)
    return np.array(q), np.array(change), cpu


def played(rt: Retargeter, directions: np.ndarray, rng: np.random.Generator,
           rate: float = 100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (0 at the first target), positions and velocities of what the controllers play from `directions`,
    sampled at `rate`: retargeted and planned hop by hop as the gesture node does (KnotPlan.update once per hop,
    messages reaching the controllers 0 to 60 ms after they are sent), as benchmarks/safe_motion.py drives it."""
    names = rt.joint_names
    amax = np.array([rt.profile.acceleration_limit_of(n) for n in names])
    plan = KnotPlan(SafeMotion(MotionLimits(rt.lower, rt.upper, rt.velocity_limits * rt.speed_scale, amax), 1 / FPS),
                    body=rt)  # as the gesture node plans
    controller = PlayedMotion(names, rt.rest_pose(), T0)  # one controller for all groups: they get the same points
    targets = Timeline()
    rt.reset()
    for first in range(0, len(directions), HOP):
        now = T0 + first / FPS + 0.01
        for k in range(first, min(first + HOP, len(directions))):
            targets.append(T0 + DELAY + k / FPS, rt.solve(directions[k], dt=1 / FPS))
        if plan.update(now, COMMIT_LEAD_S, targets.at, targets.last()[0], controller.state(now)[0],
                       T0 + DELAY + first / FPS):
            plan.forget_before(now)
            times_ns, positions, velocities = plan.to_send()
            arrival = now + rng.uniform(0.0, COMMIT_LEAD_S)  # any delivery within the lead
            controller.receive(build_trajectory(names, times_ns, positions, velocities), arrival)
    times = np.arange(-DELAY, len(directions) / FPS + 1.0, 1 / rate)  # from rest, before the plan starts
    positions, velocities, _ = controller.sample(T0 + DELAY + times)
    return times, positions, velocities


def closest(rt: Retargeter, q: np.ndarray) -> np.ndarray:
    return np.array([min(rt.part_distances(x).values()) for x in q])


def evaluate(robot: str, sources: dict[str, list[np.ndarray]], physics_seconds: float, images: Path | None) -> dict:
    rt = Retargeter(load_profile(robot))
    margin = rt.margin
    result = {"robot": robot, "margin_m": margin, "pairs": [list(p) for p in rt.profile.collision.pairs],
              "shapes": len(rt.collision.shapes), "sources": {}}
    cpu_all, worst = [], (np.inf, None)
    for source, motions in sources.items():
        free = np.concatenate([closest(rt, run(rt, m, 0.0)[0]) for m in motions])
        kept, changes = [], []
        for m in motions:
            q, change, cpu = run(rt, m, margin)
            d = closest(rt, q)
            kept.append(d)
            changes.append(change)
            cpu_all += cpu
            if d.min() < worst[0]:
                worst = (float(d.min()), (m, q, int(d.argmin())))
        kept, changes = np.concatenate(kept), np.degrees(np.concatenate(changes))
        moved = changes > 0.1
        result["sources"][source] = {
            "frames": int(len(kept)),
            "closest_without_margin_m": float(free.min()),
            "penetrating_frames_without_margin": int((free < 0).sum()),
            "closer_than_margin_frames_without_margin": int((free < margin).sum()),
            "closest_with_margin_m": float(kept.min()),
            "penetrating_frames_with_margin": int((kept < 0).sum()),
            "closer_than_margin_frames_with_margin": int((kept < margin - 1e-4).sum()),
            "frames_changed_by_margin": float(moved.mean()),
            "change_deg": {"mean": float(changes[moved].mean()) if moved.any() else 0.0,
                           "max": float(changes.max())},
        }
    result["solve_cpu_ms"] = stats_ms(cpu_all)
    # What the controllers play (planned by the safe-motion layer, lagging the targets) at 100 Hz, per clip.
    rng = np.random.default_rng(0)
    for source, motions in sources.items():
        d = np.concatenate([[rt.collision.closest_distance(rt._to_model(x), 0.2) for x in played(rt, m, rng)[1]]
                            for m in motions])
        result["sources"][source]["played"] = {
            "samples_100hz": int(len(d)), "closest_m": float(d.min()),
            "closer_than_margin_share": float((d < margin - 1e-4).mean()), "penetrating_share": float((d < 0).mean()),
            "deepest_below_margin_m": float(max(margin - d.min(), 0.0))}
    # Physics on the played ground truth (ted_culture clips back to back, then BEAT), first physics_seconds of it:
    # the trajectory the node publishes, with its acceleration limits, not the raw 15 fps frames.
    truth = np.concatenate(sources["ted_culture"] + sources["beat_scott"])[:int(physics_seconds * FPS)]
    result["physics"] = PhysicsRobot(rt).follow(*played(rt, truth, rng))
    if images is not None:
        m, q, i = worst[1]
        save_frames_png(images / f"closest_{robot}.png", rt, m, q, [i], FPS)
    return result


def print_table(results: list[dict]) -> None:
    header = (f"{'robot':<11}{'source':<13}{'closest free/kept mm':>22}{'pen free/kept':>15}{'changed':>9}"
              f"{'deg mean/max':>14}")
    print(header)
    print("-" * len(header))
    for r in results:
        for source, s in r["sources"].items():
            print(f"{r['robot']:<11}{source:<13}{1e3 * s['closest_without_margin_m']:>13.1f} /"
                  f"{1e3 * s['closest_with_margin_m']:>6.1f}{s['penetrating_frames_without_margin']:>9} /"
                  f"{s['penetrating_frames_with_margin']:>4}{s['frames_changed_by_margin']:>9.1%}"
                  f"{s['change_deg']['mean']:>8.1f} /{s['change_deg']['max']:>5.1f}")
    print()
    print(f"{'robot':<11}{'source':<13}{'played closest mm':>19}{'< margin':>10}{'< 0':>8}")
    for r in results:
        for source, s in r["sources"].items():
            p = s["played"]
            print(f"{r['robot']:<11}{source:<13}{1e3 * p['closest_m']:>19.1f}{p['closer_than_margin_share']:>10.1%}"
                  f"{p['penetrating_share']:>8.1%}")
    print()
    print(f"{'robot':<11}{'cpu ms mean/p95/max':>22}{'track deg mean/p95':>20}{'contacts':>10}{'effort peak/p99':>17}{'no-contact peak':>16}")
    for r in results:
        c, p = r["solve_cpu_ms"], r["physics"]
        print(f"{r['robot']:<11}{c['mean']:>8.2f} /{c['p95']:>5.2f} /{c['max']:>5.1f}"
              f"{p['tracking_error_deg']['arm_mean']:>11.2f} /{p['tracking_error_deg']['arm_p95']:>5.2f}"
              f"{p['self_contact_steps']:>10}{p['peak_effort_fraction']:>10.2f} /{p['effort_fraction_p99']:>5.2f}"
              f"{p['peak_effort_fraction_without_contact']:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", nargs="+", default=shipped_profiles())
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--physics-seconds", type=float, default=30.0, help="ground truth played in MuJoCo per robot")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "self_collision.json")
    parser.add_argument("--images", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--no-pictures", action="store_true")
    args = parser.parse_args()
    clips = ted_clips(args.data / "ted_culture")
    sources = {"ted_culture": [c["dir_vec"] for c in clips],
               "beat_scott": [beat_motion(args.data / "beat_scott" / "2_scott_0_1_1.bvh")],
               "generated": generated_motion(clips)}
    for name, motions in sources.items():
        assert all(m.shape[1:] == (TED_EXPRESSIVE.n_bones, 3) for m in motions), name
    results = []
    for robot in args.robots:
        start = time.monotonic()
        results.append(evaluate(robot, sources, args.physics_seconds, None if args.no_pictures else args.images))
        print(f"{robot}: {time.monotonic() - start:.0f} s", flush=True)
    print_table(results)
    report = {"motion_s": {k: sum(len(m) for m in v) / FPS for k, v in sources.items()},
              "physics_seconds": args.physics_seconds, "load_average": os.getloadavg(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
