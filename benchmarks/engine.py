"""Engine benchmark: per-window latency and batch throughput per backend, front-end time, real-time factor, memory.

    python benchmarks/engine.py                                  # CPU: torch + onnxruntime, full-size + compact
    python benchmarks/engine.py --device cuda --variants torch-fp32 torch-fp16 torch-fp16-graph tensorrt-fp16 ...

Every (model config, backend variant) runs in a fresh worker process, so peak RSS is its own. Inside a worker the
backend and a plain eager `model.generate_window` of the same weights are timed alternately, window by window, so
both see the same machine load (this CPU may be shared). Prints a table and writes benchmarks/results/*.json.
Numbers only: nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # nothing here uses ROS; set as every script does
os.environ.setdefault("ROS_DOMAIN_ID", "77")

from timing import stats_ms  # noqa: E402  (benchmarks/ is on the path of a script run from it)

# name -> (backend, precision, options)
VARIANTS = {
    "torch-fp32": ("torch", "fp32", {}),
    "onnxruntime-fp32": ("onnxruntime", "fp32", {}),
    "torch-fp16": ("torch", "fp16", {}),
    "torch-fp16-graph": ("torch", "fp16", {"cuda_graph": True}),
    "torch-fp32-graph": ("torch", "fp32", {"cuda_graph": True}),
    "tensorrt-fp32": ("tensorrt", "fp32", {}),
    "tensorrt-fp16": ("tensorrt", "fp16", {}),
}
CPU_VARIANTS = ["torch-fp32", "onnxruntime-fp32"]
GPU_VARIANTS = ["torch-fp32", "torch-fp16", "torch-fp16-graph", "onnxruntime-fp32", "tensorrt-fp32", "tensorrt-fp16"]


def speech_60s() -> tuple[np.ndarray, str]:
    """60 s of real speech (the shared TED clips end to end) or, without them, a voiced synthetic signal."""
    clips = sorted((REPO.parent / "shared" / "data" / "ted_culture").glob("*.npz"))
    if clips:
        parts = []
        for path in clips:
            with np.load(path) as clip:
                parts.append(clip["audio"].astype(np.float32) / 32768)
        audio = np.concatenate(parts)
        return np.resize(audio, 60 * 16000), "ted_culture clips"
    t = np.arange(60 * 16000) / 16000
    voiced = (0.5 * (1 + np.sin(2 * np.pi * 3 * t))) ** 2 * np.sin(2 * np.pi * 140 * t)
    return (0.2 * voiced).astype(np.float32), "synthetic"


def worker(preset: str, variant: str, device: str, repeats: int, batch: int, threads: int | None) -> dict:
    import torch

    from ha2g_model.audio import WINDOW_SAMPLES, log_mel, window_spectrogram
    from ha2g_model.backends import create_backend
    from ha2g_model.config import HA2GConfig
    from ha2g_model.engine import GestureEngine
    from ha2g_model.model import HA2G

    name, precision, options = VARIANTS[variant]
    if threads:
        options = {**options, "threads": threads}
        torch.set_num_threads(threads)  # the eager baseline gets the same number of threads
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset(preset)).eval()
    config = model.config
    began = time.perf_counter()
    backend = create_backend(name, model, device=device, precision=precision, **options)
    load_s = time.perf_counter() - began
    reference = model.to(device)  # eager fp32 on the same device: the baseline

    rng = np.random.default_rng(0)

    def inputs(b):
        return (rng.uniform(-80, 0, (b, config.n_mels, config.spec_cols)).astype(np.float32),
                rng.integers(0, config.n_words, (b, config.n_poses)),
                (0.2 * rng.standard_normal((b, config.n_pre_poses, config.pose_dim))).astype(np.float32),
                rng.integers(0, config.n_speakers, b), np.zeros((b, config.n_levels, config.z_dim), np.float32))

    def eager(x):
        with torch.inference_mode():
            out = reference.generate_window(*(torch.as_tensor(a).to(device) for a in x))
            return out.cpu().numpy()

    def timed(fn, x):
        began = time.perf_counter()
        out = fn(x)  # both return host numpy arrays, so GPU work is finished when the clock stops
        return time.perf_counter() - began, out

    # batch 1 latency, backend and eager alternating; a few warm-up windows first
    one = inputs(1)
    for _ in range(3):
        backend.run(*one), eager(one)
    backend_s, eager_s, max_diff = [], [], 0.0
    for _ in range(repeats):
        x = inputs(1)
        t, out = timed(lambda a: backend.run(*a), x)
        backend_s.append(t)
        t, ref = timed(eager, x)
        eager_s.append(t)
        max_diff = max(max_diff, float(np.abs(out - ref).max()))
    # batch throughput
    xb = inputs(batch)
    backend.run(*xb), eager(xb)
    batch_backend = [timed(lambda a: backend.run(*a), xb)[0] for _ in range(max(3, repeats // 4))]
    batch_eager = [timed(eager, xb)[0] for _ in range(max(3, repeats // 4))]

    # front-end: log-mel of one window's audio, and of 60 s (whole-utterance mode computes it once)
    speech, speech_source = speech_60s()
    window_audio = speech[16000:16000 + WINDOW_SAMPLES]
    mel_window = [timed(lambda a: window_spectrogram(log_mel(a), 0), window_audio)[0] for _ in range(10)]
    mel_60 = timed(log_mel, speech)[0]

    # whole utterance: 60 s of speech through the engine with this backend
    engine = GestureEngine(model, backend=name, device=device, precision=precision,
                           backend_options=options or None)
    engine.generate_utterance(speech[:16000 * 3])  # warm-up
    utterance_s = timed(engine.generate_utterance, speech)[0]

    result = {
        "preset": preset, "variant": variant, "backend": name, "precision": precision, "device": device,
        "parameters_m": round(model.n_parameters(include_discriminator=False) / 1e6, 2),
        "load_s": round(load_s, 2),
        "window_b1_ms": stats_ms(backend_s), "eager_window_b1_ms": stats_ms(eager_s),
        "speedup_vs_eager": float(np.median(eager_s) / np.median(backend_s)),
        "max_abs_diff_vs_eager": max_diff,
        f"throughput_b{batch}_windows_s": float(batch / np.median(batch_backend)),
        f"eager_throughput_b{batch}_windows_s": float(batch / np.median(batch_eager)),
        "log_mel_window_ms": stats_ms(mel_window), "log_mel_60s_ms": mel_60 * 1000,
        "utterance_60s_s": utterance_s, "real_time_factor": 60.0 / utterance_s, "speech": speech_source,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def machine(device: str) -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0], "python": platform.python_version()}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                           if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    info["torch"] = torch.__version__
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["ted_expressive", "compact_expressive"])
    parser.add_argument("--variants", nargs="+", default=None, help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/results/engine_<device>.json)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for every backend and the eager baseline (default: torch/ORT defaults)")
    parser.add_argument("--worker", nargs=2, metavar=("PRESET", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, args.repeats, args.batch, args.threads)))
        return 0

    variants = args.variants or (GPU_VARIANTS if args.device.startswith("cuda") else CPU_VARIANTS)
    results, failures = [], []
    load_before = os.getloadavg()[0]
    for preset in args.presets:
        for variant in variants:
            print(f"{preset} / {variant} ...", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--worker", preset, variant, "--device", args.device,
                                   "--repeats", str(args.repeats), "--batch", str(args.batch)]
                                  + (["--threads", str(args.threads)] if args.threads else []),
                                  capture_output=True, text=True)
            if proc.returncode:
                reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
                failures.append({"preset": preset, "variant": variant, "error": reason})
                print(f"  failed: {reason}")
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    header = (f"{'preset':<20}{'variant':<19}{'b1 min/med/p95 ms':>22}{'eager med':>11}{'x eager':>9}"
              f"{'b' + str(args.batch) + ' win/s':>10}{'max|diff|':>11}{'RTF 60s':>9}{'RSS MB':>8}")
    print("\n" + header)
    for r in results:
        w = r["window_b1_ms"]
        print(f"{r['preset']:<20}{r['variant']:<19}{w['min']:>8.1f}/{w['median']:.1f}/{w['p95']:.1f}".ljust(61)
              + f"{r['eager_window_b1_ms']['median']:>11.1f}{r['speedup_vs_eager']:>9.2f}"
              f"{r[f'throughput_b{args.batch}_windows_s']:>10.1f}{r['max_abs_diff_vs_eager']:>11.1e}"
              f"{r['real_time_factor']:>9.1f}{r['peak_rss_mb']:>8.0f}")
    if results:
        r = results[0]
        print(f"log-mel: one window {r['log_mel_window_ms']['median']:.1f} ms, 60 s of speech "
              f"{r['log_mel_60s_ms']:.0f} ms")
    for f in failures:
        print(f"not measured: {f['preset']} / {f['variant']}: {f['error']}")

    out = args.out or REPO / "benchmarks" / "results" / f"engine_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = machine(args.device)
    info["load_average_1min_before"] = load_before
    info["threads"] = args.threads or "default"
    out.write_text(json.dumps({"machine": info, "repeats": args.repeats, "results": results, "failures": failures},
                              indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
