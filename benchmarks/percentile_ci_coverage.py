"""Coverage of edgebench's 95 % percentile intervals on distributions with known quantiles.

Each simulated run draws N latency samples, summarizes them with
:func:`edgebench.measure.stats.summarize_latency` and checks whether ``p99_ci`` (and p50/p90)
contains the distribution's true quantile. Goal: the p99 interval covers the truth in at
least 93 of 100 runs (nominal 95 %).

    python benchmarks/percentile_ci_coverage.py [--runs 100] [--samples 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
from statistics import NormalDist

import numpy as np

from edgebench.measure.stats import summarize_latency


def distributions() -> dict:
    """name -> (sampler(rng, n), true quantile(q)). Latency-like shapes: skewed, heavy-tailed, bimodal-free."""
    z = NormalDist().inv_cdf
    return {
        "lognormal(mu=0, sigma=0.5) ms": (
            lambda rng, n: rng.lognormal(0.0, 0.5, n),
            lambda q: math.exp(0.5 * z(q)),
        ),
        "1 ms + exponential(mean 0.2 ms)": (
            lambda rng, n: 1.0 + rng.exponential(0.2, n),
            lambda q: 1.0 - 0.2 * math.log(1 - q),
        ),
        "uniform(2, 3) ms": (lambda rng, n: rng.uniform(2.0, 3.0, n), lambda q: 2.0 + q),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| distribution | samples/run | runs | p50 covered | p90 covered | p99 covered | p99 goal (>= 93) |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for name, (draw, quantile) in distributions().items():
        hits = {50: 0, 90: 0, 99: 0}
        for _ in range(args.runs):
            lat = summarize_latency(draw(rng, args.samples))
            for p in hits:
                lo, hi = lat[f"p{p}_ci"]
                hits[p] += lo is not None and hi is not None and lo <= quantile(p / 100) <= hi
        met = hits[99] >= math.ceil(0.93 * args.runs)
        ok &= met
        print(
            f"| {name} | {args.samples} | {args.runs} | {hits[50]} | {hits[90]} | {hits[99]} | {'met' if met else 'NOT met'} |"
        )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
