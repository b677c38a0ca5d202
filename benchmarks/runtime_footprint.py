"""Runtime footprint of the engine on a robot: torch-free onnxruntime from shipped graphs vs the torch-model path.

    python benchmarks/runtime_footprint.py [--speech-s 30] [--skip-30k]

In one run, each case in a fresh worker process (so that peak RSS and imports are its own):
    torch-free   GestureEngine.from_checkpoint(dir, backend="onnxruntime"): the checkpoint's own ONNX graphs, no torch
    torch-free with librosa's log-mel: the same with the front-end before issue 17 (librosa, which brings numba, and
                 scipy.signal imported with ha2g_model.audio), to compare the numpy front-end with it in the same run
    torch+cache  the path before shipped graphs: load_checkpoint (torch model kept) + onnxruntime on the ONNX files
                 of the export cache, warm (exported by an earlier run) or cold (exported at start)
for the shipped checkpoint and a full-size TED Expressive model (random weights: speed and memory do not depend on
the values), one thread per session. Each worker times its start (imports, the log-mel front-end's first call,
building the engine, the first streamed frames), then streams `--speech-s` of real speech in 100 ms chunks at the
defaults (hop 6, lookahead 4) as fast as it can: per-window compute and the process CPU time per second of speech
(the engine's share of one core in real time). Also: the word tables of a full-size model with a 30,000-word
vocabulary (one per text encoder before, one shared now), as torch modules and as the torch-free runtime.
Last, the size of a runtime-only venv without torch (RUNTIME_PACKAGES in a throwaway venv, deleted afterwards) and
the torch-free engine run inside it. Prints a table and writes benchmarks/results/runtime_footprint.json. Numbers
only: nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()  # before anything of ha2g_model is imported

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from engine import machine, speech_60s  # noqa: E402
from timing import stats_ms  # noqa: E402

CHUNK = 1600  # 100 ms, as the microphone node sends


def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process (ru_maxrss would carry the forking parent's
    peak over exec)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def librosa_log_mel(audio, ref: float | None = None) -> np.ndarray:
    """ha2g_model.audio.log_mel as it was before issue 17, with librosa (for the comparison only)."""
    import librosa

    from ha2g_model.audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, TOP_DB, validate_audio

    audio = validate_audio(audio, SAMPLE_RATE, allow_silence=ref is not None)
    power = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, power=2.0,
                                           n_mels=N_MELS)
    db = librosa.power_to_db(power, ref=np.max if ref is None else ref, top_db=TOP_DB)
    return db.astype(np.float16).astype(np.float32)


def worker(mode: str, checkpoint: str, cache: str, speech_s: float, front_end: str) -> dict:
    steps = {}

    def step(name):
        steps[name] = {"s": round(time.perf_counter() - T0, 3), "peak_rss_mb": round(rss_mb(), 1)}

    import ha2g_model.engine
    from ha2g_model.engine import GestureEngine

    log_mel = ha2g_model.engine.log_mel
    if front_end == "librosa":
        import librosa  # noqa: F401  (imported with ha2g_model.audio before issue 17, as was scipy.signal)
        import scipy.signal  # noqa: F401

        log_mel = ha2g_model.engine.log_mel = librosa_log_mel
    step("imports")
    log_mel((0.1 * np.sin(np.arange(36267) / 5)).astype(np.float32))  # the first call (librosa's compiles with numba)
    step("log_mel_first_call")
    if mode == "torch-free":
        engine = GestureEngine.from_checkpoint(checkpoint, backend="onnxruntime")
        model = None
    else:
        from ha2g_model.checkpoint import load_checkpoint

        model, vocab, _ = load_checkpoint(checkpoint)  # kept, as the backend kept it before shipped graphs
        engine = GestureEngine(model, vocab, backend="onnxruntime", backend_options={"cache_dir": cache})
    step("engine_ready")

    speech = speech_60s()[0][:int(speech_s * 16000)]
    computes, first = [], None
    began_cpu, began = cpu_s(), time.perf_counter()
    for i in range(0, len(speech), CHUNK):
        engine.push_audio(speech[i:i + CHUNK])
        _, frames = engine.pull_frames()
        if len(frames):
            computes.append(engine.last_compute_s)
            if first is None:
                step("first_frames")  # 2.3 s of audio were pushed as fast as possible: no waiting for speech
                first = True
    stream_cpu, stream_wall = cpu_s() - began_cpu, time.perf_counter() - began
    step("streamed")
    return {"mode": mode, "front_end": front_end, "backend": engine.backend.name,
            "torch_imported": "torch" in sys.modules, "librosa_imported": "librosa" in sys.modules,
            "torch_model_kept": model is not None, "steps": steps, "window_ms": stats_ms(computes),
            "speech_s": len(speech) / 16000, "stream_wall_s": round(stream_wall, 3),
            "cpu_share_of_one_core": round(stream_cpu / (len(speech) / 16000), 4),
            "peak_rss_mb": round(rss_mb(), 1), "rss_after_mb": round(rss_mb("VmRSS"), 1)}


def tables_worker(shared: bool, n_words: int) -> dict:
    """RSS of a full-size TED Expressive torch model with one word table per text encoder (before) or one."""
    import torch

    from ha2g_model.config import HA2GConfig
    from ha2g_model.model import HA2G

    before = rss_mb()
    model = HA2G(HA2GConfig.preset("ted_expressive", n_words=n_words, shared_word_embedding=shared))
    return {"shared_word_embedding": shared, "n_words": n_words, "word_tables": len(model.word_embeddings),
            "parameters_m": round(model.n_parameters() / 1e6, 2), "model_rss_mb": round(rss_mb() - before, 1),
            "peak_rss_mb": round(rss_mb(), 1), "torch": torch.__version__}


def full_size_checkpoint(path: Path, n_words: int, shared: bool = True) -> dict:
    """A full-size TED Expressive checkpoint with random weights and its shipped graphs (as training would write);
    `shared=False`: one (randomly initialised, so differing) word table per text encoder, as before."""
    import torch

    from ha2g_model.checkpoint import save_checkpoint
    from ha2g_model.config import HA2GConfig
    from ha2g_model.model import HA2G
    from ha2g_model.onnx_export import export_checkpoint_graphs
    from ha2g_model.text import Vocab

    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("ted_expressive", n_words=n_words, n_speakers=36,
                                   shared_word_embedding=shared)).eval()
    save_checkpoint(path, model, Vocab([f"w{i}" for i in range(n_words - 4)]))
    began = time.perf_counter()
    graphs = export_checkpoint_graphs(path)
    return {"export_s": round(time.perf_counter() - began, 1), "weights_mb": round(
        (path / "model.safetensors").stat().st_size / 2**20, 1),
        "graphs_mb": round(sum(f.stat().st_size for f in graphs.values()) / 2**20, 1)}


# What the torch-free robot runtime installs (since issue 17 the log-mel front-end is numpy: no librosa, no numba).
RUNTIME_PACKAGES = ["onnxruntime", "numpy", "scipy", "soundfile", "pyyaml"]


def runtime_venv(tmp: Path, checkpoint, speech_s: float) -> dict:
    """A throwaway venv (no system site-packages) with only RUNTIME_PACKAGES: its size, and the torch-free engine
    run inside it (this checkout on PYTHONPATH), to show that nothing else is needed."""
    venv = tmp / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    began = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "-q", *RUNTIME_PACKAGES], check=True, capture_output=True)
    install_s = time.perf_counter() - began
    site = next((venv / "lib").glob("python*/site-packages"))
    sizes = {p.name: du_mb(p) for p in site.iterdir()}
    largest = dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8])
    # the first start after the install compiles bytecode (cached); the second is a robot's everyday start
    runs = [run_worker("torch-free", checkpoint, tmp / "cache-venv", speech_s, "numpy", python=python)
            for _ in range(2)]
    return {"packages": RUNTIME_PACKAGES, "install_s": round(install_s, 1), "venv_mb": du_mb(venv),
            "largest_mb": largest, "first_start": runs[0], "torch_free_run": runs[1]}


def du_mb(path: Path) -> float:
    return round(int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                                    check=True).stdout.split()[0]) / 1024, 1)


def run_worker(*args, python=sys.executable) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(python), __file__, "--worker", *map(str, args)], capture_output=True, text=True,
                          env=env)
    if proc.returncode:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speech-s", type=float, default=30.0)
    parser.add_argument("--skip-30k", action="store_true", help="leave out the 30,000-word measurements")
    parser.add_argument("--skip-venv", action="store_true", help="leave out the runtime-only venv (pip install)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "runtime_footprint.json")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "tables":
            result = tables_worker(rest[0] == "True", int(rest[1]))
        elif kind == "prepare":
            result = full_size_checkpoint(Path(rest[0]), int(rest[1]), rest[2] == "True")
        else:
            result = worker(kind, rest[0], rest[1], float(rest[2]), rest[3])
        print(json.dumps(result))
        return 0

    from ha2g_model.engine import DEFAULT_CHECKPOINT

    load_before = os.getloadavg()
    results, models = [], {}
    with tempfile.TemporaryDirectory(prefix="ha2g-footprint-") as tmp:
        tmp = Path(tmp)
        print("full-size TED Expressive checkpoint (random weights) + its graphs ...", flush=True)
        models["full-size TED Expressive"] = {"checkpoint": tmp / "full",
                                              **run_worker("prepare", tmp / "full", 274, True)}
        models["shipped default"] = {"checkpoint": DEFAULT_CHECKPOINT}
        for name, info in models.items():
            cache = tmp / f"cache-{len(results)}"
            for mode, front_end in (("torch-free", "numpy"), ("torch-free", "librosa"), ("torch+cache cold", "numpy"),
                                    ("torch+cache warm", "numpy")):
                path = mode if front_end == "numpy" else f"{mode}, librosa log-mel"
                print(f"{name} / {path} ...", flush=True)
                result = run_worker(mode.split()[0], info["checkpoint"], cache, args.speech_s, front_end)
                results.append({"model": name, "path": path, **result})
        for info in models.values():
            info["checkpoint"] = str(info["checkpoint"])
        venv = None
        if not args.skip_venv:
            print(f"runtime-only venv ({' '.join(RUNTIME_PACKAGES)}) ...", flush=True)
            venv = runtime_venv(tmp, DEFAULT_CHECKPOINT, args.speech_s)
        tables = []
        if not args.skip_30k:
            for shared in (False, True):
                name = f"full-size TED Expressive, 30,000 words, {'1 word table' if shared else '7 word tables'}"
                print(f"{name} ...", flush=True)
                tables.append(run_worker("tables", shared, 30000))
                models[name] = run_worker("prepare", tmp / f"full30k{shared}", 30000, shared)
                result = run_worker("torch-free", tmp / f"full30k{shared}", tmp / "cache-30k", min(args.speech_s, 10),
                                    "numpy")
                results.append({"model": name, "path": "torch-free", **result})

    print(f"\n{'model':<58}{'path':<32}{'ready s':>8}{'first s':>8}{'window ms med/p95':>19}{'CPU %':>7}"
          f"{'peak RSS MB':>12}  torch")
    for r in results:
        w, s = r["window_ms"], r["steps"]
        print(f"{r['model']:<58}{r['path']:<32}{s['engine_ready']['s']:>8.2f}{s['first_frames']['s']:>8.2f}"
              f"{w['median']:>11.1f}/{w['p95']:<7.1f}{100 * r['cpu_share_of_one_core']:>7.1f}"
              f"{r['peak_rss_mb']:>12.0f}  {'yes' if r['torch_imported'] else 'no'}")
    for t in tables:
        print(f"30,000 words, {t['word_tables']} word table(s): torch model {t['model_rss_mb']:.0f} MB "
              f"({t['parameters_m']} M parameters)")
    for name, info in models.items():
        if "graphs_mb" in info:
            print(f"{name}: weights {info['weights_mb']} MB, graphs {info['graphs_mb']} MB, export {info['export_s']} s")

    if venv:
        first, run = venv["first_start"], venv["torch_free_run"]
        print(f"runtime-only venv without torch: {venv['venv_mb']:.0f} MB (largest: "
              + ", ".join(f"{k} {v:.0f}" for k, v in list(venv["largest_mb"].items())[:5])
              + f"); the shipped model in it: ready {run['steps']['engine_ready']['s']:.2f} s "
              f"({first['steps']['engine_ready']['s']:.2f} s on the first start after the install), peak RSS "
              f"{run['peak_rss_mb']:.0f} MB ({first['peak_rss_mb']:.0f}), torch imported: {run['torch_imported']}")
    info = machine("cpu")
    info["load_average_before"] = load_before
    info["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "speech_s": args.speech_s, "models": models,
                                    "results": results, "word_tables_30k": tables, "runtime_venv": venv},
                                   indent=1, default=str))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
