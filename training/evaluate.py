"""Evaluate a checkpoint against baselines; write report.md, report.json and trajectories.png.

    python -m training.evaluate --checkpoint runs/compact_english/best --feature-net runs/feature_net \
        --data data/default_windows --out runs/compact_english/eval [--clips ../shared/data/ted_culture] \
        [--compare "old default=DIR" ...] [--beat ../shared/data/beat_scott] [--espeak]

* Windows (the paper's protocol) of the data set's test split, per source, four rows (ground truth, mean pose, a
  permutation of the real windows, model): FGD against the real windows, Diversity, BC, L1. The model gets the true
  4 seed frames and z = mu.
* Whole held-out real clips (ted_culture TEST_CLIPS), generated the way the robot does it (GestureEngine, its
  default speaker, rest-pose seed), whole utterance and streamed: L1, velocity-histogram distance, loudness/arm-speed
  correlation (the alignment measure that tells real from mismatched speech) and its chance level, BC, jerk,
  acceleration, arm speed, wrist excursion, finger speed; over the clips: how much the average posture varies, the
  ratios to the ground truth, and how often Pepper's and NAO's retargeted arm joints sit at a position limit. The
  mismatched row averages every other clip's motion (mirrored at its end where it is too short) under this clip's
  audio. `--compare` adds other checkpoints (the old default) as rows.
* Speech without motion (`--beat`: BEAT's speech-only takes; `--espeak`: the robot's voice): alignment against
  chance, and how much the words change the motion (the same speech without its transcript).
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
from training.metrics import (ARM_JOINTS, beat_consistency, chance_loudness_speed_correlation, diversity,
                              finger_speed, frechet_distance, l1_directions, loudness_speed_correlation, mean_metrics,
                              mean_posture, posture_spread, sequence_metrics, speeds, wrist_excursion)
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
    if windows.valid is not None and not windows.valid.all():  # a source's missing bones: everyone has the truth's
        missing = ~windows.valid[..., None]
        candidates = {name: np.where(missing, truth, d) for name, d in candidates.items()}

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


def stream_clip(engine: GestureEngine, clip, chunk: int = 1600) -> np.ndarray:
    """The engine's motion for a whole clip as the node makes it: words pushed up front, the audio in 100 ms chunks,
    frames pulled after each, the rest at the end; exactly `clip.n_frames` long."""
    engine.reset()
    engine.push_words(clip.words)
    frames = []
    for i in range(0, len(clip.audio), chunk):
        engine.push_audio(clip.audio[i:i + chunk])
        frames.append(engine.pull_frames()[1])
    frames.append(engine.finish()[1])
    return mirror_to(np.concatenate(frames), clip.n_frames)


def clip_rows(engines: dict[str, GestureEngine], clips, pool) -> tuple[dict, dict, dict, dict]:
    """Per-row means over the test clips, per-clip rows, the motion of every row (for the plot and the set-level
    measures) and the set-level measures: how much the average posture varies across the clips, and the ratios of
    wrist excursion, posture spread and finger speed to the ground truth's.

    Rows: ground truth, mean pose, the mismatched real clips, then per engine its whole-utterance motion and its
    streamed motion ("<name> (streamed)")."""
    skeleton = next(iter(engines.values())).skeleton
    per_clip: dict[str, list] = {}
    motions: dict[str, list] = {}

    def add(row: str, motion: np.ndarray, clip) -> None:
        per_clip.setdefault(row, []).append(sequence_metrics(motion, clip.directions, clip.audio, skeleton))
        motions.setdefault(row, []).append(motion)

    for k, clip in enumerate(clips):
        n = clip.n_frames
        add("ground truth", clip.directions, clip)
        add("mean pose", np.broadcast_to(skeleton.rest_directions(), clip.directions.shape).copy(), clip)
        others = [o for o in pool if o.name != clip.name]
        per_clip.setdefault("mismatched real clip", []).append(mean_metrics(
            [sequence_metrics(mirror_to(o.directions, n), clip.directions, clip.audio, skeleton) for o in others]))
        # one other clip per test clip, a different one for each, for the measures over the set of clips
        motions.setdefault("mismatched real clip", []).append(mirror_to(others[k % len(others)].directions, n))
        for name, engine in engines.items():
            add(name, generate_clip(engine, clip), clip)
            add(f"{name} (streamed)", stream_clip(engine, clip), clip)
    means = {name: mean_metrics(rows) for name, rows in per_clip.items()}
    named = {name: dict(zip([c.name for c in clips], rows)) for name, rows in per_clip.items()}
    spread = {name: posture_spread([mean_posture(m, skeleton) for m in ms]) for name, ms in motions.items()}
    sets = {}
    for name in per_clip:
        sets[name] = {"posture_spread": spread[name]}
        for key in ("wrist_excursion", "finger_speed"):
            truth, value = means["ground truth"][key], means[name][key]
            sets[name][f"{key}_ratio"] = value / truth if truth and value is not None else None
        sets[name]["posture_spread_ratio"] = spread[name] / spread["ground truth"]
    return means, named, motions, sets


# --- robots: how often a retargeted joint sits at its position limit ----------------------------------------------

LIMIT_ROBOTS = ("pepper", "nao")
AT_LIMIT = 0.01  # within 1 % of the joint's range from a limit


def limit_rows(motions: dict[str, list[np.ndarray]], robots=LIMIT_ROBOTS) -> dict:
    """Per row and robot: the fraction of frames in which some arm joint of the retargeted motion is at a position
    limit, and the arm joint most often there (name and fraction). Motion that leans on a limit all the time (the
    issue-15 default: Pepper's and NAO's left elbow 90 % of the time) looks frozen on the robot."""
    from ha2g_ros.retargeting import Retargeter, load_profile

    out: dict = {}
    for robot in robots:
        retargeter = Retargeter(load_profile(robot))
        n_arm = len(retargeter.profile.arm_joints)
        margin = AT_LIMIT * (retargeter.upper - retargeter.lower)
        for row, sequences in motions.items():
            at_limit = []
            for directions in sequences:
                retargeter.reset()
                q = retargeter.solve_sequence(directions)[:, :n_arm]
                at_limit.append((q <= retargeter.lower[:n_arm] + margin[:n_arm])
                                | (q >= retargeter.upper[:n_arm] - margin[:n_arm]))
            frames = np.concatenate(at_limit)
            worst = int(frames.mean(axis=0).argmax())
            out.setdefault(row, {})[robot] = {"frames_at_limit": float(frames.any(axis=1).mean()),
                                              "joint": retargeter.joint_names[worst],
                                              "joint_at_limit": float(frames[:, worst].mean())}
    return out


# --- speech without motion: coupling and the effect of the words --------------------------------------------------

def words_effect(with_words: np.ndarray, without_words: np.ndarray, skeleton: Skeleton) -> dict:
    """How much the transcript changes the arm motion: mean wrist distance between the motion made with the words and
    without them (units), and that distance relative to the wrist excursion of the motion with words."""
    wrists = [skeleton.joint_names.index(j) for j in ("left_wrist", "right_wrist")]
    a, b = (directions_to_positions(d, skeleton)[:, wrists] for d in (with_words, without_words))
    distance = float(np.linalg.norm(a - b, axis=-1).mean())
    excursion = wrist_excursion(with_words, skeleton)
    return {"wrist_distance": distance, "relative_to_excursion": distance / excursion if excursion else None,
            "l1": l1_directions(with_words, without_words)}


def speech_rows(engines: dict[str, GestureEngine], utterances) -> dict:
    """Per engine, means over `utterances` [(audio, words)] that have no true motion: the alignment measure against
    its chance level, arm speed and wrist excursion, and the words' effect (the same speech without its words)."""
    rows = {}
    for name, engine in engines.items():
        per_utterance = []
        for audio, words in utterances:
            motion = engine.generate_utterance(audio, words, fade_to_rest=False)
            silent_words = engine.generate_utterance(audio, None, fade_to_rest=False)
            skeleton = engine.skeleton
            per_utterance.append({
                "loudness_speed_corr": loudness_speed_correlation(motion, audio, skeleton),
                "loudness_speed_corr_chance": chance_loudness_speed_correlation(motion, audio, skeleton),
                "arm_speed": float(speeds(motion, skeleton, ARM_JOINTS).mean()),
                "wrist_excursion": wrist_excursion(motion, skeleton),
                "finger_speed": finger_speed(motion, skeleton),
            } | {f"words_{k}": v for k, v in words_effect(motion, silent_words, skeleton).items()})
        rows[name] = mean_metrics(per_utterance)
    return rows


def beat_speech_only(folder: str | Path) -> list[tuple[np.ndarray, list]]:
    """BEAT takes that have speech and word timings but no motion (held out from training by construction)."""
    from ha2g_model.words import read_words
    from training.recordings import load_audio

    folder = Path(folder)
    wavs = sorted(p for p in folder.rglob("*.wav") if not p.with_suffix(".bvh").exists()
                  and p.with_suffix(".TextGrid").exists())
    return [(load_audio(p), read_words(p.with_suffix(".TextGrid"))) for p in wavs]


def espeak_utterances() -> list[tuple[np.ndarray, list]]:
    """The robot demo's paragraphs in espeak-ng's voice, with the word timings espeak-ng reports."""
    from ha2g_ros.tts import SPEECH
    from training.synthetic import Espeak

    espeak = Espeak()
    return [espeak.synthesize(" ".join(paragraph)) for paragraph in SPEECH]


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


def _table(rows: dict, cols, names=None) -> list[str]:
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in names or rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(rows[name].get(c)) for c in cols) + " |")
    return lines + [""]


def markdown(report: dict) -> str:
    lines = [f"Checkpoint: `{report['checkpoint']}`" + "".join(f"; {name}: `{path}`" for name, path in
                                                               report.get("compared", {}).items()), ""]
    if report.get("clips"):
        lines += ["### Held-out real clips (whole clips, generated as on the robot)",
                  f"Clips: {', '.join(report['clip_names'])}. Each model twice: the whole utterance at once, and "
                  "streamed as the node does (100 ms chunks, default hop and lookahead). Lower is better for "
                  "vel_hist_dist (Hellinger distance of arm-speed histograms to the ground truth) and l1; "
                  "loudness_speed_corr is the best Pearson correlation of loudness and arm speed over lags of +-4 "
                  "frames (higher = motion follows the voice), `chance` the same with the audio time-shifted (1/4, "
                  "1/2, 3/4 of the clip: unrelated speech with the same statistics); jerk / acceleration in "
                  "units/s^3 / units/s^2; arm_speed and finger_speed (fingers relative to the wrist) in units/s; "
                  "wrist_excursion: mean distance of a wrist from its mean position (units).", ""]
        lines += _table(report["clips"], ("vel_hist_dist", "loudness_speed_corr", "loudness_speed_corr_chance", "bc",
                                          "l1", "jerk", "acceleration", "arm_speed"))
        sets = report["clip_sets"]
        for name, row in sets.items():
            row.update({f"{robot} at limit": v["frames_at_limit"] for robot, v in report["limits"][name].items()})
            row.update({k: report["clips"][name][k] for k in ("wrist_excursion", "finger_speed")})
        robots = list(next(iter(report["limits"].values())))
        lines += ["Amplitude, posture and the robots: posture_spread is how much the average elbow/wrist position "
                  "varies across the clips (RMS, units); ratios are to the ground truth's (goal >= 0.8); "
                  "`<robot> at limit` is the fraction of frames in which some arm joint of the retargeted motion "
                  f"is within {AT_LIMIT:.0%} of its range from a position limit (the joint most often there below).", ""]
        lines += _table(sets, ("wrist_excursion", "wrist_excursion_ratio", "posture_spread", "posture_spread_ratio",
                               "finger_speed", "finger_speed_ratio") + tuple(f"{r} at limit" for r in robots))
        lines += [", ".join(f"{name}: " + "; ".join(f"{robot} {v['joint']} {v['joint_at_limit']:.0%}"
                                                    for robot, v in limits.items())
                            for name, limits in report["limits"].items()), ""]
    for title, rows in report.get("speech", {}).items():
        lines += [f"### {title}",
                  "No true motion here: the alignment measure against its chance level (time-shifted audio), and "
                  "how much the transcript changes the arm motion (the same speech generated without its words): "
                  "words_wrist_distance (units), relative to the wrist excursion, and the L1 of the directions.", ""]
        lines += _table(rows, ("loudness_speed_corr", "loudness_speed_corr_chance", "arm_speed", "wrist_excursion",
                               "finger_speed", "words_wrist_distance", "words_relative_to_excursion", "words_l1"))
    for source, rows in report.get("windows", {}).items():
        cols = [c for c in ("fgd", "diversity", "bc", "l1") if c in rows["model"]]
        lines += [f"### Test windows: {source} ({report['window_counts'][source]} windows, 34 frames, true seed)", ""]
        lines += _table(rows, cols, ROWS)
    if report.get("windows"):
        lines.append("On windows the mismatched row is a permutation of the same windows: its FGD and Diversity equal "
                     "the ground truth's by construction (only its BC and L1 say something). FGD uses the feature net "
                     "trained on this data set, so it is not comparable with the paper's values. Bones a source does "
                     "not have (its validity mask) count for nothing: every row takes the ground truth's there.")
    return "\n".join(lines)


def evaluate(checkpoint: str, out: str, data: str | None = None, feature_net: str | None = None,
             clips_dir: str | None = str(ted_culture.DEFAULT_DIR), split: str = "test", seed: int = 0,
             compare: dict[str, str] | None = None, beat_dir: str | None = None, espeak: bool = False) -> dict:
    """`checkpoint` is the "model" row; `compare` adds other checkpoints (name -> directory) to the whole-clip and
    speech tables; `beat_dir` adds BEAT's speech-only takes, `espeak` the demo's sentences in espeak-ng's voice."""
    torch.manual_seed(seed)
    model, vocab, meta = load_checkpoint(checkpoint)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"checkpoint": os.path.relpath(checkpoint), "meta_epoch": meta.get("epoch"),
                    "compared": {name: os.path.relpath(path) for name, path in (compare or {}).items()}}
    engines = {"model": GestureEngine(model, vocab)} | {name: GestureEngine.from_checkpoint(path)
                                                        for name, path in (compare or {}).items()}
    if clips_dir is not None and Path(clips_dir).exists():
        pool = ted_culture.load_clips(clips_dir)
        clips = [c for c in pool if c.name in ted_culture.TEST_CLIPS]
        means, per_clip, motions, sets = clip_rows(engines, clips, pool)
        report.update(clips=means, per_clip=per_clip, clip_names=[c.name for c in clips], clip_sets=sets,
                      limits=limit_rows(motions))
        plot_trajectories(clips, dict(zip([c.name for c in clips], motions["model"])), engines["model"].skeleton,
                          out_dir / "trajectories.png")
    speech = {}
    if beat_dir is not None:
        speech["BEAT speech-only takes (real English, speaker 2_scott, no motion)"] = beat_speech_only(beat_dir)
    if espeak:
        speech["espeak-ng speech (the robot demo's sentences)"] = espeak_utterances()
    report["speech"] = {title: speech_rows(engines, utterances) for title, utterances in speech.items() if utterances}
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
    parser.add_argument("--compare", nargs="*", default=[], metavar="NAME=DIR",
                        help="more checkpoints in the whole-clip and speech tables, e.g. 'old default=DIR'")
    parser.add_argument("--beat", help="BEAT folder: its speech-only takes test speech coupling and the words' effect")
    parser.add_argument("--espeak", action="store_true", help="also the demo's sentences in espeak-ng's voice")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    compare = dict(item.split("=", 1) for item in args.compare)
    evaluate(args.checkpoint, args.out, args.data, args.feature_net, args.clips or None, args.split,
             compare=compare, beat_dir=args.beat, espeak=args.espeak)
    print((Path(args.out) / "report.md").read_text())


if __name__ == "__main__":
    main()
