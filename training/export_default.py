"""Build the shipped default checkpoint (ha2g_model/checkpoints/default), start to finish.

    python -m training.export_default data      --out data/default_windows    # real clips + BEAT + synthetic corpus
    python -m training.train_feature_net --data data/default_windows --out runs/feature_net --epochs 30
    nice -n 19 python -m training.train --config training/configs/compact_english.yaml
    python -m training.export_default ship  --run runs/ship --data data/default_windows \
        --feature-net runs/feature_net [--compare "old default=<copy of the previous default>"] [--chosen-by ...]

`ship` takes `<run>/best`: copy the chosen checkpoint there (the default is runs/compact_english_real_only/epoch_0005).

The data: the 12 real TED-Culture clips (../shared/data/ted_culture, 4 held out for testing, 1 for validation), the
BEAT take with motion (../shared/data/beat_scott, real English with fingers; training), real windows cut with stride 2
instead of 10 because they are so few, plus a SYNTHETIC espeak-ng corpus (training/synthetic.py) whose speakers are
split 20 / 2 / 2 (train / val / test); the training config decides how much of it is drawn (source_weights).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from ha2g_model.checkpoint import load_checkpoint, save_checkpoint, update_meta
from ha2g_model.engine import DEFAULT_CHECKPOINT, GestureEngine
from ha2g_model.onnx_export import export_checkpoint_graphs
from training import beat, synthetic, ted_culture
from training.evaluate import evaluate, generate_clip
from training.metrics import mean_metrics, sequence_metrics
from training.vocabulary import english_vocabulary, function_words, robot_sentences_words, transcript_words
from training.windows import read_index, speaker_posture_offsets, write_dataset

MAX_BYTES = 30 * 1024 * 1024
REAL_SOURCES = ("ted_culture", "beat")  # the default style is one of their training speakers


BEAT_DIR = ted_culture.DEFAULT_DIR.parent / "beat_scott"


def build_data(out: str, n_synthetic: int = 300, n_speakers: int = 24, seed: int = 0,
               clips_dir: str | Path = ted_culture.DEFAULT_DIR, beat_dir: str | Path | None = BEAT_DIR) -> dict:
    """TED-Culture clips (split by talk), every BEAT take with motion (training: BEAT's one speaker cannot also be
    held out; its speech-only takes test speech coupling instead) and the synthetic corpus; the English vocabulary
    of training.vocabulary."""
    real = ted_culture.load_clips(clips_dir)
    split = {c.name: ted_culture.split_of(c.name) for c in real}
    english = []
    if beat_dir is not None:
        english = [beat.load_take(*take) for take in beat.find_takes(Path(beat_dir))]
        split |= {take.name: "train" for take in english}
    synth = synthetic.make_corpus(n_synthetic, n_speakers=n_speakers, seed=seed) if n_synthetic else []
    for s in synth:  # the last two synthetic speakers are test, the two before val
        k = int(s.speaker[-3:])
        split[s.name] = "test" if k >= n_speakers - 2 else "val" if k >= n_speakers - 4 else "train"
    sequences = real + english + synth
    extra = (transcript_words(beat_dir) if beat_dir is not None else []) + robot_sentences_words() + function_words()
    return write_dataset(sequences, out, "ted_expressive", split_of=split,
                         vocab=english_vocabulary(sequences, extra), speakers=sorted({s.speaker for s in sequences}),
                         stride={"ted_culture": 2, "beat": 2, "synthetic": 10})


def relabel_speaker(model: torch.nn.Module, speakers: list[str], chosen: int) -> list[str]:
    """Swap speaker ids 0 and `chosen` in every speaker embedding (and the name list).

    Speaker ids are arbitrary labels; the engine and the node use id 0 unless told otherwise, so the style chosen
    as the default is moved there. Generated motion for every speaker is unchanged, only its id moves.
    """
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Embedding) and "speaker_embedding" in name:
                module.weight[[0, chosen]] = module.weight[[chosen, 0]]
    speakers = list(speakers)
    speakers[0], speakers[chosen] = speakers[chosen], speakers[0]
    return speakers


def choose_default_speaker(model, vocab, speakers: list[str], candidates: list[str], clips) -> tuple[int, dict]:
    """The candidate style whose motion on the validation clips is closest to real (velocity histogram) and most
    speech-aligned (loudness/arm-speed correlation): argmin of vel_hist_dist - loudness_speed_corr."""
    scores = {}
    for name in candidates:
        engine = GestureEngine(model, vocab, speaker=speakers.index(name))
        rows = [sequence_metrics(generate_clip(engine, c), c.directions, c.audio, engine.skeleton) for c in clips]
        means = mean_metrics(rows)
        scores[name] = {k: means[k] for k in ("vel_hist_dist", "loudness_speed_corr", "arm_speed")}
    best = min(scores, key=lambda n: scores[n]["vel_hist_dist"] - scores[n]["loudness_speed_corr"])
    return speakers.index(best), scores


def ship(run: str, data: str, feature_net: str | None, dest: Path = DEFAULT_CHECKPOINT,
         clips_dir: str | Path = ted_culture.DEFAULT_DIR, compare: dict[str, str] | None = None,
         chosen_by: str = "the best validation epoch (validation FGD)") -> Path:
    """`<run>/best` -> `dest`: default speaker chosen on the validation clip, evaluated (beside the checkpoints of
    `compare`, e.g. a copy of the previous default), with a README."""
    best = Path(run) / "best"
    model, vocab, meta = load_checkpoint(best)
    index = read_index(data)
    real_train = sorted({s["speaker"] for s in index["sequences"]
                         if s["source"] in REAL_SOURCES and s["split"] == "train"})
    val_clips = ted_culture.load_clips(clips_dir, ted_culture.VAL_CLIPS)
    chosen, scores = choose_default_speaker(model, vocab, meta["speakers"], real_train, val_clips)
    meta["default_speaker"] = {"name": meta["speakers"][chosen], "chosen_on": list(ted_culture.VAL_CLIPS),
                               "candidates": scores}
    meta["speakers"] = relabel_speaker(model, meta["speakers"], chosen)
    if "posture_offsets" not in meta:  # a run from before training recorded them
        meta["posture_offsets"] = speaker_posture_offsets(data)
    save_checkpoint(dest, model, vocab, meta)
    graphs = sum(f.stat().st_size for f in export_checkpoint_graphs(dest).values())  # robots run these, torch-free
    size = (dest / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{dest}/model.safetensors is {size / 2**20:.1f} MB; the shipped default must be <= 30 MB")
    beat_dir = BEAT_DIR if BEAT_DIR.exists() else None
    evaluate(str(dest), str(dest), data, feature_net, str(clips_dir), compare=compare, beat_dir=beat_dir,
             espeak=True)
    train_config = (Path(run) / "train_config.yaml").read_text()
    (dest / "README.md").write_text(README.format(
        epochs=meta["epoch"] + 1 if meta.get("epoch") is not None else "?", chosen_by=chosen_by, mix=training_mix(index, train_config), size=size / 2**20,
        graphs=graphs / 2**20, n_words=len(vocab), speaker=meta["speakers"][0], train_config=train_config,
        report=(dest / "report.md").read_text()))
    return dest


def record_posture_offsets(checkpoint: str | Path, data: str) -> dict[str, list[float]]:
    """Write the posture offsets of the training speakers of `data` (the windows the checkpoint was trained on)
    into the checkpoint's meta, for checkpoints written before training recorded them; nothing else changes (the
    weights and their ONNX graphs stay as they are)."""
    offsets = speaker_posture_offsets(data)
    update_meta(checkpoint, posture_offsets=offsets)
    return offsets


def training_mix(index: dict, train_config: str) -> str:
    """One README bullet per source: what it is, its training sequences, and its sampling weight in the run."""
    weights = (yaml.safe_load(train_config) or {}).get("source_weights") or {}
    counts: dict[str, int] = {}
    for s in index["sequences"]:
        if s["split"] == "train":
            counts[s["source"]] = counts.get(s["source"], 0) + 1
    lines = []
    for source, what in SOURCE_DESCRIPTIONS.items():
        weight = float(weights.get(source, 1.0))
        if counts.get(source):
            used = "not used (sampling weight 0)" if weight == 0 else f"sampling weight {weight:g}"
            lines.append(f"* **{source}** (training sequences: {counts[source]}, {used}): {what}")
    return "\n".join(lines)


SOURCE_DESCRIPTIONS = {
    "beat": "real English speech with finger-level motion capture, BEAT (Liu et al., ECCV 2022) speaker 2_scott, "
            "take 2_scott_0_1_1 (64 s) in `../shared/data/beat_scott`; its face is not captured and is masked out "
            "of training. Licence CC BY-NC 4.0 (non-commercial research). Its three speech-only takes (no motion) "
            "are held out and test speech coupling below.",
    "ted_culture": "real TED talks (non-English, 3D poses estimated from video), 7 training clips (about 60 s) of "
                   "`../shared/data/ted_culture`; 4 clips (4 talks) held out for the evaluation below, 1 for "
                   "validation. TED material: non-commercial research use only.",
    "synthetic": "NOT real data: `training/synthetic.py`, espeak-ng speech with procedural gestures whose beats "
                 "follow the audio onsets and whose amplitude follows loudness (volume and a loudness/onset-to-motion "
                 "relation).",
}

README = """# The default HA2G checkpoint (compact TED Expressive)

What `GestureEngine.from_checkpoint()` and the gesture node load when no checkpoint is given.
TED Expressive skeleton (42 bones: arms, hands with fingers, head), the `compact_expressive` preset
(`ha2g_model/config.py`) made narrower still for CPU training (the `model:` overrides in the training configuration
below; `config.json` has the exact sizes), {size:.1f} MB of weights (`model.safetensors`), `config.json`, `vocab.json`
({n_words} words: the training transcripts, every BEAT transcript, the robot demo's sentences and 318 English function
words; inflected forms of known words map onto them, other words onto a generic unknown word), and its inference
graphs `encode.onnx` + `decode.onnx` ({graphs:.1f} MB, written by `ha2g-export-onnx`, recorded with the SHA-256 of the
weights in `config.json`): onnxruntime runs them without torch.

## Licence of the weights
The code of this package is Apache-2.0 (`LICENSE`). These weights are not: they were trained on TED-Culture clips
(TED material, non-commercial research only) and on BEAT (CC BY-NC 4.0, non-commercial), so the weights carry the
same restriction. Use them for non-commercial research; for anything else train your own checkpoint on data you may
use (docs/training.md). None of the training data is in this package.

## What it was trained on (honestly)
{mix}

The weights after {epochs} epochs: {chosen_by}. Default style (speaker id 0): `{speaker}`, a
real training speaker chosen on the validation clip among the real training speakers (`meta.default_speaker` in
config.json lists the candidates' scores). `meta.posture_offsets` holds each real training speaker's average arm
posture relative to theirs all: with a style per utterance (the gesture node's default) each utterance takes one of
them (docs/training.md).

This is far from the paper's setting (TED Expressive, about 276k real windows, 100 epochs on a GPU): a few minutes
of real motion, one English speaker, CPU training of a narrow model. Official TED Expressive numbers (paper, on their
validation set): HA2G FGD 5.306, BC 0.641, Diversity 173.899. Those are not comparable with the tables below
(another data set, another FGD feature net, 4 short clips).

## Training command
```
python -m training.export_default data --out data/default_windows
python -m training.train_feature_net --data data/default_windows --out runs/feature_net --epochs 30
nice -n 19 python -m training.train --config training/configs/compact_english.yaml
mkdir -p runs/ship && cp -r runs/compact_english_real_only/epoch_0005 runs/ship/best \\
    && cp runs/compact_english_real_only/train_config.yaml runs/ship/       # the checkpoint chosen (below)
python -m training.export_default ship --run runs/ship --data data/default_windows \\
    --feature-net runs/feature_net --compare "old default=<copy of the previous default>" --chosen-by "..."
```
Training configuration used (`train_config.yaml` of the run, overrides applied):
```yaml
{train_config}```

## Evaluation
Measured by `training/evaluate.py` as `ship` ran it; what the numbers mean, why the previous default posed and moved
as it did, and where this one still falls short: docs/training.md, "The shipped default".

{report}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="build the training windows (real clips + synthetic corpus)")
    data.add_argument("--out", required=True)
    data.add_argument("--synthetic", type=int, default=300, help="synthetic sequences (about 15 s each)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--clips", default=str(ted_culture.DEFAULT_DIR), help="the ted_culture directory")
    data.add_argument("--beat", default=str(BEAT_DIR), help="BEAT takes (training.beat); '' for none")
    shipping = sub.add_parser("ship", help="evaluate a finished run and write ha2g_model/checkpoints/default")
    shipping.add_argument("--run", required=True)
    shipping.add_argument("--data", required=True, help="the windows data set it was trained on")
    shipping.add_argument("--feature-net", help="FGD feature net directory")
    shipping.add_argument("--clips", default=str(ted_culture.DEFAULT_DIR))
    shipping.add_argument("--dest", default=str(DEFAULT_CHECKPOINT))
    shipping.add_argument("--chosen-by", default="the best validation epoch (validation FGD)",
                          help="how <run>/best was chosen, for the README")
    shipping.add_argument("--compare", nargs="*", default=[], metavar="NAME=DIR",
                          help="checkpoints evaluated beside it, e.g. 'old default=DIR' (a copy: dest is replaced)")
    postures = sub.add_parser("postures", help="record the training speakers' postures in an existing checkpoint "
                                                "(style_per_utterance draws them)")
    postures.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    postures.add_argument("--data", required=True, help="the windows data set it was trained on")
    args = parser.parse_args()
    if args.command == "postures":
        offsets = record_posture_offsets(args.checkpoint, args.data)
        print(f"{args.checkpoint}: the postures of {len(offsets)} real training speakers ({', '.join(offsets)})")
    elif args.command == "data":
        index = build_data(args.out, args.synthetic, seed=args.seed, clips_dir=args.clips,
                           beat_dir=args.beat or None)
        print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}, sources {index['sources']}")
    else:
        compare = dict(item.split("=", 1) for item in args.compare)
        dest = ship(args.run, args.data, args.feature_net, Path(args.dest), args.clips, compare, args.chosen_by)
        print(f"shipped to {dest}")


if __name__ == "__main__":
    main()
