"""Training at TED Expressive scale on CPU: peak host memory and throughput of the streaming data path, and 1 vs 2
torchrun processes.

    python benchmarks/training_scale.py [--windows 276000] [--minutes 3] [--work /tmp/ha2g_training_scale] [--keep]

1. Small data: the synthetic corpus (40 sequences of 15 s) written by training.windows (~360 train windows).
2. The same optimiser steps of the compact config (training/configs/compact_expressive.yaml) fed two ways on the
   small data: `memory`, the whole split as tensors and batches by indexing (the data path before streaming), and
   `stream`, WindowDataset + DataLoader as training.train uses it; alternating blocks of steps in one child process
   (the 2 cores are shared: both paths see the same load), medians of the blocks' windows/s.
3. A data set of TED Expressive size (--windows train windows) made by repeating the small data's train windows
   under new sequence ids, in shards of ~4096 windows as the writer makes them; then `python -m training.train` on
   it for --minutes. Peak RSS and PSS of its process tree (training process + DataLoader workers; mapped shard pages
   count), sampled every 0.5 s, and windows/s from its log.
4. torchrun on CPU (gloo, loopback): 2 processes at global batch 32 vs 1 process with accumulate 2 (the same
   micro-batches) vs 1 process at the same global batch without accumulation: largest parameter difference after
   --ddp-steps steps, and windows/s (2 shared cores: correctness, not speed).
Prints a summary and writes benchmarks/results/training_scale.json. The big data set is deleted unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))
COMPACT = REPO / "training" / "configs" / "compact_expressive.yaml"


# --- memory of a process tree ---------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            try:
                pids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        i += 1
    return pids


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the tree; PSS splits pages shared between a process and its forks."""
    rss = pss = 0
    for p in process_tree(pid):
        try:
            rss += _kb(Path(f"/proc/{p}/status").read_text(), "VmRSS:")
            pss += _kb(Path(f"/proc/{p}/smaps_rollup").read_text(), "Pss:")
        except OSError:  # exited between listing and reading
            pass
    return rss, pss


def _kb(text: str, key: str) -> int:
    line = next((ln for ln in text.splitlines() if ln.startswith(key)), None)
    return int(line.split()[1]) * 1024 if line else 0


def run_measured(cmd: list[str], env: dict | None = None, timeout: float = 1200) -> dict:
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(proc.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        try:
            proc.wait(0.5)
        except subprocess.TimeoutExpired:
            if time.time() - started > timeout:
                proc.kill()
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"stdout": out, "peak_rss_gb": peak_rss / 1e9, "peak_pss_gb": peak_pss / 1e9,
            "wall_s": time.time() - started}


# --- data -------------------------------------------------------------------------------------------------------------

def small_data(path: Path) -> Path:
    if not (path / "index.json").exists():
        from training.synthetic import make_corpus
        from training.windows import write_dataset

        sequences = make_corpus(40, n_speakers=8, seed=0, seconds=15)
        split = {s.name: "val" if s.speaker.endswith("7") else "train" for s in sequences}
        write_dataset(sequences, path, "ted_expressive", split_of=split)
    return path


def repeat_train_windows(small: Path, big: Path, n_windows: int, shard_size: int = 4096) -> dict:
    """A data set with at least `n_windows` train windows: the small data's train windows again and again, each
    repetition under new sequence ids (so the data set reads as many distinct sequences); val and test as they are."""
    from safetensors.numpy import load_file

    from training.windows import ShardWriter, read_index

    index = read_index(small)
    big.mkdir(parents=True)
    shards = [load_file(str(small / s["file"])) for s in index["shards"]["train"]]
    per_copy = sum(len(s["start"]) for s in shards)
    n_seq = len(index["sequences"])
    writer = ShardWriter(big, "train", shard_size)
    sequences = list(index["sequences"])
    for copy in range(-(-n_windows // per_copy)):
        for tensors in shards:  # a shard's tensors are one segment with offsets into itself
            writer.add(tensors | {"sequence": tensors["sequence"] + copy * n_seq})
        if copy:
            sequences += [s | {"name": f"{s['name']}_r{copy}"} for s in index["sequences"]]
    index["shards"]["train"] = writer.close()
    for split in ("val", "test"):
        for shard in index["shards"][split]:
            shutil.copyfile(small / shard["file"], big / shard["file"])
    index["sequences"] = sequences
    index["windows"]["train"] = sum(s["n"] for s in index["shards"]["train"])
    (big / "index.json").write_text(json.dumps(index))
    shutil.copyfile(small / "vocab.json", big / "vocab.json")
    return index


# --- the child: the same steps fed from memory or streamed ------------------------------------------------------------

def child(data: str, steps: int, rounds: int, workers: int) -> dict:
    """Windows/s of the compact config's optimiser steps fed from memory and streamed, in alternating blocks of
    `steps` steps (`rounds` each), so that both see the same machine load; medians over the blocks."""
    import torch
    from torch.utils.data import DataLoader

    from ha2g_model.config import HA2GConfig
    from training.data import WindowBatches, WindowDataset
    from training.train import DiscriminatorStep, GeneratorStep, Optimisation, TrainConfig, build, to_device
    from training.windows import load_vocab, load_windows

    cfg = TrainConfig.from_yaml(str(COMPACT), [f"data={data}", "out=unused"])
    torch.manual_seed(0)
    torch.set_num_threads(cfg.threads)
    vocab = load_vocab(data)
    dataset = WindowDataset(data, "train")
    model_cfg = HA2GConfig.preset(cfg.preset, n_words=len(vocab), n_speakers=len(dataset.index["speakers"]),
                                  **cfg.model)
    device = torch.device("cpu")
    model, opt_g, opt_d, scaler, weights = build(cfg, model_cfg, vocab, device, None)
    optimisation = Optimisation(GeneratorStep(model, weights), DiscriminatorStep(model.discriminator), opt_g, opt_d,
                                scaler, None, device, cfg.seed)
    batches = WindowBatches(dataset.shard_of(), cfg.batch_size, cfg.seed)
    if batches.steps <= steps:
        raise ValueError(f"blocks of {steps} steps need more than {batches.steps} batches per epoch")
    windows = load_windows(data, "train")  # the data path before streaming: the split as tensors, indexed
    tensors = [torch.from_numpy(windows.spec.astype(np.float32)), torch.from_numpy(windows.words.astype(np.int64)),
               torch.from_numpy(windows.normalized_poses()), torch.from_numpy(windows.speaker.astype(np.int64))]
    sources = {"memory": lambda: ([t[torch.as_tensor(b)] for t in tensors] for b in batches),
               "stream": lambda: iter(DataLoader(dataset, batch_sampler=batches, num_workers=workers))}
    speeds = {mode: [] for mode in sources}
    model.train()
    for block in range(rounds):
        for mode, source in sources.items():
            batches.set_epoch(block)
            batch_iter = source()
            batch = next(batch_iter)  # worker start-up is not a step's cost
            started = time.perf_counter()
            for step in range(steps):
                optimisation.step([to_device(batch, device)], [0], step, 0, gan_on=False)
                batch = next(batch_iter)
            speeds[mode].append(steps * cfg.batch_size / (time.perf_counter() - started))
    return {"batch_size": cfg.batch_size, "steps_per_block": steps, "rounds": rounds, "workers": workers,
            **{f"{mode}_windows_per_s": float(np.median(v)) for mode, v in speeds.items()},
            **{f"{mode}_blocks": v for mode, v in speeds.items()}}


# --- torchrun -----------------------------------------------------------------------------------------------------

def torchrun(data: Path, out: Path, processes: int, accumulate: int, steps: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={processes}",
           "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "training.train", "--config", str(COMPACT),
           f"data={data}", f"out={out}", "epochs=1", f"max_steps={steps}", "gan_warmup_epochs=0", "workers=0",
           "threads=1", "feature_net=null", f"accumulate={accumulate}"]
    result = run_measured(cmd, env)
    row = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {"processes": processes, "accumulate": accumulate, "windows_per_s": row["windows_per_s"],
            "peak_pss_gb": result["peak_pss_gb"], "train_total": row["train_total"]}


def max_param_difference(a: Path, b: Path) -> float:
    import torch

    from ha2g_model.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(a / "best")
    names = {n for n, _ in model.named_parameters()}
    sa = torch.load(a / "last.pt", weights_only=True)["model"]
    sb = torch.load(b / "last.pt", weights_only=True)["model"]
    return max(float((sa[n] - sb[n]).abs().max()) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=276_000, help="train windows of the big data set")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time on the big data set")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed block on the small data")
    parser.add_argument("--rounds", type=int, default=5, help="timed blocks per data path on the small data")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the streaming runs")
    parser.add_argument("--ddp-steps", type=int, default=6)
    parser.add_argument("--work", default="/tmp/ha2g_training_scale", help="scratch directory")
    parser.add_argument("--keep", action="store_true", help="keep the big data set")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.data, args.steps, args.rounds, args.workers)))
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    small = small_data(work / "small")
    results = {"host": platform.node(), "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "small_train_windows": json.loads((small / "index.json").read_text())["windows"]["train"]}

    # 2. in memory vs streamed, the same steps, small data
    run = run_measured([sys.executable, __file__, "--child", "--data", str(small), "--steps", str(args.steps),
                        "--rounds", str(args.rounds), "--workers", str(args.workers)])
    results["small"] = json.loads(run["stdout"].splitlines()[-1]) | {"peak_pss_gb": run["peak_pss_gb"]}
    print("small data", results["small"], flush=True)

    # 3. TED Expressive size, python -m training.train for a few minutes
    big = work / "big"
    shutil.rmtree(big, ignore_errors=True)
    started = time.time()
    index = repeat_train_windows(small, big, args.windows)
    disk = sum(p.stat().st_size for p in big.glob("*.safetensors"))
    results["big"] = {"train_windows": index["windows"]["train"], "shards": len(index["shards"]["train"]),
                      "disk_gb": disk / 1e9, "bytes_per_window": disk / index["windows"]["train"],
                      "write_s": time.time() - started}
    print("big data set", results["big"], flush=True)
    out = work / "big_run"
    shutil.rmtree(out, ignore_errors=True)
    run = run_measured([sys.executable, "-m", "training.train", "--config", str(COMPACT), f"data={big}",
                        f"out={out}", f"max_minutes={args.minutes}", f"workers={args.workers}", "feature_net=null",
                        "checkpoint_every_steps=100"])
    row = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    results["big"] |= {"train_steps": row["step"], "windows_per_s": row["windows_per_s"],
                       "peak_rss_gb": run["peak_rss_gb"], "peak_pss_gb": run["peak_pss_gb"], "wall_s": run["wall_s"]}
    print("big run", results["big"], flush=True)
    if not args.keep:
        shutil.rmtree(big)

    # 4. torchrun on CPU: 2 processes vs 1 process (accumulate 2, and plain)
    runs = {}
    for processes, accumulate in ((2, 1), (1, 2), (1, 1)):
        name = f"{processes}x{accumulate}"
        shutil.rmtree(work / name, ignore_errors=True)
        runs[name] = torchrun(small, work / name, processes, accumulate, args.ddp_steps)
        print("torchrun", runs[name], flush=True)
    results["torchrun"] = {
        "runs": runs, "steps": args.ddp_steps,
        "max_param_diff_2proc_vs_1proc_accumulate2": max_param_difference(work / "2x1", work / "1x2"),
        "max_param_diff_2proc_vs_1proc_plain": max_param_difference(work / "2x1", work / "1x1"),
    }
    memory = results["small"]["memory_windows_per_s"]
    results["summary"] = {
        "stream_vs_memory_small": results["small"]["stream_windows_per_s"] / memory,
        "big_vs_memory_small": results["big"]["windows_per_s"] / memory,
        "big_peak_rss_gb": results["big"]["peak_rss_gb"], "big_peak_pss_gb": results["big"]["peak_pss_gb"],
    }
    print(json.dumps(results["summary"] | {k: v for k, v in results["torchrun"].items() if k.startswith("max")},
                     indent=1))
    path = REPO / "benchmarks" / "results" / "training_scale.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
