"""Training windows: what every data source is turned into, and the one on-disk format they are stored in.

Every ingester (`ted_lmdb`, `recordings`, `ted_culture`, `synthetic`) yields `Sequence`s: one continuous recording
of one speaker, with unit direction vectors at 15 fps, 16 kHz mono audio on the same clock and timed words.
`write_dataset` cuts them into the HA2G training windows (34 frames, stride 10, the official filters) and stores them.

On-disk format: a directory with
    index.json               skeleton, window geometry, speakers, sequences (source, split), shard list, filter counts
    vocab.json               the word vocabulary the `words` indices refer to (ha2g_model.text.Vocab)
    <split>-00000.safetensors ...  shards of at most `shard_size` windows, tensors:
        dir_vec    (N, 34, n_bones, 3) float32  unit directions (mean NOT subtracted)
        spec       (N, 128, 70)        float16  log-mel dB of the window's audio (the model input)
        audio      (N, 36267)          int16    the window's audio (onsets and loudness for the metrics)
        words      (N, 34)             int32    frame-aligned word indices into vocab.json (0 = PAD)
        speaker    (N,)                int32    index into index.json["speakers"]
        sequence   (N,)                int32    index into index.json["sequences"]
        start      (N,)                int32    first frame of the window in its sequence
Why safetensors + JSON: no pickles (a data set is data, never code), readable from any language, zero-copy and
lazily sliceable (`safe_open(...).get_slice`), and the metadata a person wants to read is plain JSON.
"""
from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from ha2g_model.audio import (HOP_LENGTH, N_MELS, SAMPLE_RATE, SILENCE_PEAK, TOP_DB, WINDOW_SAMPLES, frame_to_sample,
                              log_mel, window_spectrogram)
from ha2g_model.skeleton import (FPS, Skeleton, directions_to_positions, get_skeleton, normalize_directions,
                                 skeleton_statistics)
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

    def validate(self, skeleton: Skeleton) -> None:
        d = self.directions
        if d.ndim != 3 or d.shape[1:] != (skeleton.n_bones, 3):
            raise ValueError(f"{self.name}: directions must be (T, {skeleton.n_bones}, 3) for {skeleton.name}, "
                             f"got {d.shape}")
        if not np.isfinite(d).all():
            raise ValueError(f"{self.name}: directions contain NaN or Inf")
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if list(out.glob("*.safetensors")):
        raise FileExistsError(f"{out} already holds a data set; write to an empty directory")
    if vocab is None or speakers is None:
        sequences = list(sequences)
        vocab = vocab or build_vocab(sequences)
        speakers = speakers or sorted({s.speaker for s in sequences})
    speaker_index = {s: i for i, s in enumerate(speakers)}
    listed: list[dict] = []
    seen: set[str] = set()

    buffers = {split: [] for split in SPLITS}
    shards = {split: [] for split in SPLITS}
    rejected: Counter = Counter()
    kept: Counter = Counter()

    def flush(split: str) -> None:
        rows = buffers[split]
        if not rows:
            return
        name = f"{split}-{len(shards[split]):05d}.safetensors"
        save_file({key: np.ascontiguousarray(np.stack([r[key] for r in rows])) for key in rows[0]}, str(out / name))
        shards[split].append({"file": name, "n": len(rows)})
        buffers[split] = []

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
        listed.append({"name": seq.name, "speaker": seq.speaker, "source": seq.source, "split": split,
                       "n_frames": seq.n_frames})
        positions = filter_positions(seq.directions, skeleton) if seq.positions is None else seq.positions
        seq_stride = stride.get(seq.source, STRIDE) if isinstance(stride, dict) else stride
        spec = sequence_spectrogram(seq.audio)
        for start in window_starts(seq.n_frames, len(seq.audio), seq_stride):
            start_s, end_s = start / FPS, (start + N_FRAMES) / FPS
            reason = rejection_reason(positions[start:start + N_FRAMES], words_in(seq.words, start_s, end_s),
                                      skeleton, flt)
            if reason:
                rejected[reason] += 1
                continue
            audio = seq.audio[frame_to_sample(start):frame_to_sample(start) + WINDOW_SAMPLES]
            buffers[split].append({
                "dir_vec": seq.directions[start:start + N_FRAMES].astype(np.float32),
                "spec": window_spectrogram(spec, start).astype(np.float16),
                "audio": np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16),
                "words": np.asarray(frame_word_indices(seq.words, vocab, start_s, N_FRAMES), dtype=np.int32),
                "speaker": np.int32(speaker_index[seq.speaker]),
                "sequence": np.int32(seq_id),
                "start": np.int32(start),
            })
            kept[split] += 1
            if len(buffers[split]) >= shard_size:
                flush(split)
    for split in SPLITS:
        flush(split)

    index = {
        "format": "ha2g_windows/1",
        "skeleton": skeleton.name,
        "fps": FPS, "sample_rate": SAMPLE_RATE, "n_frames": N_FRAMES, "n_seed": N_SEED, "stride": stride,
        "speakers": speakers,
        "sequences": listed,
        "shards": shards,
        "windows": {split: kept[split] for split in SPLITS},
        "rejected": dict(rejected),
        "filter": asdict(flt),
        "sources": dict(Counter(item["source"] for item in listed)),
    }
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    vocab.save(out / "vocab.json")
    return index


@dataclass
class Windows:
    """One split of a data set, in memory. Arrays as in the module docstring."""

    dir_vec: np.ndarray
    spec: np.ndarray
    audio: np.ndarray
    words: np.ndarray
    speaker: np.ndarray
    sequence: np.ndarray
    start: np.ndarray
    index: dict = field(repr=False)

    def __len__(self) -> int:
        return len(self.dir_vec)

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
        return Windows(**{k: getattr(self, k)[mask] for k in _ARRAYS}, index=self.index)


_ARRAYS = ("dir_vec", "spec", "audio", "words", "speaker", "sequence", "start")


def read_index(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {data_dir} is not a windows data set (see docs/training.md)")
    index = json.loads(path.read_text())
    if index.get("format") != "ha2g_windows/1":
        raise ValueError(f"{path}: unknown format {index.get('format')!r}")
    return index


def load_windows(data_dir: str | Path, split: str) -> Windows:
    """Every window of `split` in memory (about 90 kB a window, mostly audio)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    index = read_index(data_dir)
    parts = [load_file(str(Path(data_dir) / shard["file"])) for shard in index["shards"][split]]
    if not parts:
        raise ValueError(f"{data_dir} has no {split} windows (windows per split: {index['windows']})")
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in _ARRAYS}
    return Windows(**arrays, index=index)


def load_vocab(data_dir: str | Path) -> Vocab:
    return Vocab.load(Path(data_dir) / "vocab.json")
