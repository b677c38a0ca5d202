"""Speak with gestures: one utterance handed to the gesture node before it is played (ha2g_interfaces/action/
SpeakWithGestures). Pure checks and bookkeeping here, no ROS entities; the gesture node runs the action server.

The life of an utterance (docs/speech.md has the timing picture):
  goal -> checked (Utterance.from_goal) -> queued -> generated and retargeted on a worker thread (whole-utterance
  mode: the model hears the whole sentence) -> scheduled: its frames become the gesture node's targets so that frame
  i plays at start + i / 15 s, and its speech goes out on speech_audio stamped `start` -> played -> result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ha2g_ros.audio_messages import AudioMessageError, check_format, pcm_frames
from ha2g_ros.transcript import MAX_WORD_CHARS, MAX_WORDS, spread_words
from ha2g_ros.voice_activity import FRAME, SAMPLE_RATE, frame_levels_db

GENERATING, SCHEDULED, PLAYING = 0, 1, 2  # the action's feedback stages
VOICE_FRAME_S = FRAME / SAMPLE_RATE  # the voice activity detector's frame: 20 ms
WORD_SLACK_S = 0.5  # a word may end this much after the audio (rounding in a TTS engine's timings); it is clipped


class UtteranceError(ValueError):
    """A goal that cannot be spoken; the text says what is wrong with it and goes into the action's result."""


@dataclass
class Utterance:
    goal_handle: object
    samples: np.ndarray  # float32, interleaved as received (what speech_audio republishes)
    channels: int
    sample_rate: int
    words: list[tuple[str, float, float]]  # timed, seconds from the first sample
    requested_start_s: float | None  # ROS time, or None: as soon as the gestures are ready
    received_s: float  # ROS time of the request
    finished: object = None  # rclpy Future completed with the action's result
    stage: int | None = None  # None: queued, not started
    job: object = None  # concurrent.futures.Future of the worker: joint targets (T, n_joints) and directions
    ready_s: float | None = None
    start_s: float | None = None
    skipped_s: float = 0.0  # the beginning that was already due when the gestures were ready (not gestured)
    frames: int = 0
    last_feedback: tuple = field(default_factory=tuple)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.channels / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def mono(self) -> np.ndarray:
        return self.samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)

    @classmethod
    def from_goal(cls, goal_handle, now_s: float, max_duration_s: float, voice_threshold_db: float) -> "Utterance":
        goal = goal_handle.request
        rate, channels = int(goal.sample_rate), int(goal.channels)
        try:
            check_format(rate, channels)
            # a TTS engine's float32 is exactly in range: no rounding overshoot tolerated
            samples = pcm_frames(goal.samples, channels, peak_tolerance=1e-6).reshape(-1)
        except AudioMessageError as error:
            raise UtteranceError(str(error)) from None
        duration = len(samples) / channels / rate
        if duration > max_duration_s:
            raise UtteranceError(f"the utterance lasts {duration:.1f} s, more than max_utterance_s "
                                 f"({max_duration_s:g} s): send it sentence by sentence")
        start = goal.start_time.sec + goal.start_time.nanosec * 1e-9
        requested = start if start > 0 else None
        if requested is not None and requested + duration <= now_s:
            raise UtteranceError(f"start_time lies {now_s - requested:.2f} s in the past and the utterance "
                                 f"({duration:.2f} s) would be over already")
        utterance = cls(goal_handle, samples, channels, rate, [], requested, now_s)
        utterance.words = timed_words(goal, utterance.mono, rate, duration, voice_threshold_db)
        return utterance


def timed_words(goal, mono: np.ndarray, rate: int, duration_s: float,
                voice_threshold_db: float) -> list[tuple[str, float, float]]:
    """The goal's words on the audio's clock: its timed words, checked, or its text spread over the voiced part."""
    if len(goal.words) > MAX_WORDS:
        raise UtteranceError(f"{len(goal.words)} words, more than {MAX_WORDS}")
    if goal.words:
        if not len(goal.words) == len(goal.word_start_s) == len(goal.word_end_s):
            raise UtteranceError(f"words, word_start_s and word_end_s differ in length ({len(goal.words)}, "
                                 f"{len(goal.word_start_s)}, {len(goal.word_end_s)})")
        words = []
        for word, start, end in zip(goal.words, goal.word_start_s, goal.word_end_s):
            if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start <= end):
                raise UtteranceError(f"word {word!r} has timing [{start}, {end}]: needs 0 <= start <= end")
            if start >= duration_s or end > duration_s + WORD_SLACK_S:
                raise UtteranceError(f"word {word!r} at [{start:.2f}, {end:.2f}] s lies outside the audio "
                                     f"({duration_s:.2f} s): word times count from the first sample")
            if not word.strip() or len(word) > MAX_WORD_CHARS:
                raise UtteranceError(f"word {word[:40]!r} is empty or longer than {MAX_WORD_CHARS} characters")
            words.append((word.strip(), float(start), float(min(end, duration_s))))
        return words
    text = goal.text.split()
    if not text:
        return []
    if len(text) > MAX_WORDS:
        raise UtteranceError(f"text has {len(text)} words, more than {MAX_WORDS}")
    begin, end = voiced_span(mono, rate, voice_threshold_db)
    return spread_words([w[:MAX_WORD_CHARS] for w in text], begin, end) if end > begin else []


def voiced_frames(mono: np.ndarray, rate: int, threshold_db: float) -> tuple[np.ndarray, float]:
    """Indices of the 20 ms frames louder than threshold_db (dBFS RMS), as the voice activity detector decides, and
    the frame's exact length in seconds (whole samples: 20 ms up to rounding where the rate does not divide)."""
    frame = max(1, round(VOICE_FRAME_S * rate))
    return np.flatnonzero(frame_levels_db(mono, frame) > threshold_db), frame / rate


def voiced_span(mono: np.ndarray, rate: int, threshold_db: float) -> tuple[float, float]:
    """Seconds of the first and last voiced 20 ms frame, or (0, 0)."""
    voiced, frame_s = voiced_frames(mono, rate, threshold_db)
    if not len(voiced):
        return 0.0, 0.0
    return voiced[0] * frame_s, (voiced[-1] + 1) * frame_s


def gesture_weights(mono: np.ndarray, rate: int, n_frames: int, threshold_db: float, hangover_s: float,
                    fade_in_s: float, fade_out_s: float, fps: float = 15.0) -> np.ndarray:
    """Gesture weight (0 = rest pose, 1 = full gesture) of each frame i at i / fps, as live speech gets it from the
    voice activity detector (speech above threshold_db, pauses shorter than hangover_s inside it), but knowing the
    future: the fade in ends where the speech starts instead of starting there, so the first words get their
    gestures in full; the fade out starts where the speech (with its hangover) ends."""
    voiced, frame_s = voiced_frames(mono, rate, threshold_db)
    times = np.arange(n_frames) / fps
    if not len(voiced):
        return np.zeros(n_frames)
    # speech segments: voiced frames closer than the hangover belong together; each ends hangover_s after its last
    gaps = np.flatnonzero(np.diff(voiced) * frame_s > hangover_s)
    starts = np.concatenate([voiced[:1], voiced[gaps + 1]]) * frame_s
    ends = (np.concatenate([voiced[gaps], voiced[-1:]]) + 1) * frame_s + hangover_s
    k = np.searchsorted(starts, times, side="right")  # segments started at or before each frame
    after_start = k > 0
    inside = after_start & (times < ends[np.maximum(k - 1, 0)])
    since_end = np.where(after_start, times - ends[np.maximum(k - 1, 0)], np.inf)
    until_start = np.where(k < len(starts), starts[np.minimum(k, len(starts) - 1)] - times, np.inf)
    fading = np.maximum(1 - since_end / fade_out_s, 1 - until_start / fade_in_s)
    return np.where(inside, 1.0, np.clip(fading, 0.0, 1.0))
