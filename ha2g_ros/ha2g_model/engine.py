"""GestureEngine: speech audio (+ optional word timings) -> gesture frames at 15 fps, for whole utterances or live.

HA2G generates fixed 34-frame windows whose first 4 frames are given (seed frames). Both modes chain such windows:

Whole utterance (`generate_utterance`): windows every 30 frames, each seeded with the last 4 frames of the previous
window (the first with the rest pose), the 4 overlapping frames cross-faded; optionally faded back to rest at the end.

Streaming (`push_audio` / `push_words` / `pull_frames`): every `hop_frames` of new audio one window runs over the
most recent 34 frames of audio, seeded with 4 frames already emitted. Frames are emitted up to `lookahead_frames`
behind "now" (the newest audio), so each emitted frame has seen that much future speech. The frames a window
predicts beyond what it emits are kept and cross-faded with the next window's prediction, and every new prediction
is bent to pass through the last emitted frame, so emissions join without jumps.

Latency of a gesture frame behind the speech it belongs to (see docs/engine.md for measured numbers):
    lookahead_frames / 15 s  (future audio the frame waits for)
  + up to hop_frames / 15 s  (frames are produced in batches, one window per hop)
  + compute time of one window (`last_compute_s`).

Time runs on one clock per stream: seconds since the first pushed sample (16 kHz); frame i is at i / 15 s.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ha2g_model.audio import (SAMPLE_RATE, SILENCE_PEAK, TOP_DB, WINDOW_FRAMES, WINDOW_SAMPLES, frame_to_sample,
                              log_mel, resample, validate_audio, window_spectrogram)
from ha2g_model.backends import ModelSource, create_backend
from ha2g_model.skeleton import FPS, Skeleton, denormalize_directions, normalize_directions, offset_posture
from ha2g_model.text import frame_word_indices
from ha2g_model.words import validate_words

ENCODE_BATCH = 2  # whole utterance: windows per encoder call; small, so the chain starts early (larger gained nothing)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default"


@dataclass(frozen=True)
class EngineConfig:
    # Streaming. Defaults chosen from the quality/latency table in docs/engine.md.
    hop_frames: int = 6  # one window every hop frames of new audio (1..30)
    lookahead_frames: int = 4  # emitted frames lag the newest audio by this many frames; hop + lookahead <= 30
    # Both modes.
    speaker: int = 0  # gesture style: a speaker id (checkpoints loaded from disk default to their recommended one)
    seed: int | None = None  # None: deterministic style (z = mu); an int: sampled style noise, reproducible
    # False: every utterance and stream has the same style (z = mu, or the seed's noise) and the model's own average
    # posture. True: each draws its own style noise and, from checkpoints that record them (meta "posture_offsets"),
    # the average posture of one of the real training speakers, from a generator seeded once by `seed` (None: by the
    # OS), so that sentences differ in posture as people do (new_style() for a stream; docs/training.md: posture
    # variety across held-out clips 0.50x of real -> 0.61x with the noise alone -> 1.30x with the postures too).
    style_per_utterance: bool = False
    # Whole utterance.
    stride_frames: int = 30  # window stride; 34 - 30 = 4 frames overlap = the seed frames (as the official code)
    fade_frames: int = 10  # frames blended back to the rest pose at the end when fade_to_rest is asked

    def validate(self, n_pre_poses: int = 4) -> None:
        problems = []
        predicted = WINDOW_FRAMES - n_pre_poses  # the frames of a window after its seed frames
        if not 1 <= self.hop_frames <= predicted:
            problems.append(f"hop_frames must be in [1, {predicted}], got {self.hop_frames}")
        if self.lookahead_frames < 0:
            problems.append(f"lookahead_frames must be >= 0, got {self.lookahead_frames}")
        elif self.hop_frames + self.lookahead_frames > predicted:
            # then a window's seed frames would not all be emitted frames yet
            problems.append(f"hop_frames + lookahead_frames must be <= {predicted}, got "
                            f"{self.hop_frames} + {self.lookahead_frames}")
        if not 1 <= self.stride_frames <= predicted:
            problems.append(f"stride_frames must be in [1, {predicted}], got {self.stride_frames}")
        if self.fade_frames < 0:
            problems.append(f"fade_frames must be >= 0, got {self.fade_frames}")
        if self.seed is not None and not isinstance(self.seed, int):
            problems.append(f"seed must be None or an int, got {self.seed!r}")
        if not isinstance(self.style_per_utterance, bool):
            problems.append(f"style_per_utterance must be true or false, got {self.style_per_utterance!r}")
        if problems:
            raise ValueError("invalid EngineConfig: " + "; ".join(problems))


class GestureEngine:
    """Gesture generation from speech with one HA2G model behind a backend ("torch", "onnxruntime", "tensorrt").

    `model` is an `HA2G` module, a checkpoint directory or an official HA2G .bin file; `vocab` the
    `ha2g_model.text.Vocab` of its words (None: the checkpoint's, or words are ignored). A checkpoint directory is
    handed to the backend as it is: the onnxruntime backend runs the ONNX graphs it ships without loading (or
    importing) torch. Keyword overrides (`hop_frames=8`, ...) replace fields of `config`.
    """

    def __init__(self, model, vocab=None, *, backend="torch", device: str = "cpu", precision: str = "fp32",
                 config: EngineConfig | None = None, backend_options: dict | None = None, **overrides):
        source = ModelSource(model)
        vocab = source.vocab if vocab is None else vocab
        if config is None and "speaker" not in overrides:
            overrides["speaker"] = _default_speaker(source.meta)
        self.model_config = source.config
        self.skeleton: Skeleton = source.config.skeleton_def
        if vocab is not None and len(vocab) > source.config.n_words:
            raise ValueError(f"the vocabulary has {len(vocab)} words but the model embeds only "
                             f"{source.config.n_words}: they do not belong together")
        self.vocab = vocab
        self.config = replace(config or EngineConfig(), **overrides)
        self.config.validate(self.model_config.n_pre_poses)
        self._check_speaker(self.config.speaker)
        self.backend = create_backend(backend, source, device=device, precision=precision, **(backend_options or {}))
        self.rest = normalize_directions(self.skeleton.rest_directions(), self.skeleton).astype(np.float32)
        self.postures = _posture_offsets(source.meta, self.skeleton)  # (n, n_bones, 3) or None
        self.last_compute_s = 0.0
        self.windows_run = 0  # streaming windows the model ran (idle ones excluded)
        self._lock = threading.Lock()  # push_* may come from an audio thread while another thread pulls
        self._style_lock = threading.Lock()  # the style generator: utterances may run on another thread
        self._style_rng = np.random.default_rng(self.config.seed)
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, backend="torch", **kwargs) -> "GestureEngine":
        """Load a checkpoint directory (None = the shipped default, ha2g_model/checkpoints/default) or an official
        HA2G .bin file. `kwargs`: device, precision, config, backend_options and EngineConfig fields."""
        path = DEFAULT_CHECKPOINT if path is None else Path(path)
        if not path.is_file() and not (path / "config.json").is_file():
            hint = (" (the shipped default checkpoint is not installed: train one with the training scripts or "
                    "pass a checkpoint directory)" if path == DEFAULT_CHECKPOINT else "")
            raise FileNotFoundError(f"no HA2G checkpoint at {path}: expected model.safetensors + config.json + "
                                    f"vocab.json{hint}")
        return cls(path, backend=backend, **kwargs)

    def reconfigure(self, **changes) -> None:
        """Change EngineConfig fields (hop_frames, lookahead_frames, seed, ...); the stream restarts."""
        config = replace(self.config, **changes)
        config.validate(self.model_config.n_pre_poses)
        self._check_speaker(config.speaker)
        with self._lock:
            self.config = config
        with self._style_lock:
            self._style_rng = np.random.default_rng(config.seed)
        self.reset()

    # --- style --------------------------------------------------------------------------------------------------

    @property
    def speaker(self) -> int:
        return self.config.speaker

    def set_speaker(self, speaker: int) -> None:
        self._check_speaker(speaker)
        with self._lock:
            self.config = replace(self.config, speaker=int(speaker))

    def _check_speaker(self, speaker) -> None:
        n = self.model_config.n_speakers
        if isinstance(speaker, bool) or not isinstance(speaker, (int, np.integer)) or not 0 <= speaker < n:
            raise ValueError(f"speaker must be an int in [0, {n}) for this checkpoint, got {speaker!r}")

    # --- whole utterance ----------------------------------------------------------------------------------------

    def generate_utterance(self, audio, words=None, fade_to_rest: bool = True, sample_rate: int = SAMPLE_RATE,
                           progress: bool = False) -> np.ndarray:
        """Speech (any length) -> (T, n_bones, 3) unit direction vectors at 15 fps, T = round(duration * 15).

        `words`: optional [(word, start_s, end_s)] on the audio's clock. Audio at another `sample_rate` is resampled.
        """
        if sample_rate != SAMPLE_RATE:
            audio = resample(np.asarray(audio), sample_rate)
        audio = validate_audio(audio)
        words = self._check_words(words)
        spec = log_mel(audio)  # one reference level (the loudest bin) for the whole utterance, as in training
        n_frames = max(1, round(len(audio) * FPS / SAMPLE_RATE))
        stride, n_pre = self.config.stride_frames, self.model_config.n_pre_poses
        n_windows = max(1, -(-(n_frames - n_pre) // stride))  # ceil: every frame covered by some window
        out = np.zeros(((n_windows - 1) * stride + WINDOW_FRAMES, self.model_config.pose_dim), np.float32)
        noise, posture = self._style()
        seed = np.repeat(self.rest[None], n_pre, axis=0)
        overlap = WINDOW_FRAMES - stride
        ramp = (np.arange(1, overlap + 1) / (overlap + 1))[:, None].astype(np.float32)
        with contextlib.closing(self._utterance_windows(spec, words, n_windows, noise)) as window:
            next(window)
            windows = range(n_windows)
            if progress:
                from tqdm import tqdm

                windows = tqdm(windows, desc="gesture windows", unit="win")
            for w in windows:
                start = w * stride
                frames = window.send(seed)
                if w:  # cross-fade the frames this window shares with the previous one
                    frames[:overlap] = (1 - ramp) * out[start:start + overlap] + ramp * frames[:overlap]
                out[start:start + WINDOW_FRAMES] = frames
                seed = out[start + stride:start + stride + n_pre]  # this window's frames where the next one starts
        out = out[:n_frames]
        posture_weight = np.ones(n_frames, np.float32)
        if fade_to_rest and self.config.fade_frames:
            n = min(self.config.fade_frames, n_frames)
            w = _smoothstep(np.arange(1, n + 1) / n)[:, None]
            out[-n:] = (1 - w) * out[-n:] + w * self.rest
            posture_weight[-n:] = 1 - w[:, 0]  # the posture fades to rest with the motion
        return self._directions(out, posture * posture_weight[:, None, None])

    def _utterance_windows(self, spec, words, n_windows: int, noise):
        """A generator, primed with next(): send it each window's seed (4, D) in turn, receive its frames (34, D).

        Only the level chain depends on the seed (the previous window's output); the audio and text encoders do
        not. With a backend that has `encode`/`decode` (torch, onnxruntime), the encoders of all windows run in
        batches on a helper thread, ahead of and beside the chain: on two cores the utterance then costs about
        max(encoders, chain) instead of their sum. Other backends run whole windows one after another.
        """
        stride, speaker = self.config.stride_frames, self.config.speaker
        if not (hasattr(self.backend, "encode") and hasattr(self.backend, "decode")):
            seed = yield
            for w in range(n_windows):
                seed = yield self._run_window(window_spectrogram(spec, w * stride), words, w * stride, seed, noise)
            return
        specs = np.stack([window_spectrogram(spec, w * stride) for w in range(n_windows)])
        word_ids = np.stack([self._word_ids(words, w * stride) for w in range(n_windows)])
        speakers = np.full(n_windows, speaker, np.int64)
        chunks = range(0, n_windows, ENCODE_BATCH)
        with ThreadPoolExecutor(1, thread_name_prefix="ha2g-encode") as pool:
            encoded = [pool.submit(self.backend.encode, specs[i:i + ENCODE_BATCH], word_ids[i:i + ENCODE_BATCH],
                                   speakers[i:i + ENCODE_BATCH]) for i in chunks]
            try:
                seed = yield
                for w in range(n_windows):
                    blends, texts = encoded[w // ENCODE_BATCH].result()
                    k = w % ENCODE_BATCH
                    began = time.perf_counter()
                    frames = self.backend.decode(blends[k:k + 1], texts[k:k + 1], seed[None].astype(np.float32),
                                                 speakers[:1], noise[None])[0]
                    self.last_compute_s = time.perf_counter() - began
                    seed = yield frames
            finally:
                for future in encoded:
                    future.cancel()

    # --- streaming ----------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: clock back to 0, audio and words dropped, the next frames start from the rest pose."""
        with self._lock:
            self._audio = np.zeros(0, np.float32)
            self._audio_start = 0  # stream sample index of self._audio[0]
            self._n_samples = 0  # samples pushed since the stream started
            self._words: list[tuple[str, float, float]] = []
            self._emitted = np.zeros((0, self.model_config.pose_dim), np.float32)  # the last emitted frames
            self._next_frame = 0  # index of the next frame to emit; self._emitted ends just before it
            self._pending = np.zeros((0, self.model_config.pose_dim), np.float32)  # predicted, not yet emitted
            self._next_end = self.config.hop_frames  # end frame (exclusive) of the next window to run
            self._ready: list[tuple[int, np.ndarray]] = []  # (first frame index, frames) awaiting pull_frames
            self._stream_noise, self._stream_posture = self._style()
            self._ref_db = _silence_db()

    def push_audio(self, samples) -> None:
        """Append speech samples (16 kHz mono float32 in [-1, 1], any chunk size) to the stream."""
        if np.asarray(samples).size == 0:
            return
        samples = validate_audio(samples, allow_silence=True)
        with self._lock:
            self._audio = np.concatenate((self._audio, samples))
            self._n_samples += len(samples)

    def push_words(self, words) -> None:
        """Add timed words [(word, start_s, end_s)] on the stream clock (seconds since the first pushed sample)."""
        words = self._check_words(words)
        with self._lock:
            self._words = sorted(self._words + words, key=lambda w: w[1])

    def pull_frames(self, idle=None) -> tuple[np.ndarray, np.ndarray]:
        """Run the windows that are due; return the new frames: times_s (n,), unit directions (n, n_bones, 3).

        `idle(first_s, end_s)`, if given, is asked for each due window with the span of the frames it would emit or
        hand on to the next window (the lookahead); when it says True (nobody sees them: silence, the robot resting), the model does not run and those frames are the
        rest pose, as at the start of a stream. The stream's clocks go on exactly as if it had run."""
        with self._lock:
            while self._n_samples >= self._samples_for_next_window():
                self._stream_window(idle)
            ready, self._ready = self._ready, []
        return self._frames_out(ready)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End the stream: return every frame not pulled yet, up to the end of the pushed audio (the lookahead the
        last frames lack is taken as silence), then reset. For the end of an utterance when no more audio follows."""
        with self._lock:
            n_frames = round(self._n_samples * FPS / SAMPLE_RATE)
            while self._next_frame < n_frames:
                needed = self._samples_for_next_window()
                if self._n_samples < needed:
                    self._audio = np.concatenate((self._audio, np.zeros(needed - self._n_samples, np.float32)))
                    self._n_samples = needed
                self._stream_window()
            ready, self._ready = self._ready, []
        times, directions = self._frames_out(ready)
        self.reset()
        keep = times < n_frames / FPS - 1e-9
        return times[keep], directions[keep]

    def _frames_out(self, ready: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not ready:
            return np.zeros(0), np.zeros((0, self.skeleton.n_bones, 3), np.float32)
        first = ready[0][0]
        frames = np.concatenate([f for _, f in ready])
        return (first + np.arange(len(frames))) / FPS, self._directions(frames, self._stream_posture)

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio pushed since the stream started ("now" on the stream clock)."""
        return self._n_samples / SAMPLE_RATE

    @property
    def next_window_s(self) -> float:
        """Stream time (s) up to which audio must be pushed before pull_frames runs the next window."""
        return self._samples_for_next_window() / SAMPLE_RATE

    def _samples_for_next_window(self) -> int:
        """Samples the stream must have before the next window (frames up to self._next_end) can run."""
        return frame_to_sample(self._next_end - WINDOW_FRAMES) + WINDOW_SAMPLES

    def _stream_window(self, idle=None) -> None:
        """Run the next window, frames [end - 34, end) with end = self._next_end; emit its frames up to
        end - lookahead; move self._next_end on by a hop. An idle window (pull_frames) emits the rest pose."""
        c, n_pre = self.config, self.model_config.n_pre_poses
        end = self._next_end
        start, first = end - WINDOW_FRAMES, self._next_frame
        n_emit = max(0, end - c.lookahead_frames - first)  # 0 while the stream is younger than the lookahead
        if idle is not None and idle(first / FPS, end / FPS):  # the frames it emits or hands on to the next
            new = np.repeat(self.rest[None], end - first, axis=0)
        else:
            frames = self._run_window(self._stream_spectrogram(start), self._words, start,
                                      self._history(start, start + n_pre), self._stream_noise)
            # Bend the prediction through the last emitted frame (the bend fades out over `blend` frames)...
            new = frames[first - start:]
            blend = max(c.lookahead_frames, n_pre)
            bend = np.clip(1 - np.arange(1, len(new) + 1) / (blend + 1), 0, None)[:, None]
            new = new + bend * (self._history(first - 1, first)[0] - frames[first - 1 - start])
            # ... and cross-fade it with what the previous window predicted for the frames not emitted yet.
            n = len(self._pending)
            w = (np.arange(1, n + 1) / (n + 1))[:, None]
            new[:n] = (1 - w) * self._pending + w * new[:n]
        if n_emit:
            self._ready.append((first, new[:n_emit]))
        self._emitted = np.concatenate((self._emitted, new[:n_emit]))[-WINDOW_FRAMES:]
        self._next_frame += n_emit
        self._pending = new[n_emit:]
        self._next_end = end + c.hop_frames
        # Forget audio and words the next window will not need.
        next_start = self._next_end - WINDOW_FRAMES
        keep_from = frame_to_sample(next_start)
        if keep_from > self._audio_start:
            self._audio = self._audio[keep_from - self._audio_start:]
            self._audio_start = keep_from
        self._words = [word for word in self._words if word[2] >= next_start / FPS]

    def _stream_spectrogram(self, start: int) -> np.ndarray:
        """Log-mel of the window's audio, in dB below the loudest level heard on this stream so far.

        A whole utterance is referenced to its own loudest bin; a stream has no end to look at, so the reference
        is the running maximum (starting at the silence threshold): quiet noise after speech stays quiet instead
        of being normalised up to speech level.
        """
        spec = log_mel(_audio_slice(self._audio, self._audio_start, start), ref=1.0)
        self._ref_db = max(self._ref_db, float(spec.max()))
        return window_spectrogram(np.maximum(spec - self._ref_db, -TOP_DB), 0)

    def _history(self, begin: int, stop: int) -> np.ndarray:
        """Emitted frames [begin, stop) (normalised); frames before the stream start are the rest pose."""
        rows = []
        base = self._next_frame - len(self._emitted)
        for i in range(begin, stop):
            if i < 0:
                rows.append(self.rest)
            elif i < base:
                raise RuntimeError(f"frame {i} is no longer kept (kept from {base})")  # excluded by validate()
            else:
                rows.append(self._emitted[i - base])
        return np.stack(rows)

    # --- shared --------------------------------------------------------------------------------------------------

    def _run_window(self, spec, words, start: int, seed, noise) -> np.ndarray:
        """One window of frames [start, start + 34): spec (128, 70) dB, words, seed (4, D) -> (34, D)."""
        word_ids = self._word_ids(words, start)
        began = time.perf_counter()
        out = self.backend.run(spec[None], word_ids[None], seed[None].astype(np.float32),
                               np.array([self.config.speaker], np.int64), noise[None])
        self.last_compute_s = time.perf_counter() - began
        self.windows_run += 1
        return out[0]

    def _word_ids(self, words, start: int) -> np.ndarray:
        if not words or self.vocab is None:
            return np.zeros(WINDOW_FRAMES, np.int64)
        return np.asarray(frame_word_indices(words, self.vocab, start / FPS, WINDOW_FRAMES), np.int64)

    def _style(self) -> tuple[np.ndarray, np.ndarray]:
        """The style of one utterance / stream: style noise (n_levels, z_dim) and a posture offset (n_bones, 3).
        With style_per_utterance, the next draws of the style generator: noise, and a real training speaker's
        average posture where the checkpoint records them. Else zero noise (z = mu) unless a seed is set, and the
        model's own posture (offset 0)."""
        shape = (self.model_config.n_levels, self.model_config.z_dim)
        posture = np.zeros((self.skeleton.n_bones, 3), np.float32)
        if self.config.style_per_utterance:
            with self._style_lock:
                noise = self._style_rng.standard_normal(shape).astype(np.float32)
                if self.postures is not None:
                    posture = self.postures[self._style_rng.integers(len(self.postures))]
            return noise, posture
        if self.config.seed is None:
            return np.zeros(shape, np.float32), posture
        return np.random.default_rng(self.config.seed).standard_normal(shape).astype(np.float32), posture

    def new_style(self) -> None:
        """With style_per_utterance, the stream's next windows take a new style (the node calls it when live speech
        starts after a rest); without, nothing changes."""
        if self.config.style_per_utterance:
            style = self._style()
            with self._lock:
                self._stream_noise, self._stream_posture = style

    @property
    def stream_style(self) -> tuple[np.ndarray, np.ndarray]:
        """The style the stream is gestured in now, as _style() drew it: (noise, posture offset), copies."""
        with self._lock:
            return self._stream_noise.copy(), self._stream_posture.copy()

    def _check_words(self, words) -> list[tuple[str, float, float]]:
        if words is None:
            return []
        return validate_words(words, "words")

    def _directions(self, normalised: np.ndarray, posture: np.ndarray) -> np.ndarray:
        """Model space (T, pose_dim) -> unit directions (T, n_bones, 3) moved by the posture offset(s)."""
        directions = denormalize_directions(normalised, self.skeleton).astype(np.float32)
        return offset_posture(directions, posture, self.skeleton) if np.any(posture) else directions


def _default_speaker(meta: dict) -> int:
    """The style the checkpoint recommends (meta["default_speaker"]["name"] among meta["speakers"]), else 0."""
    name = (meta.get("default_speaker") or {}).get("name")
    speakers = meta.get("speakers") or []
    return speakers.index(name) if name in speakers else 0


def _posture_offsets(meta: dict, skeleton: Skeleton) -> np.ndarray | None:
    """The real training speakers' posture offsets a checkpoint records (training.windows.speaker_posture_offsets),
    as (n, n_bones, 3); None when it records none (older and official checkpoints)."""
    offsets = meta.get("posture_offsets")
    if not offsets:
        return None
    try:
        table = np.asarray(list(offsets.values()), dtype=np.float32)
    except (AttributeError, TypeError, ValueError):
        table = None
    if table is None or table.shape[1:] != (skeleton.pose_dim,) or not np.isfinite(table).all():
        raise ValueError(f"the checkpoint's meta posture_offsets must map speaker names to {skeleton.pose_dim} finite "
                         "numbers each (training.windows.speaker_posture_offsets)")
    return table.reshape(len(table), skeleton.n_bones, 3)


def _audio_slice(audio: np.ndarray, audio_start: int, start_frame: int) -> np.ndarray:
    """The window's 36,267 samples from frame `start_frame`; zeros (silence) outside the buffer."""
    begin = frame_to_sample(start_frame) - audio_start
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    lo, hi = max(begin, 0), min(begin + WINDOW_SAMPLES, len(audio))
    if hi > lo:
        out[lo - begin:hi - begin] = audio[lo:hi]
    return out


@functools.cache
def _silence_db() -> float:
    """The log-mel level (dB re power 1) of a tone at the silence threshold: a stream's reference never goes below."""
    tone = SILENCE_PEAK * np.sin(2 * np.pi * 440 * np.arange(WINDOW_SAMPLES) / SAMPLE_RATE).astype(np.float32)
    return float(log_mel(tone, ref=1.0).max())


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return (x * x * (3 - 2 * x)).astype(np.float32)
