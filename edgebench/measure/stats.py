"""Latency statistics: one definition of every number edgebench reports about time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNSTABLE_CV = 0.10  # like trtexec's warning: a coefficient of variation above 10 % is unstable
PERCENTILES = (50, 90, 95, 99)


def summarize_latency(samples_ms: Sequence[float], batch: int = 1) -> dict:
    """Summarize per-iteration latencies (milliseconds) of batches of size *batch*.

    Returns min, mean, std, p50, p90, p95, p99, max (ms), the coefficient of variation,
    an ``unstable`` flag (CV above 10 %), the sample count and throughput in items/s
    (batch / mean latency).
    """
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    out = {
        "min": float(arr.min()),
        "mean": mean,
        "std": std,
    }
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(arr, p))
    out["max"] = float(arr.max())
    out["cv"] = cv
    out["unstable"] = bool(cv > UNSTABLE_CV)
    out["samples"] = int(arr.size)
    out["throughput_ips"] = float(batch * 1000.0 / mean) if mean > 0 else None
    return out
