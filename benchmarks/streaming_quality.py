"""Streaming quality vs latency: streamed gestures against the whole-utterance result on the real TED clips.

    python benchmarks/streaming_quality.py [--checkpoint DIR] [--backend onnxruntime]

For each (hop, lookahead) setting every clip is streamed in 100 ms chunks (its words pushed up front) and compared
with `generate_utterance` on the same clip and weights: mean joint position error, the Hellinger distance of the
arm-speed histograms, beat consistency (BC, against the clip's audio onsets), and the largest frame-to-frame step
at emission joins relative to the steps inside emissions. Latency of a frame behind its speech is
lookahead + up to one hop + the window's compute time. Prints a markdown table, writes
benchmarks/results/streaming_quality.json. Without a trained checkpoint (the shipped default) it refuses to run
unless --random is given, since the numbers of an untrained model say little.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # nothing here uses ROS; set as every script does
os.environ.setdefault("ROS_DOMAIN_ID", "77")

SETTINGS = [(2, 0), (2, 1), (3, 0), (4, 0), (4, 4), (4, 8), (6, 0), (6, 4), (6, 6), (6, 8), (8, 6), (10, 0), (10, 4), (10, 8), (10, 15),
            (15, 0), (15, 8), (15, 15), (30, 0)]
CHUNK = 1600  # 100 ms of audio per push, like a microphone node


def load_clips(directory: Path) -> list[dict]:
    clips = []
    for path in sorted(directory.glob("*.npz")):
        with np.load(path) as data:
            clips.append({"id": str(data["clip_id"]), "audio": data["audio"].astype(np.float32) / 32768,
                          "truth": data["dir_vec"].astype(np.float32),
                          # the first word may start before the clip: clamped to its start
                          "words": [(str(w).strip(), max(float(a), 0.0), max(float(b), 0.0))
                                    for w, (a, b) in zip(data["words"], data["word_times"]) if str(w).strip()]})
    if not clips:
        raise SystemExit(f"no clips in {directory}")
    return clips


def stream(engine, clip) -> tuple[np.ndarray, list[float]]:
    engine.reset()
    engine.push_words(clip["words"])
    frames, compute = [], []
    for i in range(0, len(clip["audio"]), CHUNK):
        engine.push_audio(clip["audio"][i:i + CHUNK])
        before = engine.last_compute_s
        _, f = engine.pull_frames()
        if len(f):
            frames.append(f)
            if engine.last_compute_s != before:
                compute.append(engine.last_compute_s)
    return np.concatenate(frames), compute


def join_ratio(frames: np.ndarray, hop: int, lookahead: int) -> float:
    """Largest step at an emission join / 95th percentile of steps inside emissions (1 = no visible joint)."""
    steps = np.linalg.norm(np.diff(frames, axis=0), axis=-1).mean(axis=-1)
    index = np.arange(1, len(frames))
    joins = (index - hop + lookahead) % hop == 0
    if hop == 1 or not joins.any() or joins.all():
        return float("nan")
    return float(steps[joins].max() / np.percentile(steps[~joins], 95))


def plot(engine, clip, offline, path: Path) -> None:
    """The right wrist's height, streamed (default settings) vs whole utterance, emission joins marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ha2g_model.engine import EngineConfig
    from ha2g_model.skeleton import directions_to_positions, to_body_frame

    defaults = EngineConfig()
    engine.reconfigure(hop_frames=defaults.hop_frames, lookahead_frames=defaults.lookahead_frames)
    live, _ = stream(engine, clip)
    wrist = engine.skeleton.joint_names.index("right_wrist")

    def height(d):
        return to_body_frame(directions_to_positions(d, engine.skeleton), engine.skeleton)[:, wrist, 2]

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(np.arange(len(offline)) / 15, height(offline), label="whole utterance", color="0.5", lw=2)
    ax.plot(np.arange(len(live)) / 15, height(live), label=f"streamed (hop {defaults.hop_frames}, "
            f"lookahead {defaults.lookahead_frames})", color="C3", lw=1.2)
    for join in range(defaults.hop_frames - defaults.lookahead_frames, len(live), defaults.hop_frames):
        ax.axvline(join / 15, color="C0", lw=0.5, alpha=0.5)
    ax.set_xlabel("time (s); blue lines: first frame of each emission")
    ax.set_ylabel("right wrist height")
    ax.set_title(f"clip {clip['id']}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"-> {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--random", action="store_true", help="use a random compact model if there is no checkpoint")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared" / "data" / "ted_culture")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "streaming_quality.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "streaming_vs_whole.png")
    args = parser.parse_args()

    from ha2g_model.engine import GestureEngine
    from ha2g_model.skeleton import directions_to_positions
    from training.metrics import beat_consistency, velocity_histogram_distance

    try:
        engine = GestureEngine.from_checkpoint(args.checkpoint, backend=args.backend)
        model_name = str(args.checkpoint or "shipped default")
    except FileNotFoundError:
        if not args.random:
            raise
        import torch

        from ha2g_model.config import HA2GConfig
        from ha2g_model.model import HA2G

        torch.manual_seed(0)
        engine = GestureEngine(HA2G(HA2GConfig.preset("compact_expressive")), backend=args.backend)
        model_name = "random compact_expressive (untrained)"
    skeleton = engine.skeleton
    clips = load_clips(args.clips)
    print(f"{len(clips)} clips, {sum(len(c['audio']) for c in clips) / 16000:.0f} s; model: {model_name}; "
          f"backend: {engine.backend.name}")

    def positions(d):
        return directions_to_positions(d, skeleton)

    whole = []
    for clip in clips:
        out = engine.generate_utterance(clip["audio"], clip["words"], fade_to_rest=False)
        whole.append(out)
    reference = {
        "whole_bc": float(np.nanmean([beat_consistency(w, c["audio"], skeleton) or np.nan
                                      for w, c in zip(whole, clips)])),
        "truth_bc": float(np.nanmean([beat_consistency(c["truth"], c["audio"], skeleton) or np.nan
                                      for c in clips])),
    }

    rows = []
    for hop, lookahead in SETTINGS:
        started = time.perf_counter()
        engine.reconfigure(hop_frames=hop, lookahead_frames=lookahead)
        errors, vel, bc, joins, compute = [], [], [], [], []
        for clip, offline in zip(clips, whole):
            live, window_compute_s = stream(engine, clip)
            n = min(len(live), len(offline))
            errors.append(float(np.linalg.norm(positions(live[:n]) - positions(offline[:n]), axis=-1).mean()))
            vel.append(velocity_histogram_distance(live[:n], offline[:n], skeleton))
            score = beat_consistency(live, clip["audio"][:round(len(live) / 15 * 16000)], skeleton)
            bc.append(np.nan if score is None else score)
            joins.append(join_ratio(live, hop, lookahead))
            compute += window_compute_s
        compute_ms = float(np.median(compute) * 1000)
        rows.append({"hop_frames": hop, "lookahead_frames": lookahead,
                     "latency_max_ms": (hop + lookahead) / 15 * 1000 + compute_ms,
                     "latency_mean_ms": (lookahead + (hop + 1) / 2) / 15 * 1000 + compute_ms,
                     "compute_ms": compute_ms, "windows_per_s_of_speech": 15 / hop,
                     "joint_error": float(np.mean(errors)), "vel_hist_dist": float(np.mean(vel)),
                     "bc": float(np.nanmean(bc)), "join_step_ratio": float(np.nanmean(joins)),
                     "seconds": time.perf_counter() - started})
        r = rows[-1]
        print(f"hop {hop:2d} lookahead {lookahead:2d}: error {r['joint_error']:.4f} vel {r['vel_hist_dist']:.3f} "
              f"BC {r['bc']:.3f} joins {r['join_step_ratio']:.2f} latency <= {r['latency_max_ms']:.0f} ms", flush=True)

    print("\n| hop | lookahead | latency mean / max (ms) | windows/s | joint error | vel-hist dist | BC | join step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['hop_frames']} | {r['lookahead_frames']} | {r['latency_mean_ms']:.0f} / {r['latency_max_ms']:.0f} "
              f"| {r['windows_per_s_of_speech']:.1f} | {r['joint_error']:.4f} | {r['vel_hist_dist']:.3f} "
              f"| {r['bc']:.3f} | {r['join_step_ratio']:.2f} |")
    print(f"whole utterance BC {reference['whole_bc']:.3f}, ground truth BC {reference['truth_bc']:.3f}")
    plot(engine, clips[0], whole[0], args.plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": model_name, "backend": engine.backend.name, "chunk_samples": CHUNK,
                                    "clips": [c["id"] for c in clips], "reference": reference, "rows": rows},
                                   indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
