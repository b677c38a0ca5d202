"""The gesture engine streaming real speech as the node does, per backend: compute per hop and the lag it implies.

    python benchmarks/engine_streaming.py                                   # CPU: onnxruntime and torch
    python benchmarks/engine_streaming.py --device cuda                     # + torch CUDA fp32 / fp16 / CUDA graph

The shipped checkpoint streams the real TED clips in 100 ms chunks (benchmarks/streaming_quality.stream), at the
default hop 6 / lookahead 4 and at the low-lag hop 2 / lookahead 1. A frame's lag behind its speech is at most
lookahead + hop + one chunk + the hop's compute (docs/engine.md); the node adds its playback margin and the
controllers their own. The variants alternate clip by clip, so they see the same load. Prints a table and writes
benchmarks/results/engine_streaming_<device>.json. Numbers only: nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# engine.py puts the package folder on the path and keeps ROS on loopback, as every benchmark script does
from engine import REPO, machine  # benchmarks/ is on the path of a script run from it
from streaming_quality import CHUNK, load_clips, stream
from timing import stats_ms

# name -> (backend, device kind, precision, backend options)
VARIANTS = {
    "onnxruntime-cpu": ("onnxruntime", "cpu", "fp32", {"threads": 1}),
    "torch-cpu": ("torch", "cpu", "fp32", {"threads": 1}),
    "torch-cuda-fp32": ("torch", "cuda", "fp32", {}),
    "torch-cuda-fp16-graph": ("torch", "cuda", "fp16", {"cuda_graph": True}),
}
SETTINGS = [(6, 4), (2, 1)]  # (hop, lookahead): the defaults and the low-lag setting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda[:N] to add the CUDA variants")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared" / "data" / "ted_culture")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from ha2g_model.engine import GestureEngine

    clips = load_clips(args.clips)
    seconds = sum(len(c["audio"]) for c in clips) / 16000
    engines = {}
    for name, (backend, kind, precision, options) in VARIANTS.items():
        if kind == "cuda" and not args.device.startswith("cuda"):
            continue
        device = args.device if kind == "cuda" else "cpu"
        engines[name] = GestureEngine.from_checkpoint(args.checkpoint, backend=backend, device=device,
                                                      precision=precision, backend_options=options)
    print(f"{len(clips)} clips, {seconds:.0f} s of speech in {CHUNK / 16:.0f} ms chunks; variants: {list(engines)}")

    rows = []
    for hop, lookahead in SETTINGS:
        compute = {name: [] for name in engines}
        for engine in engines.values():
            engine.reconfigure(hop_frames=hop, lookahead_frames=lookahead)
            stream(engine, clips[0])  # warm-up: the first windows of a session allocate
        for clip in clips:
            for name, engine in engines.items():
                compute[name] += stream(engine, clip)[1]
        for name, times in compute.items():
            per_hop = stats_ms(times)
            # worst case: the hop's first frame waits for the rest of the hop, the lookahead, a chunk, the compute
            lag_ms = 1000 * (hop + lookahead) / 15 + 1000 * CHUNK / 16000 + per_hop["p95"]
            rows.append({"variant": name, "hop": hop, "lookahead": lookahead, "windows": len(times),
                         "compute_per_hop_ms": per_hop, "worst_lag_ms": lag_ms,
                         "compute_share_of_speech": sum(times) / seconds})
    print(f"\n{'variant':<24}{'hop/look':>9}{'compute med/p95 ms':>21}{'worst lag ms':>14}{'busy %':>8}")
    for r in rows:
        c = r["compute_per_hop_ms"]
        print(f"{r['variant']:<24}{r['hop']:>5}/{r['lookahead']:<3}{c['median']:>12.2f}/{c['p95']:<8.2f}"
              f"{r['worst_lag_ms']:>14.0f}{100 * r['compute_share_of_speech']:>8.2f}")
    out = args.out or REPO / "benchmarks" / "results" / f"engine_streaming_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(args.device), "speech_s": seconds, "rows": rows}, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
