"""BEAT (Liu et al., ECCV 2022): a corpus folder as its authors lay it out, mapped onto TED Expressive.

    beat_english_v0.2.1/          (any depth: takes are found recursively)
      2/2_scott_0_1_1.bvh         motion capture, BEAT's 75-joint skeleton (cm, Y up, facing +Z)
      2/2_scott_0_1_1.wav         the take's speech
      2/2_scott_0_1_1.TextGrid    its word timings (Praat)
      ...                         (.json facial blendshapes, .txt semantic labels: not used)
    train_test_split.csv          optional (BEAT2 ships one): `id,type` rows, type train / val / test

A take is named <speaker id>_<name>_<recording type>_<start>_<end>; the speaker is "<speaker id>_<name>" (2_scott).
Takes without motion (BEAT ships speech-only takes too) are skipped. Without a split file the split is by speaker
(training.windows.speaker_split), so no speaker is in two splits.

The frame rate: BEAT's downsampled BVH files keep the 120 fps original's header (`Frames: 7669`, `Frame Time:
0.008333` on a file of 957 frames at 15 fps), so the header is trusted only when its duration matches the audio;
otherwise the rate is frames / audio duration, snapped to a usual rate, or `--fps` when you know it.

    python -m training.beat --in beat_english_v0.2.1 --out data/beat_windows
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

from ha2g_model.audio import SAMPLE_RATE
from ha2g_model.words import read_words
from training.recordings import bvh_joints, load_audio, mapped_bones, motion_directions, read_bvh
from training.windows import Sequence, speaker_split, write_dataset

TAKE = re.compile(r"^(\d+)_([A-Za-z]+)_(\d+)_(\d+)_(\d+)$")
# TED Expressive joint -> BEAT joint. TED's shoulders are where the upper arms start (BEAT's *Arm joints); finger
# joints 1..3 are the knuckle and the two joints after it (the thumb's 1 is its base). The face (nose, eyes, ears)
# has no BEAT joint: it moves rigidly with the neck and is marked invalid, so training never supervises it.
JOINTS = {"spine": "Hips", "neck": "Neck"} | {
    f"{side}_{ted}": f"{Side}{beat}" for side, Side in (("left", "Left"), ("right", "Right"))
    for ted, beat in [("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand")]
    + [(f"{finger}_{k}", f"Hand{finger.title()}{k}") for finger in ("index", "middle", "ring", "pinky", "thumb")
       for k in (1, 2, 3)]}
MAPPING = {"layout": "bvh", "up": "+y", "forward": "+z"}
USUAL_RATES = (15.0, 20.0, 24.0, 25.0, 30.0, 60.0, 120.0)


def speaker_of(take: str) -> str:
    match = TAKE.match(take)
    if not match:
        raise ValueError(f"{take}: not a BEAT take name (<speaker id>_<name>_<type>_<start>_<end>, e.g. 2_scott_0_1_1)")
    return f"{match[1]}_{match[2]}"


def motion_rate(n_frames: int, frame_time: float | None, audio_seconds: float, path: Path) -> float:
    """Frames per second of a take's motion: the header's when its duration matches the audio (5 %), else frames /
    audio duration snapped to a usual rate (3 %)."""
    if frame_time is not None and abs(n_frames * frame_time - audio_seconds) < 0.05 * audio_seconds:
        return 1.0 / frame_time
    measured = n_frames / audio_seconds
    usual = min(USUAL_RATES, key=lambda r: abs(r - measured))
    if abs(usual - measured) > 0.03 * usual:
        raise ValueError(f"{path}: {n_frames} frames over {audio_seconds:.1f} s of audio is {measured:.2f} fps, "
                         f"no usual rate; the header says {1 / frame_time if frame_time else '?'} fps; give --fps")
    return usual


def load_take(bvh: Path, wav: Path, words: Path, fps: float | None = None) -> Sequence:
    audio = load_audio(wav)
    names, positions, frame_time = read_bvh(bvh)
    rate = fps or motion_rate(len(positions), frame_time, len(audio) / SAMPLE_RATE, bvh)
    directions = motion_directions(positions, rate, bvh_joints(bvh, names, JOINTS), MAPPING, bvh)
    return Sequence(name=bvh.stem, speaker=speaker_of(bvh.stem), directions=directions, audio=audio,
                    words=read_words(words), source="beat", valid=mapped_bones(JOINTS))


def find_takes(folder: Path) -> list[tuple[Path, Path, Path]]:
    """(bvh, wav, TextGrid) of every take that has all three, sorted by name."""
    by_stem: dict[str, dict[str, Path]] = {}
    for path in folder.rglob("*"):
        if path.suffix.lower() in (".bvh", ".wav", ".textgrid") and TAKE.match(path.stem):
            by_stem.setdefault(path.stem, {})[path.suffix.lower()] = path
    takes = [(f[".bvh"], f[".wav"], f[".textgrid"]) for _, f in sorted(by_stem.items())
             if {".bvh", ".wav", ".textgrid"} <= f.keys()]
    if not takes:
        raise FileNotFoundError(f"{folder}: no BEAT take with .bvh, .wav and .TextGrid (names like 2_scott_0_1_1)")
    return takes


def read_split(folder: Path) -> dict[str, str]:
    path = folder / "train_test_split.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["id"]: row["type"] for row in csv.DictReader(f) if row["type"] in ("train", "val", "test")}


def convert(folder: str | Path, out: str | Path, fps: float | None = None) -> dict:
    folder = Path(folder)
    takes = find_takes(folder)
    split = read_split(folder)
    sequences = [load_take(*take, fps=fps) for take in takes]
    split_of = {s.name: split.get(s.name) or speaker_split(s.speaker) for s in sequences}
    return write_dataset(sequences, out, "ted_expressive", split_of=split_of)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="folder", required=True, help="BEAT corpus folder (takes found recursively)")
    parser.add_argument("--out", required=True, help="output directory of the windows data set")
    parser.add_argument("--fps", type=float, help="motion frame rate, when neither header nor audio tells it")
    args = parser.parse_args()
    index = convert(args.folder, args.out, args.fps)
    print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}")


if __name__ == "__main__":
    main()
