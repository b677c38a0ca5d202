"""The audio front-end: validation, resampling, the log-mel spectrogram and its per-window slices.

HA2G hears 16 kHz mono speech as a log-mel spectrogram: librosa's melspectrogram (n_fft 1024, hop 512, power 2,
128 mels, centred frames, periodic Hann window, zero padding), power_to_db(ref=max). It is computed here with numpy
in librosa's precision (tests/test_audio_frontend.py holds it to librosa 0.11, whose features trained the shipped
model): librosa and its numba JIT cost a robot 135 MB and 1-2 s at start-up, and librosa rebuilt the mel filters on
every call. One 34-frame pose window (34/15 s = 36,267 samples) sees 70
spectrogram columns. The official synthesis script sliced those columns with the wrong index (it read from the
start of the clip for every window); `window_spectrogram` takes the columns that belong to the window's time span.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ha2g_model.skeleton import FPS
from ha2g_model.untrusted import regular_file

SAMPLE_RATE = 16000
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 128
WINDOW_FRAMES = 34
SPEC_COLS = 70  # round((34 / 15 * 16000 - 1024) / 512 + 1)
WINDOW_SAMPLES = round(WINDOW_FRAMES / FPS * SAMPLE_RATE)  # 36,267
TOP_DB = 80.0  # power_to_db floors everything this far below the reference
AMIN = 1e-10  # power_to_db's floor for the power before the log
SILENCE_PEAK = 1e-4  # -80 dBFS: a peak below this is treated as "no signal"


def validate_audio(audio, sr: int = SAMPLE_RATE, allow_silence: bool = False) -> np.ndarray:
    """Check that `audio` is usable speech for the model and return it as a float32 1-D array.

    Raises ValueError naming the problem: wrong sample rate, not mono/1-D, not floating point, empty, NaN/Inf,
    outside [-1, 1] (integer PCM not scaled), or silence only (unless `allow_silence`).
    """
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer (Hz), got {sr!r}")
    if sr != SAMPLE_RATE:
        raise ValueError(f"audio must be sampled at {SAMPLE_RATE} Hz, got {sr} Hz: "
                         f"convert it first with ha2g_model.audio.resample(audio, {sr})")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        hint = " (multi-channel: mix down, e.g. audio.mean(axis=1))" if audio.ndim == 2 else ""
        raise ValueError(f"audio must be mono, a 1-D array of samples; got shape {audio.shape}{hint}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be floating point in [-1, 1], got dtype {audio.dtype} "
                         "(integer PCM: divide int16 by 32768)")
    if audio.size == 0:
        raise ValueError("audio is empty")
    bad = ~np.isfinite(audio)
    if bad.any():
        raise ValueError(f"audio contains {int(bad.sum())} NaN/Inf samples (first at index {int(np.argmax(bad))})")
    peak = float(np.abs(audio).max())
    if peak > 1.0 + 1e-3:
        raise ValueError(f"audio samples must be in [-1, 1], peak is {peak:.3g} (integer PCM not scaled?)")
    if peak < SILENCE_PEAK and not allow_silence:
        raise ValueError(f"audio is silence only (peak {peak:.2g} < {SILENCE_PEAK}): nothing to gesture to")
    return audio.astype(np.float32, copy=False)


def read_audio_file(path) -> tuple[np.ndarray, int]:
    """Any file soundfile reads (wav, flac, ogg, mp3 ...) -> (samples (n, channels) float32, sample rate).

    FileNotFoundError or ValueError saying why when the file is missing, unreadable or empty.
    """
    import soundfile

    path = regular_file(path, "audio file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"cannot read audio file {path}: {e} (supported: wav, flac, ogg, mp3 ...)") from None
    if len(audio) == 0:
        raise ValueError(f"audio file {path} has no samples")
    return audio, int(rate)


def resample(audio, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited polyphase resampling (scipy.signal.resample_poly) of mono float audio to `target_sr`."""
    from scipy.signal import resample_poly  # 80 MB: imported only when some audio is not at 16 kHz already

    if not isinstance(orig_sr, (int, np.integer)) or orig_sr <= 0:
        raise ValueError(f"orig_sr must be a positive integer (Hz), got {orig_sr!r}")
    audio = np.asarray(audio)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"resample expects mono float audio (1-D), got shape {audio.shape} dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN/Inf samples")
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    g = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(audio.astype(np.float64), target_sr // g, orig_sr // g).astype(np.float32)


@functools.cache
def hann_window() -> np.ndarray:
    """The periodic Hann window (float64) of scipy.signal.get_window("hann", N_FFT), as librosa's STFT uses it."""
    window = 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, N_FFT + 1)[:-1])
    window.flags.writeable = False  # shared by every call
    return window


@functools.cache
def mel_basis() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128) as (128, 513) float32, built once per process: Slaney's
    mel scale (200/3 Hz per mel up to 1 kHz, logarithmic above), triangles scaled to equal area."""
    hz_per_mel, log_start, log_step = 200.0 / 3, 1000.0 / (200.0 / 3), np.log(6.4) / 27.0
    mels = np.linspace(0.0, log_start + np.log(SAMPLE_RATE / 2 / 1000.0) / log_step, N_MELS + 2)
    edges = hz_per_mel * mels
    log_part = mels >= log_start
    edges[log_part] = 1000.0 * np.exp(log_step * (mels[log_part] - log_start))
    ramps = np.subtract.outer(edges, np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE))
    widths = np.diff(edges)[:, None]
    weights = np.maximum(0, np.minimum(-ramps[:-2] / widths[:-1], ramps[2:] / widths[1:])).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # in float64, stored as float32, as librosa does
    weights.flags.writeable = False  # shared by every call
    return weights


@functools.cache
def mel_bands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mel_basis() as its nonzero weights, filter after filter: (FFT bins, weights, index of each filter's first).
    Every filter spans at least two bins here, so none is empty (np.add.reduceat would misread an empty one)."""
    filters, bins = np.nonzero(mel_basis())
    return bins, mel_basis()[filters, bins], np.searchsorted(filters, np.arange(N_MELS))


def mel_power(audio: np.ndarray) -> np.ndarray:
    """(128, 1 + len // 512) float32 mel power of float32 audio, librosa's arithmetic: centred frames (zero padding
    of N_FFT // 2 each side), Hann-windowed float64 FFT rounded to complex64, |.|^2 in float32, mel filters."""
    padded = np.pad(audio, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    power = np.abs(np.fft.rfft(frames * hann_window(), axis=-1).astype(np.complex64)) ** 2
    # Only 1,009 of the basis' 65,664 weights are nonzero: summing those instead of a BLAS matrix product (whose
    # threads took 7 ms per window on a busy 2-core CPU, against 0.2 ms here) changes the float32 sums by < 1e-6.
    bins, weights, starts = mel_bands()
    return np.add.reduceat(power.T[bins] * weights[:, None], starts)


def log_mel(audio, ref: float | None = None) -> np.ndarray:
    """16 kHz mono float audio -> (128, n_cols) float32 log-mel power in dB, n_cols = 1 + len(audio) // 512.

    ref None: 0 dB is the loudest bin of this audio (the official preprocessing, done per clip). For a stream,
    pass a fixed `ref` power so that chunks are comparable. Values are rounded through float16 because the
    official training data stored them so; the model never saw finer steps.
    """
    audio = validate_audio(audio, SAMPLE_RATE, allow_silence=ref is not None)
    power = mel_power(audio)
    db = 10.0 * np.log10(np.maximum(AMIN, power))  # librosa.power_to_db(power, ref, top_db=TOP_DB)
    db -= 10.0 * np.log10(np.maximum(AMIN, power.max() if ref is None else abs(ref)))
    db = np.maximum(db, db.max() - TOP_DB)
    return db.astype(np.float16).astype(np.float32)


def frame_to_sample(frame: int) -> int:
    """Sample index where the audio of pose frame `frame` starts (negative before the start)."""
    return round(frame * SAMPLE_RATE / FPS)


def frame_to_column(frame: float) -> int:
    """Spectrogram column whose (centred) analysis frame sits at the time of pose frame `frame` (15 fps)."""
    return int(math.floor(frame / FPS * SAMPLE_RATE / HOP_LENGTH + 0.5))  # half up, not Python's half-to-even


def window_spectrogram(spec: np.ndarray, start_frame: int, pad_db: float | None = None) -> np.ndarray:
    """The (n_mels, 70) columns of the 34-frame window that starts at pose frame `start_frame` of a clip whose
    spectrogram (from `log_mel`) is `spec`. Columns before the start or past the end of the clip are filled with
    `pad_db` (default: the clip's minimum, i.e. its silence floor)."""
    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[0] != N_MELS:
        raise ValueError(f"spec must be ({N_MELS}, n_cols), got shape {spec.shape}")
    if spec.shape[1] == 0:
        raise ValueError("spec has no columns")
    first = frame_to_column(start_frame)
    pad = float(spec.min()) if pad_db is None else float(pad_db)
    out = np.full((N_MELS, SPEC_COLS), pad, dtype=np.float32)
    lo, hi = max(first, 0), min(first + SPEC_COLS, spec.shape[1])
    if hi > lo:
        out[:, lo - first:hi - first] = spec[:, lo:hi]
    return out
