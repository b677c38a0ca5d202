"""Energy voice activity detection on the 16 kHz stream: is someone speaking, and since when. Pure, no ROS.

Speech is declared when a 20 ms frame's RMS level exceeds `threshold_db` (dBFS) and ended only after `hangover_s`
of frames below it: pauses between words and short breaths do not count as silence, so the robot does not drop its
arms mid-sentence. Energy is enough here because the decision only gates gestures; a wrong call costs a gesture,
never safety (the fade toward rest is velocity limited either way).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
FRAME = 320  # 20 ms at 16 kHz


@dataclass
class VadConfig:
    threshold_db: float = -40.0  # dBFS; a close microphone puts speech at about -30..-10, a quiet room below -50
    hangover_s: float = 0.6  # silence shorter than this is a pause within speech


def frame_levels_db(samples: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """RMS level in dBFS of each whole frame of `samples` (float32 in [-1, 1]); 20 ms frames at 16 kHz by default."""
    n = len(samples) // frame
    frames = np.asarray(samples[: n * frame], dtype=np.float64).reshape(n, frame)
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


class EnergyVAD:
    """Streaming detector: feed it audio in any chunk sizes, read `speaking` and when the speech segment started."""

    def __init__(self, config: VadConfig | None = None):
        self.config = config or VadConfig()
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._t = 0.0  # stream time of the next frame, s
        self._last_voiced = -np.inf  # end time of the last frame above the threshold
        self.speaking = False
        self.segment_start = 0.0  # start of the current (or last) speech segment, stream s
        self._changes: list[tuple[float, bool]] = [(0.0, False)]  # (stream time, speaking from then on)

    def update(self, samples: np.ndarray) -> bool:
        """Consume 16 kHz samples; returns whether speech is ongoing at the end of them."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        levels = frame_levels_db(self._pending)
        self._pending = self._pending[len(levels) * FRAME:]
        for level in levels:
            frame_end = self._t + FRAME / SAMPLE_RATE
            if level > self.config.threshold_db:
                if not self.speaking:
                    self.speaking, self.segment_start = True, self._t
                    self._changes.append((self._t, True))
                self._last_voiced = frame_end
            elif self.speaking and frame_end - self._last_voiced >= self.config.hangover_s:
                self.speaking = False
                self._changes.append((frame_end, False))
            self._t = frame_end
        del self._changes[:-64]  # a few minutes of turns is more history than any caller looks back
        return self.speaking

    def speaking_during(self, begin: float, end: float) -> bool:
        """Whether speech was on at any stream time in [begin, end)."""
        return self.speaking_at(begin) or any(speaking and begin <= t < end for t, speaking in self._changes)

    def speaking_at(self, t: float) -> bool:
        """The decision in force at stream time `t` (s), for frames that lag behind the newest audio."""
        for change_t, speaking in reversed(self._changes):
            if change_t <= t:
                return speaking
        return self._changes[0][1]
