"""The one summary of measured durations that every benchmark prints and writes, so their JSON files read alike."""
from __future__ import annotations

import numpy as np


def stats_ms(seconds) -> dict:
    """Durations in seconds -> {n, min, mean, median, p95, max} in milliseconds (3 decimals); {"n": 0} if none."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if not len(ms):
        return {"n": 0}
    values = {"min": ms.min(), "mean": ms.mean(), "median": np.median(ms), "p95": np.percentile(ms, 95),
              "max": ms.max()}
    return {"n": int(len(ms)), **{k: round(float(v), 3) for k, v in values.items()}}
