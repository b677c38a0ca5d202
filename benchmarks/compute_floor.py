"""The fp32 arithmetic floor of one window: how fast could ANY backend run it on this CPU?

    python benchmarks/compute_floor.py [--presets ted_expressive compact_expressive] [--threads 1 2]

Per preset it counts the floating-point operations of one batch-1 window (torch's FlopCounterMode over
`encode_window` and `decode_window`: convolutions, linear layers and every GRU step) and divides them by the best
rate this CPU reaches on a large fp32 matrix product (2048 x 2048 sgemm, the most efficient kernel there is) with
1 and 2 threads. No backend can beat that floor in fp32; a real window is slower, because 1,632 of its GRU steps are
sequential 900 x 300 matrix-vector products that run far below the sgemm rate. Beside it: the eager forward of the
same model measured in the same run, and a third of it (the issue's per-window target). Prints a table and writes
benchmarks/results/compute_floor.json; nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))  # runs from a checkout without installing the package

from ha2g_model.config import HA2GConfig  # noqa: E402
from ha2g_model.model import HA2G  # noqa: E402
from timing import stats_ms  # noqa: E402  (benchmarks/ is on the path of a script run from it)


def sgemm_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - began) / 1e9


def window_inputs(config):
    return (torch.randn(1, config.n_mels, config.spec_cols) * 20 - 40,
            torch.randint(0, config.n_words, (1, config.n_poses)),
            0.2 * torch.randn(1, config.n_pre_poses, config.pose_dim), torch.zeros(1, dtype=torch.long),
            torch.zeros(1, config.n_levels, config.z_dim))


def measure(preset: str, threads: list[int], repeats: int) -> dict:
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset(preset)).eval()
    spec, words, seed, speaker, noise = window_inputs(model.config)
    with torch.no_grad():  # not inference_mode: the weight-norm parametrisations fail under FlopCounterMode there
        with FlopCounterMode(display=False) as counter:
            blends, texts = model.encode_window(spec, words, speaker)
        encode_gflop = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            model.decode_window(blends, texts, seed, speaker, noise)
        decode_gflop = counter.get_total_flops() / 1e9
    total = encode_gflop + decode_gflop
    rows = []
    for n in threads:
        peak = sgemm_gflops(n)  # sets torch's thread count for the eager timing below too
        with torch.inference_mode():
            for _ in range(3):
                model.generate_window(spec, words, seed, speaker, noise)
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                model.generate_window(spec, words, seed, speaker, noise)
                times.append(time.perf_counter() - began)
        eager = stats_ms(times)
        rows.append({"threads": n, "sgemm_gflops": round(peak, 1), "floor_ms": round(1e3 * total / peak, 1),
                     "eager_window_ms": eager, "third_of_eager_ms": round(eager["median"] / 3, 1)})
    return {"preset": preset, "encode_gflop": round(encode_gflop, 3), "decode_gflop": round(decode_gflop, 3),
            "window_gflop": round(total, 3), "by_threads": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["ted_expressive", "compact_expressive"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compute_floor.json")
    args = parser.parse_args()

    results = [measure(p, args.threads, args.repeats) for p in args.presets]
    print(f"{'preset':<20}{'GFLOP/window':>13}{'threads':>8}{'sgemm GFLOP/s':>14}{'fp32 floor ms':>14}"
          f"{'eager med ms':>13}{'eager / 3 ms':>13}")
    for r in results:
        for row in r["by_threads"]:
            print(f"{r['preset']:<20}{r['window_gflop']:>13.2f}{row['threads']:>8}{row['sgemm_gflops']:>14.0f}"
                  f"{row['floor_ms']:>14.1f}{row['eager_window_ms']['median']:>13.1f}{row['third_of_eager_ms']:>13.1f}")
    machine = {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
               "load_average_1min": round(os.getloadavg()[0], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
