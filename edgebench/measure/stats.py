"""Latency statistics: one definition of every number edgebench reports about time.

Percentiles carry a distribution-free 95 % confidence interval from order statistics: with
``n`` independent samples, the number of samples below the true q-quantile is Binomial(n, q),
so sorted samples ``x_(l) .. x_(u)`` bracket it with probability
``P(l <= B <= u - 1)``. The same bounds drive MLPerf's early-stopping rule. When ``n`` is too
small for a bound to exist (e.g. fewer than 368 samples for the upper bound of p99), that end is
``None`` and ``p99_insufficient`` says so: a p99 from too few samples is not a p99.
The bounds assume independent samples; consecutive iterations share clocks, caches and
temperature, so on a drifting device the real uncertainty is larger (``unstable`` flags that).
Runs in the agent: standard library and numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

UNSTABLE_CV = 0.10  # like trtexec's warning: a coefficient of variation above 10 % is unstable
PERCENTILES = (50, 90, 95, 99)
CI_PERCENTILES = (50, 90, 99)
CI_LEVEL = 0.95


def _binom_cdf(n: int, q: float) -> np.ndarray:
    """``cdf[k] = P(B <= k)`` for B ~ Binomial(n, q), k = 0..n, computed in log space."""
    k = np.arange(n + 1, dtype=np.float64)
    # log C(n, k) by the recurrence C(n, k) = C(n, k-1) * (n - k + 1) / k
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(n - k[1:] + 1) - np.log(k[1:]))))
    log_pmf = log_comb + k * math.log(q) + (n - k) * math.log1p(-q)
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    return np.cumsum(pmf)


def order_statistic_ci(n: int, q: float, level: float = CI_LEVEL) -> tuple[int | None, int | None]:
    """1-based ranks ``(l, u)`` of the sorted samples bracketing the q-quantile with probability
    >= *level* (equal tails of at most ``(1 - level) / 2``). ``None`` for an end that *n*
    samples cannot bound: no rank l has ``P(B < l) <= alpha/2`` (lower) or no rank u has
    ``P(B >= u) <= alpha/2`` (upper)."""
    if n < 1:
        raise ValueError("order_statistic_ci: expected n >= 1")
    if not 0.0 < q < 1.0:
        raise ValueError(f"order_statistic_ci: expected 0 < q < 1, found {q}")
    tail = (1.0 - level) / 2.0
    cdf = _binom_cdf(n, q)
    eps = 1e-12
    # lower: the largest l >= 1 with P(B <= l - 1) = cdf[l - 1] <= tail
    ok_low = np.nonzero(cdf[:n] <= tail + eps)[0]
    lower = int(ok_low[-1]) + 1 if ok_low.size else None
    # upper: the smallest u <= n with P(B >= u) = 1 - cdf[u - 1] <= tail
    ok_up = np.nonzero(1.0 - cdf[:n] <= tail + eps)[0]
    upper = int(ok_up[0]) + 1 if ok_up.size else None
    return lower, upper


def percentile_ci(sorted_ms: np.ndarray, p: float, level: float = CI_LEVEL) -> list[float | None]:
    """``[low, high]`` (ms) bracketing the p-th percentile of the distribution *sorted_ms* came
    from; an end that cannot be bounded with this many samples is ``None``."""
    lower, upper = order_statistic_ci(int(sorted_ms.size), p / 100.0, level)
    return [
        float(sorted_ms[lower - 1]) if lower is not None else None,
        float(sorted_ms[upper - 1]) if upper is not None else None,
    ]


def min_samples_for_ci(q: float, level: float = CI_LEVEL) -> int:
    """The fewest samples for which the q-quantile's upper bound exists: ``q**n <= (1-level)/2``."""
    return int(math.ceil(math.log((1.0 - level) / 2.0) / math.log(q)))


def summarize_latency(samples_ms: Sequence[float], batch: int = 1) -> dict:
    """Summarize per-iteration latencies (milliseconds) of batches of size *batch*.

    Returns min, mean, std, p50, p90, p95, p99, max (ms), 95 % intervals ``p50_ci``,
    ``p90_ci``, ``p99_ci`` (``[low, high]``, an end ``None`` when too few samples),
    ``p99_insufficient`` (too few samples for p99's upper bound), the coefficient of variation,
    an ``unstable`` flag (CV above 10 %), the sample count and throughput in items/s
    (batch / mean latency).
    """
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    out: dict = {
        "min": float(arr.min()),
        "mean": mean,
        "std": std,
    }
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(arr, p))
    ordered = np.sort(arr)
    for p in CI_PERCENTILES:
        out[f"p{p}_ci"] = percentile_ci(ordered, p)
    out["p99_insufficient"] = out["p99_ci"][1] is None
    out["max"] = float(arr.max())
    out["cv"] = cv
    out["unstable"] = bool(cv > UNSTABLE_CV)
    out["samples"] = int(arr.size)
    out["throughput_ips"] = float(batch * 1000.0 / mean) if mean > 0 else None
    return out
