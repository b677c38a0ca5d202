"""ha2g-generate: speech file -> gesture sequence (npz + JSON) and a rendered stick-figure video.

    ha2g-generate speech.wav --out out_dir [--words words.json|.TextGrid|.tsv | --text "..."]
                  [--checkpoint DIR|official.bin] [--backend torch|onnxruntime|tensorrt|auto] [--speaker 0]
                  [--seed N] [--video mp4|gif|none] [--no-fade]

Writes out_dir/gestures.npz (directions (T, n_bones, 3), times_s, fps, skeleton), out_dir/gestures.json (the same
as lists, with joint and bone names) and out_dir/gestures.mp4 with the speech muxed in (or .gif).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ha2g_model.skeleton import FPS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ha2g-generate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("audio", type=Path, help="speech file (wav, flac, ogg, ...; any sample rate, mixed to mono)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--words", type=Path, help="word timings: .json, .TextGrid or .tsv")
    text.add_argument("--text", help="untimed transcript, spread over the audio by word length")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory or official .bin (default: the shipped checkpoint)")
    parser.add_argument("--backend", default="auto", help="torch, onnxruntime, tensorrt, auto, or a "
                                                          "comma-separated fallback list")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per backend session (0: the runtime's default, all cores). The encoders run "
                             "beside the GRU chain, and multi-threaded sessions on a busy CPU were measured up to 30x "
                             "slower per window (docs/engine.md)")
    parser.add_argument("--speaker", type=int, default=0, help="gesture style (a speaker id of the checkpoint)")
    parser.add_argument("--seed", type=int, default=None, help="sample the style noise with this seed "
                                                               "(default: deterministic, z = mu)")
    parser.add_argument("--video", choices=("mp4", "gif", "none"), default="mp4", help="rendered preview")
    parser.add_argument("--no-fade", action="store_true", help="do not return to the rest pose at the end")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 (all cores) or more, got {args.threads}")
    try:
        return _generate(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"ha2g-generate: error: {e}", file=sys.stderr)
        return 2


def _generate(args) -> int:
    import soundfile

    from ha2g_model.engine import GestureEngine
    from ha2g_model.untrusted import regular_file
    from ha2g_model.render import MAX_GIF_FRAMES, find_ffmpeg, render_video
    from ha2g_model.words import read_words, words_from_text

    path = regular_file(args.audio, "audio file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"cannot read audio file {path}: {e} (supported: wav, flac, ogg, mp3 ...)") from None
    if info.frames <= 0:
        raise ValueError(f"audio file {path} has no samples")
    duration = info.frames / info.samplerate
    n_frames = max(1, round(duration * FPS))
    video = None if args.video == "none" else args.out / f"gestures.{args.video}"
    if video is not None and video.suffix == ".mp4" and find_ffmpeg() is None:
        video = video.with_suffix(".gif")
        print("no ffmpeg found (pip install imageio-ffmpeg): writing a GIF without sound instead")
    if video is not None and video.suffix == ".gif" and n_frames > MAX_GIF_FRAMES:
        raise ValueError(f"a GIF holds every frame in memory, so it is limited to {MAX_GIF_FRAMES / FPS / 60:.0f} "
                         f"minutes; this audio lasts {duration / 60:.0f}: use --video mp4 (needs ffmpeg: "
                         "pip install imageio-ffmpeg) or --video none")
    words = read_words(args.words) if args.words else words_from_text(args.text, duration) if args.text else None
    backends = args.backend.split(",")
    engine = GestureEngine.from_checkpoint(args.checkpoint, backend=backends, device=args.device, speaker=args.speaker,
                                           seed=args.seed, backend_options={"threads": args.threads})
    directions = _generate_file(engine, path, words, fade_to_rest=not args.no_fade)
    skeleton = engine.skeleton

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "gestures.npz", directions=directions, times_s=np.arange(len(directions)) / FPS, fps=FPS,
             skeleton=skeleton.name)
    _write_json(args.out / "gestures.json", directions, {
        "skeleton": skeleton.name, "fps": FPS, "n_frames": len(directions),
        "joint_names": list(skeleton.joint_names), "bones": [list(b) for b in skeleton.bones],
        "audio": str(args.audio), "backend": engine.backend.name, "speaker": engine.speaker, "seed": args.seed,
        "words": [list(w) for w in words or []]})
    print(f"{len(directions)} frames ({duration:.1f} s of speech) -> {args.out / 'gestures.npz'}")
    if video is not None:
        render_video(directions, skeleton, video, path if video.suffix == ".mp4" else None)
        print(f"video -> {video}")
    return 0


# Long files are generated in segments, so that memory stays flat in the file's length: the whole-utterance mode
# holds the audio, its spectrogram and every window's features at once (3 h of 44.1 kHz stereo passed 10 GB). Each
# segment is one utterance of its own (its own loudness reference, its first window seeded with the rest pose); the
# next one starts OVERLAP_S earlier than this one ends and takes over by a cross-fade in the second half of that
# overlap, once it has left the rest pose. Files up to SEGMENT_S are one utterance, exactly as before.
SEGMENT_S = 300
OVERLAP_S = 8
RESAMPLE_PAD_S = 0.1  # audio read beyond a segment's ends, so that its resampling sees the neighbours (filter < 2 ms)


def _generate_file(engine, path: Path, words, fade_to_rest: bool) -> np.ndarray:
    """Gesture directions (T, n_bones, 3) for the whole audio file `path`, reading and resampling it segment by
    segment (see SEGMENT_S)."""
    import soundfile

    from ha2g_model.audio import SAMPLE_RATE, SILENCE_PEAK, resample

    with soundfile.SoundFile(str(path)) as f:
        rate, n_in = f.samplerate, f.frames
        # Segment boundaries fall on samples where the resampler's input and output grids meet (g = gcd of the rates)
        # and on whole pose frames (every 3200 samples = 3 frames at 16 kHz), so a segment's audio is exactly that
        # stretch of the resampled file and its frames are whole frames of the file's.
        g = math.gcd(rate, SAMPLE_RATE)
        step_in, step_out = rate // g, SAMPLE_RATE // g
        quantum = math.lcm(step_out, SAMPLE_RATE * 3 // FPS)
        n_out = -(-n_in * step_out // step_in)  # what resampling the whole file gives
        length = max(quantum, SEGMENT_S * SAMPLE_RATE // quantum * quantum)
        overlap = OVERLAP_S * SAMPLE_RATE // quantum * quantum
        pad_in = -(-round(RESAMPLE_PAD_S * rate) // step_in) * step_in
        starts = list(range(0, max(n_out - overlap, 1), length - overlap))
        if len(starts) > 1 and n_out - starts[-1] <= overlap:
            starts.pop()  # the previous segment already reaches the end
        n_frames = max(1, round(n_out * FPS / SAMPLE_RATE))
        out = np.zeros((n_frames, engine.skeleton.n_bones, 3), np.float32)
        rest = engine.skeleton.rest_directions().astype(np.float32)
        silent = 0
        for k, start in enumerate(starts):
            last = k == len(starts) - 1
            stop = n_out if last else start + length
            first_in = start // step_out * step_in
            read_from = max(first_in - pad_in, 0)
            f.seek(read_from)
            stop_in = n_in if last else min(stop // step_out * step_in + pad_in, n_in)
            audio = resample(f.read(stop_in - read_from, dtype="float32", always_2d=True).mean(axis=1), rate)
            skip = (first_in - read_from) // step_in * step_out
            audio = audio[skip:skip + stop - start]
            if len(starts) > 1:
                print(f"segment {k + 1}/{len(starts)}: {start / SAMPLE_RATE:.0f}-{stop / SAMPLE_RATE:.0f} s")
            if len(starts) > 1 and np.abs(audio).max() < SILENCE_PEAK:  # a silent stretch of a long recording
                frames = np.repeat(rest[None], max(1, round(len(audio) * FPS / SAMPLE_RATE)), axis=0)
                silent += 1
            else:
                segment_words = _segment_words(words, start / SAMPLE_RATE, len(audio) / SAMPLE_RATE)
                frames = engine.generate_utterance(audio, segment_words, fade_to_rest=fade_to_rest and last,
                                                   progress=True)
            first = start * FPS // SAMPLE_RATE
            frames = frames[:n_frames - first]
            if k:  # cross-fade from the previous segment over the second half of the overlap
                n = min(overlap * FPS // SAMPLE_RATE, len(frames))
                w = np.clip((np.arange(n) + 1 - n / 2) / (n / 2), 0, 1)[:, None, None]
                blend = (1 - w) * out[first:first + n] + w * frames[:n]
                norm = np.linalg.norm(blend, axis=-1, keepdims=True)
                frames[:n] = np.where(norm > 1e-6, blend / np.maximum(norm, 1e-6), frames[:n])
            out[first:first + len(frames)] = frames
    if silent == len(starts):
        raise ValueError(f"audio file {path} is silence only (peak < {SILENCE_PEAK}): nothing to gesture to")
    return out


def _segment_words(words, start_s: float, duration_s: float):
    """The words heard in [start_s, start_s + duration_s), on the segment's clock."""
    if words is None:
        return None
    return [(w, max(s - start_s, 0.0), min(e - start_s, duration_s)) for w, s, e in words
            if e > start_s and s < start_s + duration_s]


def _write_json(path: Path, directions: np.ndarray, header: dict, rows_per_write: int = 1_000) -> None:
    """header + "directions": the frames as nested lists (5 decimals), written in blocks: as one Python list, the
    frames of an hour took gigabytes."""
    with open(path, "w") as f:
        f.write(json.dumps(header)[:-1] + ', "directions": [')
        for i in range(0, len(directions), rows_per_write):
            rows = np.round(directions[i:i + rows_per_write], 5).tolist()
            f.write((", " if i else "") + ", ".join(json.dumps(row) for row in rows))
        f.write("]}")


if __name__ == "__main__":
    sys.exit(main())
