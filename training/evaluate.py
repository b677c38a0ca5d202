"""Evaluate a checkpoint against baselines; write report.md, report.json and trajectories.png.

    python -m training.evaluate --checkpoint runs/compact_expressive/best --feature-net runs/feature_net \
        --data data/default_windows --out runs/compact_expressive/eval [--clips ../shared/data/ted_culture]

Two levels, each with the same four rows: ground truth, mean pose, a random real clip (mismatched speech), model.
* Windows (the paper's protocol) of the data set's test split, per source: FGD against the real windows,
  Diversity, BC, L1. The model gets the true 4 seed frames and z = mu.
* Whole held-out real clips (ted_culture TEST_CLIPS), generated the way the robot does it (GestureEngine,
  speaker 0, rest-pose seed): L1, velocity-histogram distance, loudness/arm-speed correlation (the alignment measure
  that tells real from mismatched speech), BC, jerk, acceleration, mean arm speed. The mismatched row averages
  every other clip's motion (mirrored at its end where it is too short) under this clip's audio.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from ha2g_model.checkpoint import load_checkpoint
from ha2g_model.engine import GestureEngine
from ha2g_model.skeleton import Skeleton, denormalize_directions, directions_to_positions, normalize_directions
from training import ted_culture
from training.metrics import (beat_consistency, diversity, frechet_distance, l1_directions, mean_metrics,
                              sequence_metrics)
from training.windows import N_SEED, Windows, load_windows

ROWS = ("ground truth", "mean pose", "mismatched real clip", "model")


# --- windows ------------------------------------------------------------------------------------------------------

@torch.no_grad()
def generate_windows(model, windows: Windows, batch_size: int = 64) -> np.ndarray:
    """(N, 34, n_bones, 3) unit directions generated from the windows' audio, words and true seed frames."""
    skeleton = windows.skeleton
    model.eval()
    pose = torch.from_numpy(windows.normalized_poses())
    out = []
    for i in range(0, len(windows), batch_size):
        s = slice(i, i + batch_size)
        spec = torch.from_numpy(windows.spec[s].astype(np.float32))
        words = torch.from_numpy(np.minimum(windows.words[s], model.config.n_words - 1).astype(np.int64))
        speaker = torch.zeros(len(spec), dtype=torch.int64)  # unseen test speakers: the default style, as the node
        out.append(model.generate_window(spec, words, pose[s][:, :N_SEED], speaker))
    return denormalize_directions(torch.cat(out), skeleton).numpy()


def window_rows(model, windows: Windows, feature_net, seed: int = 0) -> dict:
    skeleton = windows.skeleton
    rng = np.random.default_rng(seed)
    truth = windows.dir_vec
    mean = np.broadcast_to(skeleton.rest_directions(), truth.shape).copy()
    mismatched = truth[_derangement(len(truth), rng)]
    candidates = {"ground truth": truth, "mean pose": mean, "mismatched real clip": mismatched,
                  "model": generate_windows(model, windows)}

    def features(directions):
        return feature_net.features(torch.from_numpy(normalize_directions(directions, skeleton))).numpy()

    real_features = features(truth) if feature_net is not None else None
    audio = windows.audio.astype(np.float32) / 32767.0
    rows = {}
    for name, directions in candidates.items():
        bcs = [beat_consistency(d, a, skeleton) for d, a in zip(directions, audio)]
        bcs = [b for b in bcs if b is not None]
        row = {"l1": l1_directions(directions, truth), "bc": float(np.mean(bcs)) if bcs else None}
        if feature_net is not None:
            f = features(directions)
            row["fgd"] = frechet_distance(f, real_features)
            row["diversity"] = diversity(f, seed)
        rows[name] = row
    return rows


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation without fixed points (each window gets another window's motion)."""
    if n < 2:
        raise ValueError("need at least 2 windows for the mismatched baseline")
    return (np.arange(n) + rng.integers(1, n)) % n


# --- whole clips -------------------------------------------------------------------------------------------------

def mirror_to(directions: np.ndarray, n: int) -> np.ndarray:
    """Extend a motion to n frames by playing it back and forth (no jump, same speeds)."""
    while len(directions) < n:
        directions = np.concatenate([directions, directions[::-1][1:]])
    return directions[:n]


def generate_clip(engine: GestureEngine, clip) -> np.ndarray:
    """The engine's motion for a whole clip (no fade to rest), exactly `clip.n_frames` long to compare with it."""
    motion = engine.generate_utterance(clip.audio, clip.words, fade_to_rest=False)
    return mirror_to(motion, clip.n_frames)  # the engine rounds the duration; at most a frame differs


def clip_rows(engine: GestureEngine, clips, pool) -> tuple[dict, dict, dict]:
    """Per-row means over the test clips, per-clip rows, and the generated motion (for the plot)."""
    skeleton = engine.skeleton
    per_clip = {name: [] for name in ROWS}
    generated = {}
    for clip in clips:
        n = clip.n_frames
        model_motion = generate_clip(engine, clip)
        generated[clip.name] = model_motion
        per_clip["ground truth"].append(sequence_metrics(clip.directions, clip.directions, clip.audio, skeleton))
        rest = np.broadcast_to(skeleton.rest_directions(), clip.directions.shape).copy()
        per_clip["mean pose"].append(sequence_metrics(rest, clip.directions, clip.audio, skeleton))
        others = [sequence_metrics(mirror_to(o.directions, n), clip.directions, clip.audio, skeleton)
                  for o in pool if o.name != clip.name]
        per_clip["mismatched real clip"].append(mean_metrics(others))
        per_clip["model"].append(sequence_metrics(model_motion, clip.directions, clip.audio, skeleton))
    means = {name: mean_metrics(rows) for name, rows in per_clip.items()}
    named = {name: dict(zip([c.name for c in clips], rows)) for name, rows in per_clip.items()}
    return means, named, generated


def plot_trajectories(clips, generated: dict, skeleton: Skeleton, path: Path, n_clips: int = 3) -> None:
    """Right and left wrist height and depth over time: ground truth vs model vs a mismatched clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = clips[:n_clips]
    fig, axes = plt.subplots(len(clips), 2, figsize=(12, 2.6 * len(clips)), squeeze=False)
    wrists = [skeleton.joint_names.index(j) for j in ("right_wrist", "left_wrist")]
    for row, clip in enumerate(clips):
        other = clips[(row + 1) % len(clips)]
        series = {"ground truth": clip.directions, "model": generated[clip.name],
                  "mismatched": mirror_to(other.directions, clip.n_frames)}
        t = np.arange(clip.n_frames) / 15.0
        for col, joint in enumerate(wrists):
            ax = axes[row, col]
            for k, (label, directions) in enumerate(series.items()):
                p = directions_to_positions(directions, skeleton)[:, joint]  # TED Expressive: y down, z back
                ax.plot(t, -p[:, 1], color=f"C{k}", label=f"{label} height")
                ax.plot(t, -p[:, 2], "--", color=f"C{k}", label=f"{label} forward", alpha=0.7)
            ax.set_title(f"{clip.name}: {skeleton.joint_names[joint]}", fontsize=9)
            ax.set_xlabel("s")
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- report -------------------------------------------------------------------------------------------------------

def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def markdown(report: dict) -> str:
    lines = [f"Checkpoint: `{report['checkpoint']}`", ""]
    clip_cols = ("vel_hist_dist", "loudness_speed_corr", "bc", "l1", "jerk", "acceleration", "arm_speed")
    if report.get("clips"):
        lines += ["### Held-out real clips (whole clips, generated as on the robot)",
                  f"Clips: {', '.join(report['clip_names'])}. Lower is better for vel_hist_dist (Hellinger "
                  "distance of arm-speed histograms to the ground truth) and l1; loudness_speed_corr is the best "
                  "Pearson correlation of loudness and arm speed over lags of +-4 frames (higher = motion follows "
                  "the voice); jerk / acceleration in units/s^3 / units/s^2 (lower = smoother); arm_speed in units/s.",
                  "", "| | " + " | ".join(clip_cols) + " |", "|---" * (len(clip_cols) + 1) + "|"]
        for name in ROWS:
            lines.append(f"| {name} | " + " | ".join(_fmt(report["clips"][name].get(c)) for c in clip_cols) + " |")
        lines.append("")
    for source, rows in report.get("windows", {}).items():
        cols = [c for c in ("fgd", "diversity", "bc", "l1") if c in rows["model"]]
        lines += [f"### Test windows: {source} ({report['window_counts'][source]} windows, 34 frames, true seed)",
                  "", "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name in ROWS:
            lines.append(f"| {name} | " + " | ".join(_fmt(rows[name].get(c)) for c in cols) + " |")
        lines.append("")
    if report.get("windows"):
        lines.append("On windows the mismatched row is a permutation of the same windows: its FGD and Diversity equal "
                     "the ground truth's by construction (only its BC and L1 say something). FGD uses the feature net "
                     "trained on this data set, so it is not comparable with the paper's values.")
    return "\n".join(lines)


def evaluate(checkpoint: str, out: str, data: str | None = None, feature_net: str | None = None,
             clips_dir: str | None = str(ted_culture.DEFAULT_DIR), split: str = "test", seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model, vocab, meta = load_checkpoint(checkpoint)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"checkpoint": os.path.relpath(checkpoint), "meta_epoch": meta.get("epoch")}
    if clips_dir is not None and Path(clips_dir).exists():
        pool = ted_culture.load_clips(clips_dir)
        clips = [c for c in pool if c.name in ted_culture.TEST_CLIPS]
        engine = GestureEngine(model, vocab)
        means, per_clip, generated = clip_rows(engine, clips, pool)
        report.update(clips=means, per_clip=per_clip, clip_names=[c.name for c in clips])
        plot_trajectories(clips, generated, engine.skeleton, out_dir / "trajectories.png")
    if data is not None:
        net = None
        if feature_net is not None:
            from training.feature_net import load_feature_net

            net = load_feature_net(feature_net)
        windows = load_windows(data, split)
        sources = windows.sources()
        report["windows"], report["window_counts"] = {}, {}
        for source in sorted(set(sources)):
            subset = windows.subset(sources == source)
            if len(subset) >= 2:
                report["windows"][source] = window_rows(model, subset, net, seed)
                report["window_counts"][source] = len(subset)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "report.md").write_text(markdown(report))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (ha2g_model.checkpoint)")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--data", help="windows data set: window-level metrics on its --split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--feature-net", help="FGD feature net directory (training.train_feature_net)")
    parser.add_argument("--clips", default=str(ted_culture.DEFAULT_DIR),
                        help="ted_culture directory for whole-clip metrics ('' to skip)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    evaluate(args.checkpoint, args.out, args.data, args.feature_net, args.clips or None, args.split)
    print((Path(args.out) / "report.md").read_text())


if __name__ == "__main__":
    main()
