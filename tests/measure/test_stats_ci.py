"""Percentile confidence intervals: order-statistic ranks checked by hand and against an
independent exact binomial sum, and their coverage on a distribution whose quantiles are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebench.measure.stats import min_samples_for_ci, order_statistic_ci, summarize_latency


def _exact_ranks(n: int, q: float, level: float = 0.95) -> tuple[int | None, int | None]:
    """The same rule written with math.comb, for small n: an independent reference."""
    cdf = []
    acc = 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) * q**k * (1 - q) ** (n - k)
        cdf.append(acc)
    tail = (1 - level) / 2
    lows = [r for r in range(1, n + 1) if cdf[r - 1] <= tail]
    ups = [u for u in range(1, n + 1) if 1 - cdf[u - 1] <= tail]
    return (max(lows) if lows else None, min(ups) if ups else None)


def test_median_ranks_by_hand() -> None:
    # n = 10: P(B <= 1) = 11/1024 = 0.0107 <= 0.025 < P(B <= 2) = 56/1024, so (x_(2), x_(9))
    assert order_statistic_ci(10, 0.5) == (2, 9)
    # n = 20: P(B <= 5) = 0.0207, P(B <= 6) = 0.0577: the textbook (x_(6), x_(15))
    assert order_statistic_ci(20, 0.5) == (6, 15)
    lat = summarize_latency([float(v) for v in range(10, 0, -1)])  # unsorted on purpose
    assert lat["p50_ci"] == [2.0, 9.0]


@pytest.mark.parametrize("n", [5, 30, 77, 200])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_ranks_match_an_exact_binomial_sum(n: int, q: float) -> None:
    assert order_statistic_ci(n, q) == _exact_ranks(n, q)


def test_p99_needs_368_samples_for_an_upper_bound() -> None:
    # 0.99 ** 367 = 0.02501 > 0.025 >= 0.99 ** 368
    assert min_samples_for_ci(0.99) == 368
    assert order_statistic_ci(367, 0.99)[1] is None
    assert order_statistic_ci(368, 0.99)[1] == 368
    rng = np.random.default_rng(0)
    few = summarize_latency(rng.exponential(1.0, 367))
    assert few["p99_insufficient"] is True and few["p99_ci"][1] is None and few["p99_ci"][0] is not None
    enough = summarize_latency(rng.exponential(1.0, 2000))
    assert enough["p99_insufficient"] is False
    lo, hi = enough["p99_ci"]
    assert lo <= enough["p99"] <= hi
    for p in (50, 90):
        lo, hi = enough[f"p{p}_ci"]
        assert lo <= enough[f"p{p}"] <= hi


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        order_statistic_ci(0, 0.5)
    with pytest.raises(ValueError):
        order_statistic_ci(10, 1.0)


def test_intervals_cover_known_quantiles() -> None:
    """200 simulated runs of 1000 exponential samples: each interval covers the true quantile
    (-ln(1 - q)) in at least 90 % of runs (nominal 95 %)."""
    rng = np.random.default_rng(12345)
    hits = {50: 0, 90: 0, 99: 0}
    runs = 200
    for _ in range(runs):
        lat = summarize_latency(rng.exponential(1.0, 1000))
        for p in hits:
            lo, hi = lat[f"p{p}_ci"]
            truth = -math.log(1 - p / 100)
            hits[p] += lo <= truth <= hi
    for p, h in hits.items():
        assert h / runs >= 0.90, (p, h)
