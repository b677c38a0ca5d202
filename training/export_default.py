"""Build the shipped default checkpoint (ha2g_model/checkpoints/default), start to finish.

    python -m training.export_default data      --out data/default_windows    # real clips + synthetic corpus
    python -m training.train_feature_net --data data/default_windows --out runs/feature_net --epochs 30
    nice -n 10 python -m training.train --config training/configs/compact_expressive.yaml
    python -m training.evaluate --checkpoint runs/compact_expressive/best --feature-net runs/feature_net \
        --data data/default_windows --out runs/compact_expressive/eval
    python -m training.export_default ship  --run runs/compact_expressive --report runs/compact_expressive/eval

The data: the 12 real TED-Culture clips (../shared/data/ted_culture, 4 held out for testing, 1 for validation; real
windows cut with stride 2 instead of 10 because they are so few) plus a SYNTHETIC espeak-ng corpus
(training/synthetic.py) for volume; its speakers are split 20 / 2 / 2 (train / val / test).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from training import synthetic, ted_culture
from training.windows import write_dataset

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "ha2g_model" / "checkpoints" / "default"
MAX_BYTES = 30 * 1024 * 1024


def build_data(out: str, n_synthetic: int = 300, n_speakers: int = 24, seed: int = 0,
               clips_dir: str | Path = ted_culture.DEFAULT_DIR) -> dict:
    real = ted_culture.load_clips(clips_dir)
    synth = synthetic.make_corpus(n_synthetic, n_speakers=n_speakers, seed=seed)
    split = {c.name: ted_culture.split_of(c.name) for c in real}
    for s in synth:  # the last two synthetic speakers are test, the two before val
        k = int(s.speaker[-3:])
        split[s.name] = "test" if k >= n_speakers - 2 else "val" if k >= n_speakers - 4 else "train"
    return write_dataset(real + synth, out, "ted_expressive", split_of=split,
                         stride={"ted_culture": 2, "synthetic": 10})


def ship(run: str, report: str, dest: Path = DEFAULT_DIR) -> Path:
    """Copy `<run>/best` and the evaluation report into the package, with a README that says what it is."""
    best = Path(run) / "best"
    report_dir = Path(report)
    for name in ("model.safetensors", "config.json", "vocab.json"):
        if not (best / name).is_file():
            raise FileNotFoundError(f"{best} has no {name}: not a finished training run")
    size = (best / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{best}/model.safetensors is {size / 2**20:.1f} MB; the shipped default must be <= 30 MB")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "vocab.json"):
        shutil.copy2(best / name, dest / name)
    for name in ("report.md", "report.json", "trajectories.png"):
        if (report_dir / name).is_file():
            shutil.copy2(report_dir / name, dest / name)
    train_config = (Path(run) / "train_config.yaml").read_text()
    report_md = (report_dir / "report.md").read_text() if (report_dir / "report.md").is_file() else "(no report)"
    meta = json.loads((best / "config.json").read_text())["meta"]
    (dest / "README.md").write_text(README.format(epoch=meta.get("epoch"), step=meta.get("step"),
                                                  sources=json.dumps(meta.get("data_sources")),
                                                  size=size / 2**20, train_config=train_config, report=report_md))
    return dest


README = """# The default HA2G checkpoint (compact TED Expressive)

What `GestureEngine.from_checkpoint()` and the gesture node load when no checkpoint is given.
TED Expressive skeleton (42 bones: arms, hands with fingers, head), the `compact_expressive` preset
(`ha2g_model/config.py`) made narrower still for CPU training (the `model:` overrides in the training configuration
below; `config.json` has the exact sizes), {size:.1f} MB of weights (`model.safetensors`), `config.json`, `vocab.json`.

## What it was trained on (honestly)
* **Real data: 7 training clips (about 60 s) of the TED-Culture material** in `../shared/data/ted_culture`
  (12 clips of non-English TED talks with 3D poses estimated from video; non-commercial research use only; none of
  it is in this package). 4 clips (4 talks) were held out for the evaluation below, 1 for validation.
* **A synthetic corpus** made by `training/synthetic.py`: espeak-ng speech with procedurally generated gestures
  whose beats follow the audio onsets and whose amplitude follows loudness. It is NOT real data; it gives volume and
  teaches the loudness/onset-to-motion relation that the few real clips cannot teach alone.
* Sequences per source: {sources}. Stopped after epoch {epoch} (step {step}), the best validation epoch.

This is far from the paper's setting (TED Expressive, about 276k real windows, 100 epochs on a GPU): expect
plausible, speech-paced arm and hand motion, not the paper's quality. Official TED Expressive numbers
(paper, on their validation set): HA2G FGD 5.306, BC 0.641, Diversity 173.899. Those are not comparable with
the table below (another data set, another FGD feature net, 4 short clips).

## Training command
```
python -m training.export_default data --out data/default_windows
python -m training.train_feature_net --data data/default_windows --out runs/feature_net --epochs 30
nice -n 10 python -m training.train --config training/configs/compact_expressive.yaml
python -m training.evaluate --checkpoint runs/compact_expressive/best --feature-net runs/feature_net \\
    --data data/default_windows --out runs/compact_expressive/eval
python -m training.export_default ship --run runs/compact_expressive --report runs/compact_expressive/eval
```
Training configuration used:
```yaml
{train_config}```

## Evaluation
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
    shipping = sub.add_parser("ship", help="copy a finished run into ha2g_model/checkpoints/default")
    shipping.add_argument("--run", required=True)
    shipping.add_argument("--report", required=True, help="directory written by training.evaluate")
    args = parser.parse_args()
    if args.command == "data":
        index = build_data(args.out, args.synthetic, seed=args.seed, clips_dir=args.clips)
        print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}, sources {index['sources']}")
    else:
        print(f"shipped to {ship(args.run, args.report)}")


if __name__ == "__main__":
    main()
