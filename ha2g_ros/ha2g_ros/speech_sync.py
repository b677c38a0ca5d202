"""How far apart voice and gesture come out: cross-correlation of what is heard with how the arms move, both on the
ROS clock as they are played. Pure numpy; used by the demo's summary, benchmarks/speech_sync.py and the tests.

`lag_s(reference, signal)` is the time by which `signal` comes after `reference` (negative: before), found as the
peak of their normalised cross-correlation within +-max_lag_s, refined between samples (parabola through the peak).
"""
from __future__ import annotations

import numpy as np

from ha2g_ros.voice_activity import frame_levels_db

RATE_HZ = 100.0  # both signals are compared on this grid: 10 ms steps, well under the 67 ms of one gesture frame
FLOOR_DB = -80.0  # silence: the level below which loudness differences mean nothing


def loudness(samples: np.ndarray, sample_rate: int, start_s: float, rate_hz: float = RATE_HZ):
    """(times, RMS level in dBFS, floored at FLOOR_DB) of mono `samples` heard from ROS time start_s on, one value
    per 1/rate_hz. Decibels, as hearing goes: on a linear scale a few loud syllables decide the correlation."""
    level = np.maximum(frame_levels_db(samples, int(round(sample_rate / rate_hz))), FLOOR_DB)
    return start_s + (np.arange(len(level)) + 0.5) / rate_hz, level


def speed(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Joint-space speed (norm over joints, rad/s) of positions (n, J) sampled at `times`, on the same grid."""
    velocity = np.gradient(np.asarray(positions, np.float64), np.asarray(times, np.float64), axis=0)
    return np.linalg.norm(velocity, axis=1)


def lag_s(reference_t: np.ndarray, reference: np.ndarray, signal_t: np.ndarray, signal: np.ndarray,
          max_lag_s: float = 1.0, rate_hz: float = RATE_HZ) -> tuple[float, float]:
    """(lag, peak correlation) of `signal` after `reference`; both are resampled onto a common rate_hz grid over the
    time they share."""
    begin, end = max(reference_t[0], signal_t[0]), min(reference_t[-1], signal_t[-1])
    if end - begin < 4 * max_lag_s:
        raise ValueError(f"the signals share {max(0.0, end - begin):.2f} s, too little for lags of +-{max_lag_s} s")
    grid = np.arange(begin, end, 1.0 / rate_hz)
    a = _standardised(np.interp(grid, reference_t, reference))
    b = _standardised(np.interp(grid, signal_t, signal))
    k = int(round(max_lag_s * rate_hz))
    lags = np.arange(-k, k + 1)
    corr = np.array([np.mean(a[max(0, -lag):len(a) - max(0, lag)] * b[max(0, lag):len(b) - max(0, -lag)])
                     for lag in lags])
    peak = int(np.argmax(corr))
    shift = 0.0
    if 0 < peak < len(lags) - 1:
        left, mid, right = corr[peak - 1:peak + 2]
        curvature = left - 2 * mid + right
        shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return float((lags[peak] + shift) / rate_hz), float(corr[peak])


def _standardised(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)
