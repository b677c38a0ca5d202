"""Posture variety across speakers: one style for every utterance (z = mu) vs a style drawn per utterance.

    python benchmarks/style_variety.py [--checkpoint DIR] [--draws 8] [--posture-scale 1.0]

The 4 held-out TED-Culture clips (4 speakers the model never saw) are generated whole, as the speak action does,
and streamed, as the node gestures live speech: once with the deterministic style, and --draws times with
`style_per_utterance` (each draw: a new seed, so each clip gets its own style), with the style noise alone and with
the noise and a real training speaker's posture (what the engine draws from checkpoints that record the postures).
Reported per setting, as ratios to the real motion: how much the average elbow/wrist
posture varies across the clips (issue 15's goal: >= 0.8), wrist excursion, the arm-speed histogram distance to
the truth (a mismatched real clip: 0.302), loudness/arm-speed alignment, and how often Pepper / NAO have an arm
joint at a position limit. Four clips make the spread of one draw noisy: read the mean and the range over draws.
Prints a table, writes benchmarks/results/style_variety.json and style_variety.png (each clip's average pose, seen
from the front: the real speakers, then each setting's first draw).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # nothing here uses ROS; set as every script does
os.environ.setdefault("ROS_DOMAIN_ID", "77")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared" / "data" / "ted_culture")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--posture-scale", type=float, default=1.0,
                        help="what-if: the checkpoint's posture offsets multiplied by this (the engine uses 1)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "style_variety.json")
    args = parser.parse_args()

    from ha2g_model.engine import GestureEngine
    from training import ted_culture
    from training.evaluate import generate_clip, limit_rows, stream_clip
    from training.metrics import mean_posture, posture_spread, sequence_metrics, wrist_excursion

    clips = [c for c in ted_culture.load_clips(args.clips) if c.name in ted_culture.TEST_CLIPS]
    engine = GestureEngine.from_checkpoint(args.checkpoint, backend="auto")
    skeleton = engine.skeleton
    truth_spread = posture_spread([mean_posture(c.directions, skeleton) for c in clips])
    truth_excursion = np.mean([wrist_excursion(c.directions, skeleton) for c in clips])

    postures = None if engine.postures is None else engine.postures * args.posture_scale

    examples = {"real speakers": [c.directions for c in clips]}  # whole-utterance motion of each setting's first draw

    def measure(make=generate_clip, with_postures=True, example=None, **style) -> dict:
        engine.reconfigure(**style)
        engine.postures = postures if with_postures else None
        motions = [make(engine, clip) for clip in clips]
        if example and make is generate_clip:
            examples.setdefault(example, motions)
        rows = [sequence_metrics(m, c.directions, c.audio, skeleton) for m, c in zip(motions, clips)]
        limits = limit_rows({"model": motions})["model"]
        return {"posture_spread_ratio": posture_spread([mean_posture(m, skeleton) for m in motions]) / truth_spread,
                "wrist_excursion_ratio": float(np.mean([wrist_excursion(m, skeleton) for m in motions])
                                               / truth_excursion),
                "vel_hist_dist": float(np.mean([r["vel_hist_dist"] for r in rows])),
                "loudness_speed_corr": float(np.mean([r["loudness_speed_corr"] for r in rows])),
                **{f"{robot}_at_limit": limits[robot]["frames_at_limit"] for robot in limits}}

    results = {}
    for mode, make in (("whole", generate_clip), ("streamed", stream_clip)):
        fixed = measure(make, example="one style", seed=None, style_per_utterance=False)
        settings = {"noise": False, "noise + posture": True} if postures is not None else {"noise": False}
        drawn = {name: [measure(make, with_postures, f"per utterance: {name}", seed=draw, style_per_utterance=True)
                        for draw in range(args.draws)] for name, with_postures in settings.items()}
        summary = {name: {k: {"mean": float(np.mean([d[k] for d in draws])), "min": float(min(d[k] for d in draws)),
                              "max": float(max(d[k] for d in draws))} for k in fixed} for name, draws in drawn.items()}
        results[mode] = {"one_style": fixed, "per_utterance": summary, "draws": drawn}
        print(f"\n{mode}: {len(clips)} held-out clips; {args.draws} draws of a style per utterance: mean [min, max]")
        print(f"{'measure':<24}{'one style (z = mu)':>20}" + "".join(f"{name:>30}" for name in summary))
        for k in fixed:
            print(f"{k:<24}{fixed[k]:>20.3f}" + "".join(
                f"{s[k]['mean']:>14.3f} [{s[k]['min']:.3f}, {s[k]['max']:.3f}]" for s in summary.values()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_average_poses(examples, skeleton, [c.name for c in clips], args.out.with_suffix(".png"))
    args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint or "shipped default"),
                                    "clips": [c.name for c in clips], **results}, indent=1))
    print(f"-> {args.out}")
    return 0


def plot_average_poses(examples: dict, skeleton, names: list[str], path: Path) -> None:
    """One panel per setting: each clip's average pose (joint positions averaged over its frames), front view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ha2g_model.skeleton import directions_to_positions, to_body_frame

    figure, axes = plt.subplots(1, len(examples), figsize=(3.2 * len(examples), 3.8), sharex=True, sharey=True)
    for ax, (title, motions) in zip(axes, examples.items()):
        for k, (motion, name) in enumerate(zip(motions, names)):
            pose = to_body_frame(directions_to_positions(motion, skeleton).mean(axis=0), skeleton)
            for parent, child in skeleton.bones:
                ax.plot(-pose[[parent, child], 1], pose[[parent, child], 2], color=f"C{k}", lw=1.5,
                        label=f"{k + 1}: {name}" if (parent, child) == skeleton.bones[0] else None)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=6, loc="lower left")
    figure.suptitle("Average pose of each held-out clip (front view): how much it differs between clips", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"-> {path}")


if __name__ == "__main__":
    sys.exit(main())
