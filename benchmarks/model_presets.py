"""Size and CPU speed of the HA2G config presets: parameters, checkpoint bytes, one-window generate_window time.

    python benchmarks/model_presets.py [--presets compact_expressive ted_expressive] [--words 3000] [--runs 20]

Prints a table and writes benchmarks/results/model_presets.json. The timing is one window (B = 1, deterministic)
on CPU with `--threads` torch threads, median over `--runs` after warm-up; random weights (speed does not depend
on training).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ha2g_model.checkpoint import WEIGHTS, save_checkpoint
from ha2g_model.config import PRESETS, HA2GConfig
from ha2g_model.model import HA2G
from ha2g_model.text import Vocab


def measure(name: str, n_words: int, runs: int) -> dict:
    config = HA2GConfig.preset(name, n_words=n_words)
    torch.manual_seed(0)
    model = HA2G(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, model, Vocab([f"w{i}" for i in range(n_words - 4)]), {})
        checkpoint_bytes = (Path(tmp) / WEIGHTS).stat().st_size
    inputs = (torch.randn(1, 128, 70) * 20 - 40, torch.randint(0, n_words, (1, 34)),
              torch.randn(1, 4, config.pose_dim) * 0.1, torch.zeros(1, dtype=torch.long))
    times = []
    with torch.inference_mode():
        for i in range(runs + 3):
            start = time.perf_counter()
            model.generate_window(*inputs)
            if i >= 3:  # warm-up excluded
                times.append(time.perf_counter() - start)
    return {"preset": name, "skeleton": config.skeleton, "n_words": n_words, "hidden_size": config.hidden_size,
            "n_layers": config.n_layers, "parameters": model.n_parameters(),
            "parameters_without_discriminator": model.n_parameters(include_discriminator=False),
            "checkpoint_mb": checkpoint_bytes / 1e6, "window_ms_median": 1000 * statistics.median(times),
            "window_ms_min": 1000 * min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["compact_expressive", "ted_gesture", "ted_expressive"],
                        choices=sorted(PRESETS))
    parser.add_argument("--words", type=int, default=3000, help="vocabulary size incl. the 4 special tokens")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_presets.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(name, args.words, args.runs) for name in args.presets]
    print(f"{'preset':20} {'params':>10} {'ckpt MB':>8} {'window ms (median)':>19}")
    for r in rows:
        print(f"{r['preset']:20} {r['parameters'] / 1e6:9.2f}M {r['checkpoint_mb']:8.1f} {r['window_ms_median']:19.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                               "threads": args.threads, "runs": args.runs, "results": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
