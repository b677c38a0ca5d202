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
    from ha2g_model.audio import SAMPLE_RATE, read_audio_file, resample
    from ha2g_model.engine import GestureEngine
    from ha2g_model.words import read_words, words_from_text

    audio, sample_rate = read_audio_file(args.audio)
    audio = resample(audio.mean(axis=1), sample_rate)
    duration = len(audio) / SAMPLE_RATE
    words = read_words(args.words) if args.words else words_from_text(args.text, duration) if args.text else None
    backends = args.backend.split(",")
    threads = {"threads": args.threads} if backends != ["tensorrt"] else None  # TensorRT runs on a GPU
    engine = GestureEngine.from_checkpoint(args.checkpoint, backend=backends, device=args.device,
                                           speaker=args.speaker, seed=args.seed, backend_options=threads)
    directions = engine.generate_utterance(audio, words, fade_to_rest=not args.no_fade, progress=True)
    skeleton = engine.skeleton
    times = np.arange(len(directions)) / FPS

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "gestures.npz", directions=directions, times_s=times, fps=FPS, skeleton=skeleton.name)
    (args.out / "gestures.json").write_text(json.dumps({
        "skeleton": skeleton.name, "fps": FPS, "n_frames": len(directions),
        "joint_names": list(skeleton.joint_names), "bones": [list(b) for b in skeleton.bones],
        "audio": str(args.audio), "backend": engine.backend.name, "speaker": engine.speaker, "seed": args.seed,
        "words": [list(w) for w in words or []],
        "directions": np.round(directions, 5).tolist(),
    }))
    print(f"{len(directions)} frames ({duration:.1f} s of speech) -> {args.out / 'gestures.npz'}")
    if args.video != "none":
        from ha2g_model.render import find_ffmpeg, render_video

        video = args.out / f"gestures.{args.video}"
        if args.video == "mp4" and find_ffmpeg() is None:
            video = video.with_suffix(".gif")
            print("no ffmpeg found (pip install imageio-ffmpeg): writing a GIF without sound instead")
        render_video(directions, skeleton, video, audio if video.suffix == ".mp4" else None)
        print(f"video -> {video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
