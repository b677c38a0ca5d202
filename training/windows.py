"""Training windows: what every data source is turned into, and the one on-disk format they are stored in.

Every ingester (`ted_lmdb`, `recordings`, `beat`, `ted_culture`, `synthetic`) yields `Sequence`s: one continuous
recording of one speaker, with unit direction vectors at 15 fps, 16 kHz mono audio on the same clock and timed words.
`write_dataset` cuts them into the HA2G training windows (34 frames, stride 10, the official filters) and stores them.

On-disk format (`ha2g_windows/3`): a directory with
    index.json               skeleton, window geometry, speakers, sequences (source, split), shard list, filter counts
    vocab.json               the word vocabulary the `words` indices refer to (ha2g_model.text.Vocab)
    <split>-00000.safetensors ...  shards of about `shard_size` windows. Overlapping windows (stride 10 of 34 frames)
        would repeat every frame, spectrogram column and audio sample 3.4 times, so a shard stores SEGMENTS (runs of
        frames of one sequence that kept windows cover) once, and a table of windows that point into them:
        dir_vec    (F, n_bones, 3) float32  unit directions of every stored frame (mean NOT subtracted)
        valid      (F, n_bones)    bool     the bones the source really has in that frame; the others hold a
                                            placeholder (e.g. fingers carried rigidly by the hand) that the
                                            losses must not supervise (ha2g_model.losses, "Partial skeletons")
        spec       (C, 128)        float16  log-mel dB columns (per-sequence reference) of the stored audio
        audio      (S,)            int16    the stored audio (onsets and loudness for the metrics)
      one row per window:
        frame, col, sample (N,)    int64    where window i starts in dir_vec / spec / audio: it is
                                            dir_vec[frame:frame+34], spec[col:col+70].T, audio[sample:sample+36267]
        words      (N, 34)         int32    frame-aligned word indices into vocab.json (0 = PAD)
        speaker    (N,)            int32    index into index.json["speakers"]
        sequence   (N,)            int32    index into index.json["sequences"]
        start      (N,)            int32    first frame of the window in its sequence
    About 32 kB a window at stride 10 (the format before it, `ha2g_windows/1`, stored every window whole: 108 kB);
    `python -m training.windows --convert OLD --out NEW` converts a /1 data set shard by shard.
    `ha2g_windows/2` is /3 without `valid`: it is read as is, every bone valid. /3 got its own name so that code
    from before the mask refuses it instead of training on its placeholders.
Why safetensors + JSON: no pickles (a data set is data, never code), readable from any language, zero-copy and
lazily sliceable (`safe_open(...).get_slice`), and the metadata a person wants to read is plain JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from ha2g_model.audio import (HOP_LENGTH, N_MELS, SAMPLE_RATE, SILENCE_PEAK, SPEC_COLS, TOP_DB, WINDOW_SAMPLES,
                              frame_to_column, frame_to_sample, log_mel, window_spectrogram)
from ha2g_model.skeleton import (FPS, Skeleton, directions_to_positions, get_skeleton, normalize_directions,
                                 posture_bones, skeleton_statistics)
from ha2g_model.text import Vocab, frame_word_indices
from ha2g_model.words import validate_words

N_FRAMES = 34  # frames per window (spec: n_poses)
N_SEED = 4  # seed frames the model is conditioned on
STRIDE = 10  # frames between training windows
SPLITS = ("train", "val", "test")


@dataclass
class Sequence:
    """One continuous recording of one speaker, on one clock: frame i covers audio time i / 15 s."""

    name: str  # unique within a data set, e.g. "<video>_<clip>"
    speaker: str  # video or person id: the speaker-style embedding is learnt per speaker, splits never mix them
    directions: np.ndarray  # (T, n_bones, 3) float32 unit direction vectors at 15 fps
    audio: np.ndarray  # (N,) float32 in [-1, 1] at 16 kHz
    words: list[tuple[str, float, float]]  # (word, start_s, end_s)
    source: str  # "ted", "recordings", "ted_culture" or "synthetic" (synthetic data is never real data)
    positions: np.ndarray | None = None  # (T, n_joints, 3) original joint positions when the source has them
    valid: np.ndarray | None = None  # (n_bones,) or (T, n_bones) bool: the bones the source has; None: every bone

    def bone_validity(self) -> np.ndarray:
        """(T, n_bones) bool: which bones of each frame are measured, not placeholders."""
        n_bones = self.directions.shape[1]
        valid = np.ones(n_bones, dtype=bool) if self.valid is None else np.asarray(self.valid, dtype=bool)
        return np.broadcast_to(valid, (self.n_frames, n_bones))

    def validate(self, skeleton: Skeleton) -> None:
        d = self.directions
        if d.ndim != 3 or d.shape[1:] != (skeleton.n_bones, 3):
            raise ValueError(f"{self.name}: directions must be (T, {skeleton.n_bones}, 3) for {skeleton.name}, "
                             f"got {d.shape}")
        if not np.isfinite(d).all():
            raise ValueError(f"{self.name}: directions contain NaN or Inf (a missing bone needs a finite placeholder "
                             f"and valid=False)")
        if self.valid is not None and np.shape(self.valid) not in ((d.shape[1],), d.shape[:2]):
            raise ValueError(f"{self.name}: valid must be (n_bones,) or (T, n_bones) = {d.shape[:2]}, "
                             f"got {np.shape(self.valid)}")
        norms = np.linalg.norm(d, axis=-1)
        if np.abs(norms - 1).max() > 1e-3:
            raise ValueError(f"{self.name}: directions must be unit vectors (norms {norms.min():.3f}..{norms.max():.3f})")
        if self.audio.ndim != 1 or self.audio.dtype != np.float32:
            raise ValueError(f"{self.name}: audio must be 1-D float32 at 16 kHz, got {self.audio.dtype} {self.audio.shape}")
        if not np.isfinite(self.audio).all():
            raise ValueError(f"{self.name}: audio contains NaN or Inf")
        if np.abs(self.audio).max(initial=0) > 1.0 + 1e-6:
            raise ValueError(f"{self.name}: audio must lie in [-1, 1] (max |x| = {np.abs(self.audio).max():.2f})")
        self.words = validate_words(self.words, self.name)  # normalised: stripped, sorted by start

    @property
    def n_frames(self) -> int:
        return len(self.directions)


# --- the official window filters (Tri's MotionPreprocessor, also used by HA2G) ---------------------------------------

@dataclass
class WindowFilter:
    """Thresholds of the official filters, in the units of the official 3D poses (see `filter_positions`)."""

    min_words: int = 2  # windows with fewer spoken words teach nothing about speech
    min_pose_diff: float = 0.02  # mean |pose - mean pose| below this: the person barely left the mean pose
    max_spine_angle_deg: float = 30.0  # leaning / bending more than this: bad pose estimation or not a talk
    max_mean_spine_angle_deg: float = 20.0
    min_wrist_variance: float = 0.0014  # both wrists this still: static, no gesture
    enabled: bool = True


def filter_positions(directions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Joint positions in the scale of the official `mean_pose`, spine at the origin, for the official filters.

    The official thresholds apply to the raw TED 3D poses, whose bone lengths differ from the reconstruction lengths
    (spine 0.17 vs 0.26): the lengths are measured on the official mean pose so the thresholds keep their meaning.
    """
    mean_pose = _mean_pose(skeleton)
    lengths = [float(np.linalg.norm(mean_pose[c] - mean_pose[p])) for p, c in skeleton.bones]
    return directions_to_positions(directions, skeleton, bone_lengths=lengths)


def _mean_pose(skeleton: Skeleton) -> np.ndarray:
    pose = np.asarray(skeleton_statistics(skeleton.name)["mean_pose"], dtype=np.float32).reshape(-1, 3)
    return pose - pose[0]


def rejection_reason(positions: np.ndarray, n_words: int, skeleton: Skeleton, flt: WindowFilter) -> str | None:
    """Why the official filters drop this window (positions (34, n_joints, 3), spine at 0), or None to keep it."""
    if not flt.enabled:
        return None
    if n_words < flt.min_words:
        return "words"
    if np.mean(np.abs(positions - _mean_pose(skeleton))) < flt.min_pose_diff:
        return "pose"
    spine = positions[:, skeleton.joint_names.index("neck")] - positions[:, 0]
    cos = -spine[:, 1] / np.linalg.norm(spine, axis=-1)  # angle to straight up, which is -y in the TED frame
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    if angles.max() > flt.max_spine_angle_deg or angles.mean() > flt.max_mean_spine_angle_deg:
        return "spine angle"
    wrists = [skeleton.joint_names.index(n) for n in ("left_wrist", "right_wrist")]
    variances = [np.var(positions[:, j], axis=0).sum() for j in wrists]
    if max(variances) < flt.min_wrist_variance:
        return "motion"
    return None


# --- windowing ----------------------------------------------------------------------------------------------------

def window_starts(n_frames: int, n_audio: int, stride: int = STRIDE) -> list[int]:
    """First frames of the windows that fit both the motion and the audio of a sequence."""
    starts = []
    start = 0
    while start + N_FRAMES <= n_frames and frame_to_sample(start) + WINDOW_SAMPLES <= n_audio:
        starts.append(start)
        start += stride
    return starts


def sequence_spectrogram(audio: np.ndarray) -> np.ndarray:
    """(128, n_cols) log-mel dB of a whole sequence, 0 dB at its loudest bin (silence: the -80 dB floor).

    Per sequence, as the official preprocessing does per clip and as the engine does per utterance; windows take
    their columns with `ha2g_model.audio.window_spectrogram`, the engine's own slicing, so training sees exactly
    what whole-utterance generation computes (a stream's running maximum converges to the same reference).
    """
    if np.abs(audio).max(initial=0.0) < SILENCE_PEAK:
        return np.full((N_MELS, 1 + len(audio) // HOP_LENGTH), -TOP_DB, dtype=np.float32)
    return log_mel(audio)


def words_in(words: list[tuple[str, float, float]], start_s: float, end_s: float) -> int:
    return sum(1 for _, s, e in words if s < end_s and e > start_s)


def speaker_split(speaker: str, val_percent: int = 10, test_percent: int = 10) -> str:
    """Deterministic split by speaker: a stable hash, so one speaker's windows never sit in two splits."""
    bucket = zlib.crc32(speaker.encode("utf-8")) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + val_percent:
        return "val"
    return "train"


def build_vocab(sequences: list[Sequence], max_size: int | None = None) -> Vocab:
    """Every word of the sequences, most frequent first (so `max_size` keeps the frequent ones)."""
    return Vocab.build((word for seq in sequences for word, _, _ in seq.words), max_size=max_size)


def write_dataset(sequences: Iterable[Sequence], out_dir: str | Path, skeleton: str | Skeleton,
                  split_of: dict[str, str] | None = None, vocab: Vocab | None = None,
                  speakers: list[str] | None = None, flt: WindowFilter | None = None,
                  stride: int | dict[str, int] = STRIDE, shard_size: int = 4096) -> dict:
    """Cut `sequences` into windows and write the data set; returns the index (also written as index.json).

    `split_of` maps sequence names to "train"/"val"/"test" (default: `speaker_split` of each speaker). `vocab`
    defaults to every word of the sequences (the official code too builds its vocabulary over the whole corpus),
    `speakers` to every speaker; give both to stream `sequences` in one pass (a data set too big for memory).
    `stride` may differ per source ({"ted_culture": 2, "synthetic": 10}): denser crops of scarce real data.
    """
    skeleton = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
    flt = flt or WindowFilter()
    out = _empty_dir(out_dir)
    if vocab is None or speakers is None:
        sequences = list(sequences)
        vocab = vocab or build_vocab(sequences)
        speakers = speakers or sorted({s.speaker for s in sequences})
    speaker_index = {s: i for i, s in enumerate(speakers)}
    listed: list[dict] = []
    seen: set[str] = set()
    writers = {split: ShardWriter(out, split, shard_size) for split in SPLITS}
    rejected: Counter = Counter()

    for seq_id, seq in enumerate(tqdm(sequences, desc="windows", unit="seq")):
        seq.validate(skeleton)
        if seq.name in seen:
            raise ValueError(f"sequence names must be unique: {seq.name!r} appears twice")
        seen.add(seq.name)
        if seq.speaker not in speaker_index:
            raise ValueError(f"{seq.name}: speaker {seq.speaker!r} is not in the given speakers")
        split = (split_of or {}).get(seq.name) or speaker_split(seq.speaker)
        if split not in SPLITS:
            raise ValueError(f"{seq.name}: unknown split {split!r}; use one of {SPLITS}")
        valid = seq.bone_validity()
        listed.append({"name": seq.name, "speaker": seq.speaker, "source": seq.source, "split": split,
                       "n_frames": seq.n_frames, "missing_bones": missing_bones(valid, skeleton)})
        positions = filter_positions(seq.directions, skeleton) if seq.positions is None else seq.positions
        seq_stride = stride.get(seq.source, STRIDE) if isinstance(stride, dict) else stride
        spec = sequence_spectrogram(seq.audio)
        windows = []
        for start in window_starts(seq.n_frames, len(seq.audio), seq_stride):
            start_s, end_s = start / FPS, (start + N_FRAMES) / FPS
            reason = rejection_reason(positions[start:start + N_FRAMES], words_in(seq.words, start_s, end_s),
                                      skeleton, flt)
            if reason:
                rejected[reason] += 1
                continue
            audio = seq.audio[frame_to_sample(start):frame_to_sample(start) + WINDOW_SAMPLES]
            windows.append({
                "dir_vec": seq.directions[start:start + N_FRAMES].astype(np.float32),
                "valid": valid[start:start + N_FRAMES],
                "spec": window_spectrogram(spec, start).astype(np.float16),
                "audio": np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16),
                "words": np.asarray(frame_word_indices(seq.words, vocab, start_s, N_FRAMES), dtype=np.int32),
                "speaker": speaker_index[seq.speaker], "sequence": seq_id, "start": start,
            })
        for segment in pack_segments(windows):
            writers[split].add(segment)

    index = _index(skeleton.name, stride, speakers, listed, {split: w.close() for split, w in writers.items()},
                   dict(rejected), asdict(flt))
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    vocab.save(out / "vocab.json")
    return index


def missing_bones(valid: np.ndarray, skeleton: Skeleton) -> list[str]:
    """The bones no frame of a sequence has (valid (T, n_bones)), by joint names: what a person checks first."""
    return [f"{skeleton.joint_names[p]}-{skeleton.joint_names[c]}"
            for b, (p, c) in enumerate(skeleton.bones) if not valid[:, b].any()]


def _empty_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if list(out.glob("*.safetensors")):
        raise FileExistsError(f"{out} already holds a data set; write to an empty directory")
    return out


def _index(skeleton: str, stride, speakers: list[str], sequences: list[dict], shards: dict, rejected: dict,
           flt: dict) -> dict:
    return {
        "format": FORMAT,
        "skeleton": skeleton,
        "fps": FPS, "sample_rate": SAMPLE_RATE, "n_frames": N_FRAMES, "n_seed": N_SEED, "stride": stride,
        "speakers": speakers,
        "sequences": sequences,
        "shards": shards,
        "windows": {split: sum(s["n"] for s in shards[split]) for split in SPLITS},
        "rejected": rejected,
        "filter": flt,
        "sources": dict(Counter(item["source"] for item in sequences)),
    }


# --- segments: overlapping windows stored once ---------------------------------------------------------------------

FORMAT = "ha2g_windows/3"
READABLE = (FORMAT, "ha2g_windows/2")  # /2: no `valid`, every bone valid
# what a segment stores per axis: name -> (the window table's offset column, frames / columns / samples a window)
STORED = {"dir_vec": ("frame", N_FRAMES), "valid": ("frame", N_FRAMES), "spec": ("col", SPEC_COLS),
          "audio": ("sample", WINDOW_SAMPLES)}


def _stored_part(window: dict, name: str) -> np.ndarray:
    """A whole window's part of a stored array, as the segment lays it out (spec as (cols, mels))."""
    if name == "spec":
        return window["spec"].T
    if name == "valid" and window.get("valid") is None:  # windows of /1 data sets have no mask: all valid
        return np.ones(window["dir_vec"].shape[:2], dtype=bool)
    return window[name]


def pack_segments(windows: list[dict]) -> Iterable[dict]:
    """Whole windows of ONE sequence, sorted by start (dicts of dir_vec (34, n_bones, 3), valid (34, n_bones) (absent:
    all valid), spec (128, 70), audio (36267,), words, speaker, sequence, start) -> segments: each run of overlapping
    windows becomes the frames, spectrogram columns and audio samples it covers, stored once, and the windows' table
    of offsets into them."""
    run: list[dict] = []
    for window in windows:
        if run and window["start"] >= run[-1]["start"] + N_FRAMES:  # no shared frame: a new segment
            yield _segment(run)
            run = []
        run.append(window)
    if run:
        yield _segment(run)


def _segment(run: list[dict]) -> dict:
    first = run[0]["start"]
    offsets = {  # where each window starts inside the segment, per stored axis
        "frame": np.asarray([w["start"] - first for w in run]),
        "col": np.asarray([frame_to_column(w["start"]) - frame_to_column(first) for w in run]),
        "sample": np.asarray([frame_to_sample(w["start"]) - frame_to_sample(first) for w in run]),
    }
    segment = {}
    for name, (axis, size) in STORED.items():
        parts = [_stored_part(w, name) for w in run]
        data = np.zeros((int(offsets[axis][-1]) + size,) + parts[0].shape[1:], dtype=parts[0].dtype)
        for part, at in zip(parts, offsets[axis]):  # overlapping windows hold the same values where they overlap
            data[at:at + size] = part
        segment[name] = data
    segment.update(offsets)
    segment["words"] = np.stack([w["words"] for w in run]).astype(np.int32)
    for key in ("speaker", "sequence", "start"):
        segment[key] = np.asarray([w[key] for w in run], dtype=np.int32)
    return segment


class ShardWriter:
    """Collects the segments of one split and writes them into shards of about `shard_size` windows."""

    def __init__(self, out: Path, split: str, shard_size: int):
        self.out, self.split, self.shard_size = out, split, shard_size
        self.segments: list[dict] = []
        self.shards: list[dict] = []

    def add(self, segment: dict) -> None:
        self.segments.append(segment)
        if sum(len(s["start"]) for s in self.segments) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.segments:
            return
        tensors = {}
        for name, (axis, _) in STORED.items():
            lengths = np.cumsum([0] + [len(s[name]) for s in self.segments[:-1]])
            tensors[axis] = np.concatenate([s[axis] + at for s, at in zip(self.segments, lengths)]).astype(np.int64)
            tensors[name] = np.concatenate([s[name] for s in self.segments])
        for key in ("words", "speaker", "sequence", "start"):
            tensors[key] = np.concatenate([s[key] for s in self.segments])
        name = f"{self.split}-{len(self.shards):05d}.safetensors"
        save_file(tensors, str(self.out / name))
        self.shards.append({"file": name, "n": len(tensors["start"])})
        self.segments = []

    def close(self) -> list[dict]:
        self.flush()
        return self.shards


# --- reading -------------------------------------------------------------------------------------------------------

def read_index(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {data_dir} is not a windows data set (see docs/training.md)")
    index = json.loads(path.read_text())
    if index.get("format") == "ha2g_windows/1":
        raise ValueError(f"{data_dir} is in the old ha2g_windows/1 format; convert it once with "
                         f"python -m training.windows --convert {data_dir} --out NEW_DIR")
    if index.get("format") not in READABLE:
        raise ValueError(f"{path}: unknown format {index.get('format')!r}")
    return index


@dataclass
class Windows:
    """Some windows of a split, in memory (evaluation, small data). Arrays (N, ...) as cut from the segments:
    dir_vec (N, 34, n_bones, 3) float32, spec (N, 128, 70) float16, audio (N, 36267) int16, words (N, 34) int32,
    speaker, sequence, start (N,) int32, valid (N, 34, n_bones) bool; None for those `load_windows` was not asked
    for."""

    dir_vec: np.ndarray
    spec: np.ndarray
    audio: np.ndarray
    words: np.ndarray
    speaker: np.ndarray
    sequence: np.ndarray
    start: np.ndarray
    valid: np.ndarray
    index: dict = field(repr=False)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def skeleton(self) -> Skeleton:
        return get_skeleton(self.index["skeleton"])

    def normalized_poses(self) -> np.ndarray:
        """(N, 34, pose_dim) float32: the windows in model space (flattened, mean direction subtracted)."""
        return normalize_directions(self.dir_vec, self.skeleton).astype(np.float32)

    def sources(self) -> np.ndarray:
        """(N,) source name of each window."""
        return np.asarray([self.index["sequences"][i]["source"] for i in self.sequence])

    def subset(self, mask: np.ndarray) -> "Windows":
        return Windows(**{k: None if getattr(self, k) is None else getattr(self, k)[mask] for k in WINDOW_ARRAYS},
                       index=self.index)


WINDOW_ARRAYS = ("dir_vec", "spec", "audio", "words", "speaker", "sequence", "start", "valid")


def cut_windows(shard: dict, rows: np.ndarray, names: Iterable[str] = WINDOW_ARRAYS) -> dict:
    """Windows `rows` of a shard (its tensors, whole or lazily sliceable) as whole arrays (N, ...), see `Windows`."""
    rows = np.asarray(rows)
    out = {}
    for name in names:
        if name == "valid" and "valid" not in shard:  # an ha2g_windows/2 shard: every bone valid
            n_bones = _shape(shard["dir_vec"])[1]
            out[name] = np.ones((len(rows), N_FRAMES, n_bones), dtype=bool)
        elif name in STORED:
            axis, size = STORED[name]
            out[name] = np.stack([shard[name][int(s):int(s) + size] for s in np.asarray(shard[axis][rows])])
            if name == "spec":
                out[name] = out[name].transpose(0, 2, 1)  # stored (cols, mels) so that a window is one slice
        else:
            out[name] = np.asarray(shard[name][rows])
    return out


def _shape(tensor) -> tuple[int, ...]:
    """Shape of a whole array or of a lazy safetensors slice."""
    return tuple(tensor.shape) if hasattr(tensor, "shape") else tuple(tensor.get_shape())


def load_windows(data_dir: str | Path, split: str, names: Iterable[str] = WINDOW_ARRAYS) -> Windows:
    """Every window of `split` in memory (about 110 kB a window with its audio): for evaluation and small data;
    training streams them (`training.data.WindowDataset`)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    index = read_index(data_dir)
    shards = index["shards"][split]
    if not shards:
        raise ValueError(f"{data_dir} has no {split} windows (windows per split: {index['windows']})")
    names = tuple(dict.fromkeys((*names, "sequence", "start")))  # every subset stays countable and traceable
    parts = []
    for shard in shards:
        tensors = load_file(str(Path(data_dir) / shard["file"]))
        parts.append(cut_windows(tensors, np.arange(shard["n"]), names))
    arrays = {key: np.concatenate([p[key] for p in parts]) if key in names else None for key in WINDOW_ARRAYS}
    return Windows(**arrays, index=index)


def speaker_posture_offsets(data_dir: str | Path, split: str = "train") -> dict[str, list[float]]:
    """How the average posture of each speaker with real motion in `split` differs from the average over those
    speakers: {speaker: (n_bones * 3) differences of unit bone directions} on the bones that place the arms
    (ha2g_model.skeleton.posture_bones), 0 on the others, on a bone the speaker's source lacks and with a single
    speaker. Checkpoints record them (meta "posture_offsets"): with a style per utterance the engine moves the
    model's motion by one, drawn per utterance, because the model's learnt styles vary the average posture far less
    than real speakers do (docs/training.md). Synthetic sequences are not real motion and are left out."""
    from safetensors import safe_open

    index = read_index(data_dir)
    skeleton = get_skeleton(index["skeleton"])
    real = np.array([s["source"] != "synthetic" for s in index["sequences"]])
    sums, counts = {}, {}  # speaker index -> (n_bones, 3) sum of valid unit directions, (n_bones,) how many
    for shard in index["shards"][split]:
        with safe_open(str(Path(data_dir) / shard["file"]), framework="numpy") as f:
            keys = set(f.keys()) & {"dir_vec", "valid", "frame", "speaker", "sequence", "start"}
            windows = cut_windows({key: f.get_tensor(key) for key in keys}, np.arange(shard["n"]),
                                  ("dir_vec", "valid", "speaker", "sequence"))
        keep = real[windows["sequence"]]
        for speaker in np.unique(windows["speaker"][keep]):
            rows = keep & (windows["speaker"] == speaker)
            valid = windows["valid"][rows]
            sums[speaker] = sums.get(speaker, 0) + (windows["dir_vec"][rows] * valid[..., None]).sum(axis=(0, 1))
            counts[speaker] = counts.get(speaker, 0) + valid.sum(axis=(0, 1))
    if not sums:
        return {}
    speakers = sorted(sums)
    arm = np.isin(np.arange(skeleton.n_bones), posture_bones(skeleton))
    has = np.stack([(counts[s] > 0) & arm for s in speakers])  # (n_speakers, n_bones)
    postures = np.stack([sums[s] / np.maximum(counts[s], 1)[:, None] for s in speakers])
    postures /= np.linalg.norm(postures, axis=-1, keepdims=True) + 1e-8
    n_with = has.sum(axis=0)  # speakers that have each bone
    mean = (postures * has[..., None]).sum(axis=0) / np.maximum(n_with, 1)[:, None]
    offsets = np.where((has & (n_with > 1))[..., None], postures - mean, 0.0)
    return {index["speakers"][s]: [round(float(v), 6) for v in offsets[k].reshape(skeleton.pose_dim)]
            for k, s in enumerate(speakers)}


def load_vocab(data_dir: str | Path) -> Vocab:
    return Vocab.load(Path(data_dir) / "vocab.json")


# --- the old format -------------------------------------------------------------------------------------------------

def convert(old_dir: str | Path, out_dir: str | Path, shard_size: int = 4096) -> dict:
    """An `ha2g_windows/1` data set (every window stored whole) -> this format, one old shard in memory at a time."""
    old_dir = Path(old_dir)
    index = json.loads((old_dir / "index.json").read_text())
    if index.get("format") != "ha2g_windows/1":
        raise ValueError(f"{old_dir}: expected an ha2g_windows/1 data set, found format {index.get('format')!r}")
    out = _empty_dir(out_dir)
    shards = {}
    for split in SPLITS:
        writer = ShardWriter(out, split, shard_size)
        for shard in tqdm(index["shards"][split], desc=f"convert {split}", unit="shard"):
            old = load_file(str(old_dir / shard["file"]))
            windows = [{k: old[k][i] for k in WINDOW_ARRAYS if k in old} for i in range(len(old["start"]))]
            # old shards hold each sequence's windows in order; a sequence may continue in the next shard
            for _, group in itertools.groupby(windows, key=lambda w: int(w["sequence"])):
                for segment in pack_segments(sorted(group, key=lambda w: int(w["start"]))):
                    writer.add(segment)
        shards[split] = writer.close()
    new = _index(index["skeleton"], index["stride"], index["speakers"], index["sequences"], shards, index["rejected"],
                 index["filter"])
    (out / "index.json").write_text(json.dumps(new, indent=1, ensure_ascii=False))
    shutil.copyfile(old_dir / "vocab.json", out / "vocab.json")
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description="Convert an ha2g_windows/1 data set to the current format.")
    parser.add_argument("--convert", required=True, metavar="OLD_DIR", help="ha2g_windows/1 data set")
    parser.add_argument("--out", required=True, help="empty output directory")
    parser.add_argument("--shard-size", type=int, default=4096, help="windows per shard")
    args = parser.parse_args()
    index = convert(args.convert, args.out, args.shard_size)
    print(f"{args.out}: windows {index['windows']}")


if __name__ == "__main__":
    main()
