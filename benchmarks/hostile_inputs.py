"""Memory and time under long and hostile inputs (issue 18): what ha2g-generate needs for hours of audio, and what a
refusal costs.

    python benchmarks/hostile_inputs.py [--lengths-min 20 60 180] [--video-min 1 4] [--before DIR] [--keep DIR]

1. ha2g-generate (shipped checkpoint, onnxruntime, one thread) in a fresh process per case, on looped real speech
   (the BEAT clips in ../shared/data/beat_scott) as 16 kHz mono and 44.1 kHz stereo PCM WAV files of each length:
   peak RSS of the process (wait4) and of its whole process tree (sampled every 50 ms from /proc: the video adds an
   ffmpeg encoder), wall time. Without video for every length; with MP4 video for `--video-min` lengths only
   (rendering runs at ~75 frames/s here, an hour of video would take 12 minutes: a few minutes show whether frames
   pile up). `--before DIR` runs the shortest case without video and the longest with video also with the code in
   DIR (e.g. `git archive` of an older commit).
2. Transcript messages: the time of parse_transcript on 1M words (plain text and JSON: refused by size before
   parsing), on the largest accepted message (10,000 timed words), and on hostile ones (deep nesting, 5,000 digits).
3. Hostile files, each in a fresh process: peak RSS and time until the refusal of a 2 MB zip bomb official .bin that
   inflates to 2.4 GB, a 2 KB YAML alias bomb robot profile, and a config.json with hidden_size 10^7.

Prints a table and writes benchmarks/results/hostile_inputs.json. Numbers only: nothing here asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "data" / "beat_scott"
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros
sys.path.insert(0, str(REPO))


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants now, from /proc (MB)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack += children.get(p, [])
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total / 2**20


def high_water_mb(pid: int) -> float:
    """VmHWM: the peak resident memory of `pid` itself. Not wait4's ru_maxrss, which a child inherits from the
    process that forked it (this benchmark holds 500 MB of test messages)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0  # exited: its memory is gone


def measure(command: list[str], env: dict | None = None, log: Path | None = None, cwd: Path | None = None) -> dict:
    """Run `command`: its own peak RSS and the peak of its process tree (sampled every 20 ms), wall time, exit
    status."""
    began = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        own = tree = 0.0
        while process.poll() is None:
            try:
                own, tree = max(own, high_water_mb(process.pid)), max(tree, tree_rss_mb(process.pid))
            except OSError:
                pass
            time.sleep(0.02)
    return {"peak_rss_mb": round(own, 1), "peak_tree_rss_mb": round(tree, 1),
            "wall_s": round(time.perf_counter() - began, 2), "exit_status": process.returncode}


def write_speech(path: Path, minutes: float, rate: int, channels: int) -> None:
    """Looped real speech (the BEAT clips back to back), written block by block as 16-bit PCM."""
    from ha2g_model.audio import resample

    loop = np.concatenate([soundfile.read(wav, dtype="float32")[0] for wav in sorted(SPEECH.glob("*.wav"))])
    if rate != 16000:
        loop = resample(loop, 16000, rate)
    block = np.stack([loop, 0.8 * np.roll(loop, rate // 100)][:channels], axis=1)
    left = round(minutes * 60 * rate)
    with soundfile.SoundFile(path, "w", rate, channels, "PCM_16") as f:
        while left > 0:
            f.write(block[:left])
            left -= len(block)


def generate_cases(work: Path, lengths: list[float], video_lengths: list[float], before: Path | None) -> list:
    results = []
    for rate, channels in ((16000, 1), (44100, 2)):
        for minutes in sorted(set(lengths) | set(video_lengths)):
            audio = work / f"speech_{rate}_{channels}ch_{minutes:g}min.wav"
            write_speech(audio, minutes, rate, channels)
            runs = [("none", None)] * (minutes in lengths) + [("mp4", None)] * (minutes in video_lengths)
            if before is not None:  # the shortest file without video and the longest with video
                runs += [("none", before)] * (minutes == min(lengths))
                runs += [("mp4", before)] * (minutes == max(video_lengths, default=None))
            for video, source in runs:
                env = dict(os.environ, PYTHONPATH=str(source or REPO))
                out = work / "out"  # `python -m` imports from its working directory first: run in the source tree
                result = measure([sys.executable, "-m", "ha2g_model.generate_cli", str(audio), "--out", str(out),
                                  "--video", video, "--backend", "onnxruntime"], env, work / "generate.log",
                                 source or REPO)
                case = {"audio": f"{rate} Hz, {channels} ch", "minutes": minutes, "video": video,
                        "code": "before" if source else "now", **result}
                if result["exit_status"]:
                    case["error"] = (work / "generate.log").read_text()[-300:]
                results.append(case)
                print(f"generate {case['audio']:>15} {minutes:6g} min  video {video:4}  {case['code']:6}  "
                      f"peak {result['peak_rss_mb']:7.0f} MB (tree {result['peak_tree_rss_mb']:7.0f} MB)  "
                      f"{result['wall_s']:7.1f} s  exit {result['exit_status']}", flush=True)
            audio.unlink()
    return results


def transcript_cases() -> list:
    from ha2g_ros.transcript import MAX_WORDS, TranscriptError, parse_transcript, to_json

    million = [("word", i * 0.3, i * 0.3 + 0.2) for i in range(1_000_000)]
    largest = [("word", i * 0.3, i * 0.3 + 0.2) for i in range(MAX_WORDS)]
    messages = {
        "1M words, plain text": "word " * 1_000_000,
        "1M words, JSON": to_json(million),
        f"{MAX_WORDS:,} words, JSON (largest accepted)": to_json(largest),
        "1 MB of nested brackets": '{"words": ' + "[" * 499_990 + "]" * 499_990 + "}",
        "a 5,000-digit time": '{"words": [{"word": "hi", "start": 1' + "0" * 5000 + ', "end": 2}]}',
    }
    results = []
    for name, text in messages.items():
        times, outcome = [], None
        for _ in range(5):
            began = time.perf_counter()
            try:
                outcome = f"{len(parse_transcript(text).words)} words"
            except TranscriptError as e:
                outcome = f"TranscriptError: {e}"
            times.append(time.perf_counter() - began)
        results.append({"message": name, "chars": len(text), "median_ms": round(1e3 * float(np.median(times)), 3),
                        "outcome": outcome[:120]})
        print(f"transcript {name:>40}: {results[-1]['median_ms']:9.3f} ms  {outcome[:70]}", flush=True)
    return results


def hostile_file_cases(work: Path) -> list:
    import torch

    from ha2g_model.checkpoint import save_checkpoint
    from ha2g_model.config import HA2GConfig
    from ha2g_model.model import HA2G
    from ha2g_model.text import Vocab

    # the zip bomb: a torch.save archive whose data record is 2.4 GB of zeros, deflated
    plain, bomb = work / "plain.bin", work / "bomb.bin"
    torch.save({"args": None, "x": torch.zeros(4)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w") as out:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename)
            entry.compress_type = zipfile.ZIP_DEFLATED if info.filename.endswith("data/0") else zipfile.ZIP_STORED
            with out.open(entry, "w", force_zip64=True) as record:
                record.write(source.read(info))
                if info.filename.endswith("data/0"):
                    zeros = bytes(2**26)
                    for _ in range(36):  # 2.4 GB
                        record.write(zeros)
    alias_bomb = work / "bomb.yaml"
    alias_bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
        + "name: *i\n")
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_gesture"))
    checkpoint = save_checkpoint(work / "huge_config", model, Vocab([f"w{i}" for i in range(16)]))
    described = json.loads((checkpoint / "config.json").read_text())
    described["config"]["hidden_size"] = 10**7
    (checkpoint / "config.json").write_text(json.dumps(described))
    cases = {  # (import, call): only the call is timed
        f"zip bomb official .bin ({bomb.stat().st_size / 1e6:.1f} MB, inflates to 2.4 GB)":
            ("from ha2g_model.official import read_official_file", f"read_official_file({str(bomb)!r})"),
        f"YAML alias bomb profile ({alias_bomb.stat().st_size} bytes)":
            ("from ha2g_ros.retargeting.profile import load_profile", f"load_profile({str(alias_bomb)!r})"),
        "config.json with hidden_size 10^7":
            ("import ha2g_model.model\nfrom ha2g_model.checkpoint import load_checkpoint",
             f"load_checkpoint({str(checkpoint)!r})"),
    }
    results = []
    for name, (imports, call) in cases.items():
        log = work / "refusal.log"
        wrapped = f"import time\n{imports}\nt = time.perf_counter()\ntry:\n    {call}\nexcept ValueError as e:\n" \
                  f"    print(f'refused in {{time.perf_counter() - t:.4f}} s: {{e}}')"
        result = measure([sys.executable, "-c", wrapped], dict(os.environ, PYTHONPATH=str(REPO)), log)
        message = log.read_text().strip().splitlines()[-1] if log.read_text().strip() else ""
        refused_s = float(message.split()[2]) if message.startswith("refused in") else None
        results.append({"file": name, "refusal_s": refused_s, "message": message[:300], **result})
        print(f"refusal {name:>60}: {refused_s} s, process peak {result['peak_rss_mb']:.0f} MB\n    {message[:200]}",
              flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths-min", type=float, nargs="+", default=[20, 60, 180],
                        help="audio lengths (minutes) generated without video")
    parser.add_argument("--video-min", type=float, nargs="*", default=[1, 4],
                        help="audio lengths (minutes) generated with an MP4 video")
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout of older code: two cases run with it too (see above)")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = {"load_average": os.getloadavg(), "cpus": os.cpu_count(),
                   "transcripts": transcript_cases(),
                   "hostile_files": hostile_file_cases(work),
                   "generate": generate_cases(work, args.lengths_min, args.video_min, args.before)}
    out = REPO / "benchmarks" / "results" / "hostile_inputs.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
