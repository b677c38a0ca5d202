"""What a model window costs when the core idled before it, as it does in the gesture node (one window per hop).

    python benchmarks/window_after_idle.py [--windows 40]

The shipped checkpoint's window through onnxruntime on one thread, timed in CPU time of the thread (what the node's
CPU share counts): back to back; after the thread slept 1, 10, 100 or 400 ms (400 ms: the default hop); and back to
back after reading 32 MB, which evicts the caches without idling. The conditions alternate window by window, so they
see the same load. Prints a table and writes benchmarks/results/window_after_idle.json. Numbers only.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from engine import REPO, machine  # benchmarks/ is on the path of a script run from it

CONDITIONS = {"back to back": (0.0, False), "after 1 ms idle": (0.001, False), "after 10 ms idle": (0.01, False),
              "after 100 ms idle": (0.1, False), "after 400 ms idle": (0.4, False),
              "after reading 32 MB, no idle": (0.0, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=40, help="windows timed per condition")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "window_after_idle.json")
    args = parser.parse_args()
    from ha2g_model.backends.onnx_backend import input_shapes
    from ha2g_model.engine import GestureEngine

    engine = GestureEngine.from_checkpoint(None, backend="onnxruntime", backend_options={"threads": 1})
    shapes, rng = input_shapes(engine.model_config), np.random.default_rng(0)
    inputs = (rng.normal(-40.0, 10.0, shapes["spec"]).astype(np.float32), np.zeros(shapes["words"], np.int64),
              rng.normal(0.0, 0.1, shapes["seed"]).astype(np.float32), np.array([0]),
              np.zeros(shapes["noise"], np.float32))
    for _ in range(20):  # warm-up: the first windows of a process allocate
        engine.backend.run(*inputs)
    evict = np.ones(32 * 2**20 // 8)
    cpu_ms = {name: [] for name in CONDITIONS}
    for _ in range(args.windows):
        for name, (idle_s, read) in CONDITIONS.items():
            if idle_s:
                time.sleep(idle_s)
            if read:
                evict.sum()
            began = time.thread_time()
            engine.backend.run(*inputs)
            cpu_ms[name].append(1e3 * (time.thread_time() - began))
    result = {"machine": machine("cpu"), "windows": args.windows,
              "cpu_ms": {name: {"median": round(float(np.median(v)), 2), "mean": round(float(np.mean(v)), 2)}
                         for name, v in cpu_ms.items()}}
    for name, stats in result["cpu_ms"].items():
        print(f"{name:32s} {stats['median']:6.2f} ms median  {stats['mean']:6.2f} ms mean")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
