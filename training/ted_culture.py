"""The 12 real TED-Culture clips in ../shared/data/ted_culture/ (read-only; nothing of them is copied into the package).

Each clip is a different talk (video id = the part of the clip id before the last three `_` fields), so the clips are
split by video: `TEST_CLIPS` are held out from every training run here and are what the shipped checkpoint is judged on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.windows import Sequence

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ted_culture"

# Held-out clips: four talks in four different languages (Japanese, Italian, French, Turkish).
TEST_CLIPS = ("Wh7-rF4E-Eg_141_0_15", "_soZahWpS-0_57_0_8", "pVWyJT1141A_120_1_6", "xdpCVQbuPD8_197_0_14")
VAL_CLIPS = ("N-dsHgOl00M_20_3_13",)


def video_id(clip_id: str) -> str:
    """'3djAkIpp7C0_131_0_16' -> '3djAkIpp7C0' (YouTube ids may themselves contain '_')."""
    return clip_id.rsplit("_", 3)[0]


def split_of(clip_id: str) -> str:
    return "test" if clip_id in TEST_CLIPS else "val" if clip_id in VAL_CLIPS else "train"


def load_clip(path: str | Path) -> Sequence:
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        missing = {"dir_vec", "audio", "words", "word_times", "clip_id", "fps", "sample_rate"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a ted_culture clip, missing {sorted(missing)}")
        if int(data["fps"]) != 15 or int(data["sample_rate"]) != 16000:
            raise ValueError(f"{path}: expected 15 fps / 16 kHz, got {int(data['fps'])} fps / {int(data['sample_rate'])} Hz")
        clip_id = str(data["clip_id"])
        directions = data["dir_vec"].astype(np.float32)
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        audio = data["audio"].astype(np.float32) / 32767.0
        # Transcripts carry trailing spaces and the first word may start before the clip: clamp it to 0.
        words = [(str(w).strip(), max(0.0, float(s)), float(e))
                 for w, (s, e) in zip(data["words"], data["word_times"]) if str(w).strip() and e > max(0.0, s)]
    return Sequence(name=clip_id, speaker=video_id(clip_id), directions=directions, audio=audio, words=words,
                    source="ted_culture")


def load_clips(data_dir: str | Path = DEFAULT_DIR, clip_ids: tuple[str, ...] | None = None) -> list[Sequence]:
    data_dir = Path(data_dir)
    paths = sorted(data_dir.glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"no ted_culture clips (*.npz) in {data_dir}")
    clips = [load_clip(p) for p in paths]
    if clip_ids is not None:
        clips = [c for c in clips if c.name in clip_ids]
    return clips
