"""Bring your own recordings: a folder of speech + word timings + motion, mapped onto the TED Expressive skeleton.

Folder layout (one recording = one file stem):
    my_data/
      mapping.yaml                      how the motion maps onto TED Expressive (below); JSON works too
      talk01.wav                        speech, any sample rate, mono or stereo (mixed down, resampled to 16 kHz)
      talk01.TextGrid | .json | .tsv    word timings (read by ha2g_model.words.read_words)
      talk01.npy | .npz | .bvh          motion starting at the same instant as the audio

mapping.yaml:
    speaker: alice            # optional; or a `speakers: {talk01: alice, ...}` table; default: the file stem
    fps: 30                   # motion frame rate (BVH files carry their own; stating it here overrides theirs)
    layout: positions         # "positions" (T, J, 3) joints, "directions" (T, 42, 3) TED Expressive bone vectors,
                              # or "bvh"; .npz files hold one array, named by `array:` (default: the only one)
    up: "+y"                  # axes of YOUR data: which is up and which way the person faces
    forward: "+z"
    joints:                   # TED Expressive joint name -> your joint index (positions) or BVH joint name
      spine: 0
      neck: 3
      left_shoulder: 5 ...
Bones of TED Expressive whose two joints are both mapped take their direction from the data. Unmapped bones
(typically fingers and face) keep their mean-pose direction, carried along rigidly by the nearest mapped ancestor
bone: a hand without finger tracking moves with its forearm instead of freezing in space. That placeholder is
marked invalid in the windows (`Sequence.valid`), so training never supervises it: arm-only data trains the torso
and arms, and the fingers learn from the data that has them.

    python -m training.recordings --in my_data --out data/my_windows
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import yaml

from ha2g_model.audio import read_audio_file, resample
from ha2g_model.skeleton import FPS, TED_EXPRESSIVE, Skeleton, resample_frames
from ha2g_model.words import read_words
from training.windows import Sequence, write_dataset

AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}
WORD_SUFFIXES = (".TextGrid", ".textgrid", ".json", ".tsv")
MOTION_SUFFIXES = (".npy", ".npz", ".bvh")


def to_ted_frame(up: str, forward: str) -> np.ndarray:
    """3x3 rotation from the user's axes to the TED Expressive frame (x = the person's left, y = down, z = back)."""
    try:
        u, f = np.asarray(AXES[up], float), np.asarray(AXES[forward], float)
    except KeyError:
        raise ValueError(f"up/forward must be one of {sorted(AXES)}, got up={up!r} forward={forward!r}") from None
    if abs(u @ f) > 0:
        raise ValueError(f"up ({up}) and forward ({forward}) must be different axes")
    left = np.cross(u, f)  # right-handed: forward x left = up
    return np.stack([left, -u, -f])


def map_positions(positions: np.ndarray, joints: dict[str, int], skeleton: Skeleton = TED_EXPRESSIVE) -> np.ndarray:
    """User joint positions (T, J, 3), already in the TED frame -> unit bone directions (T, n_bones, 3)."""
    unknown = sorted(set(joints) - set(skeleton.joint_names))
    if unknown:
        raise ValueError(f"mapping names joints that {skeleton.name} does not have: {unknown}")
    for name, index in joints.items():
        if not 0 <= int(index) < positions.shape[1]:
            raise ValueError(f"mapping: {name} -> joint {index}, but the motion has {positions.shape[1]} joints")
    required = {"spine", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                "right_wrist"}
    missing = sorted(required - set(joints))
    if missing:
        raise ValueError(f"mapping must name at least the torso and arm joints; missing {missing}")
    n = len(positions)
    rest = skeleton.rest_directions()
    out = np.repeat(rest[None], n, axis=0).astype(np.float64)
    rotations = np.repeat(np.eye(3)[None, None], skeleton.n_bones, axis=0).repeat(n, axis=1)  # per bone, per frame
    parent_bone = {c: i for i, (_, c) in enumerate(skeleton.bones)}
    for i, (p, c) in enumerate(skeleton.bones):  # parents come first, so ancestors' rotations are known
        pn, cn = skeleton.joint_names[p], skeleton.joint_names[c]
        if pn in joints and cn in joints:
            v = positions[:, int(joints[cn])] - positions[:, int(joints[pn])]
            length = np.linalg.norm(v, axis=-1, keepdims=True)
            if (length < 1e-6).any():
                raise ValueError(f"joints {pn} and {cn} coincide in frame {int(np.argmin(length))}: no bone direction")
            out[:, i] = v / length
            rotations[i] = _rotation_between(rest[i], out[:, i])
        elif p in parent_bone:
            rotations[i] = rotations[parent_bone[p]]
            out[:, i] = np.einsum("tij,j->ti", rotations[i], rest[i])
    return out.astype(np.float32)


def mapped_bones(joints: dict, skeleton: Skeleton = TED_EXPRESSIVE) -> np.ndarray:
    """(n_bones,) bool: the bones whose two joints the mapping names, i.e. the ones `map_positions` takes from the
    data rather than filling in."""
    return np.asarray([skeleton.joint_names[p] in joints and skeleton.joint_names[c] in joints
                       for p, c in skeleton.bones])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) smallest rotations taking unit vector a onto each unit b (T, 3) (Rodrigues)."""
    v = np.cross(a, b)
    c = b @ a
    k = np.zeros((len(b), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k = k - k.transpose(0, 2, 1)
    scale = 1.0 / np.maximum(1.0 + c, 1e-6)  # b == -a has no unique rotation: nearly never in real motion
    return np.eye(3)[None] + k + k @ k * scale[:, None, None]


# --- BVH --------------------------------------------------------------------------------------------------------

def read_bvh(path: str | Path) -> tuple[list[str], np.ndarray, float | None]:
    """(joint names, world positions (T, J, 3) in the file's units and axes, frame time in seconds).

    T is the number of frames the file holds. When that is not the header's `Frames:` the header was not updated
    (BEAT's downsampled files keep the 120 fps original's count and frame time): the frame time is then None and
    the caller must know the rate (stated by the user, or from the length of the audio)."""
    text = Path(path).read_text()
    if "MOTION" not in text:
        raise ValueError(f"{path}: not a BVH file (no MOTION section)")
    head, motion = text.split("MOTION", 1)
    names, parents, offsets, channels = [], [], [], []
    stack = []
    tokens = re.findall(r"\S+", head)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif tok == "End":  # an end site: a leaf joint without channels
            names.append(f"{names[stack[-1]]}_end")
            parents.append(stack[-1])
            channels.append([])
            i += 2
        elif tok == "{":
            stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets.append([float(t) for t in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append(tokens[i + 2:i + 2 + n])
            i += 2 + n
        else:
            i += 1
    lines = [ln for ln in motion.strip().splitlines() if ln.strip()]
    header_frames = int(lines[0].split(":")[1])
    frame_time = float(lines[1].split(":")[1])
    values = np.asarray([[float(v) for v in ln.split()] for ln in lines[2:]])
    if values.ndim != 2 or values.shape[1] != sum(len(c) for c in channels):
        raise ValueError(f"{path}: motion data does not match the hierarchy ({values.shape} values)")
    n_frames = len(values)
    if n_frames != header_frames:
        frame_time = None
    positions = np.zeros((n_frames, len(names), 3))
    world = np.zeros((n_frames, len(names), 3, 3))
    column = 0
    for j, (parent, offset, chans) in enumerate(zip(parents, offsets, channels)):
        local = np.repeat(np.eye(3)[None], n_frames, axis=0)
        translation = np.repeat(np.asarray(offset)[None], n_frames, axis=0)
        for ch in chans:
            v = values[:, column]
            column += 1
            if ch.endswith("position"):
                translation[:, "XYZ".index(ch[0])] = v  # position channels replace the offset
            else:
                local = local @ _axis_rotation(ch[0], np.radians(v))
        if parent < 0:
            world[:, j], positions[:, j] = local, translation
        else:
            world[:, j] = world[:, parent] @ local
            positions[:, j] = positions[:, parent] + np.einsum("tij,tj->ti", world[:, parent], translation)
    return names, positions, frame_time


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.repeat(np.eye(3)[None], len(angle), axis=0)
    a, b = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]
    r[:, a, a], r[:, a, b], r[:, b, a], r[:, b, b] = c, -s, s, c
    return r


# --- a folder of recordings ------------------------------------------------------------------------------------

def bvh_joints(path: Path, names: list[str], joints: dict) -> dict[str, int]:
    """A TED Expressive joint -> BVH joint name map as TED joint -> index into the BVH's joints."""
    for theirs in joints.values():
        if str(theirs) not in names:
            raise ValueError(f"{path}: mapping names BVH joint {theirs!r}, which the file does not have")
    return {ted: names.index(str(theirs)) for ted, theirs in joints.items()}


def load_motion(path: Path, mapping: dict) -> tuple[np.ndarray, np.ndarray]:
    """(T, 42, 3) unit TED Expressive directions at 15 fps from one motion file, and which of the 42 bones it has
    (the others are placeholders)."""
    if path.suffix == ".bvh":
        names, positions, frame_time = read_bvh(path)
        if "fps" not in mapping and frame_time is None:
            raise ValueError(f"{path}: its header's frame count is not the number of frames it holds, so its frame "
                             f"time cannot be trusted; state the motion `fps` in mapping.yaml")
        fps = float(mapping["fps"]) if "fps" in mapping else 1.0 / frame_time
        joints = bvh_joints(path, names, mapping.get("joints", {}))
    else:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                key = mapping.get("array") or (data.files[0] if len(data.files) == 1 else None)
                if key not in data.files:
                    raise ValueError(f"{path}: name the motion array with `array:` in mapping ({data.files})")
                positions = data[key]
        else:
            positions = np.load(path, allow_pickle=False)
        if "fps" not in mapping:
            raise ValueError("mapping must give the motion `fps` for .npy/.npz motion")
        fps = float(mapping["fps"])
        joints = mapping.get("joints", {})
    directions = motion_directions(positions, fps, joints, mapping, path)
    has_every_bone = mapping.get("layout") == "directions"  # TED Expressive directions: the whole skeleton
    return directions, np.ones(TED_EXPRESSIVE.n_bones, bool) if has_every_bone else mapped_bones(joints)


def motion_directions(positions: np.ndarray, fps: float, joints: dict[str, int], mapping: dict,
                      path: Path) -> np.ndarray:
    """Motion (T, J, 3) at `fps` in the user's axes -> (T', 42, 3) unit TED Expressive directions at 15 fps."""
    layout = mapping.get("layout", "bvh" if path.suffix == ".bvh" else "positions")
    rotation = to_ted_frame(mapping.get("up", "-y"), mapping.get("forward", "-z"))
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3 or not np.isfinite(positions).all():
        raise ValueError(f"{path}: motion must be a finite (T, J, 3) array, got {positions.shape}")
    positions = positions @ rotation.T
    if layout == "directions":
        if positions.shape[1] != TED_EXPRESSIVE.n_bones:
            raise ValueError(f"{path}: direction layout needs (T, 42, 3), got {positions.shape}")
        directions = positions / np.linalg.norm(positions, axis=-1, keepdims=True)
    elif layout in ("positions", "bvh"):
        directions = map_positions(positions, joints)
    else:
        raise ValueError(f"unknown layout {layout!r}; use positions, directions or bvh")
    directions = resample_frames(directions.astype(np.float32), fps, FPS)
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def load_audio(path: Path) -> np.ndarray:
    audio, sr = read_audio_file(path)
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: audio contains NaN or Inf")
    return np.clip(resample(audio, sr), -1.0, 1.0).astype(np.float32)


def load_recordings(folder: str | Path) -> list[Sequence]:
    folder = Path(folder)
    mapping_path = next((folder / n for n in ("mapping.yaml", "mapping.yml", "mapping.json")
                         if (folder / n).exists()), None)
    if mapping_path is None:
        raise FileNotFoundError(f"{folder}: no mapping.yaml (see training/recordings.py for its fields)")
    mapping = yaml.safe_load(mapping_path.read_text()) or {}
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise FileNotFoundError(f"{folder}: no .wav files")
    sequences = []
    for wav in wavs:
        words_path = next((wav.with_suffix(s) for s in WORD_SUFFIXES if wav.with_suffix(s).exists()), None)
        motion_path = next((wav.with_suffix(s) for s in MOTION_SUFFIXES if wav.with_suffix(s).exists()), None)
        if words_path is None or motion_path is None:
            raise FileNotFoundError(f"{wav}: needs {wav.stem}{{{','.join(WORD_SUFFIXES)}}} word timings and "
                                    f"{wav.stem}{{{','.join(MOTION_SUFFIXES)}}} motion beside it")
        speaker = mapping.get("speakers", {}).get(wav.stem) or mapping.get("speaker") or wav.stem
        directions, valid = load_motion(motion_path, mapping)
        sequences.append(Sequence(name=wav.stem, speaker=str(speaker), directions=directions, audio=load_audio(wav),
                                  words=read_words(words_path), source="recordings", valid=valid))
    return sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="folder", required=True, help="folder of recordings with mapping.yaml")
    parser.add_argument("--out", required=True, help="output directory of the windows data set")
    args = parser.parse_args()
    index = write_dataset(load_recordings(args.folder), args.out, "ted_expressive")
    print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}")


if __name__ == "__main__":
    main()
