"""Speed-up of a candidate over base from interleaved timing rounds, with its interval, and the
drift check of a timing pass.

Candidates timed in rotating rounds (``profile.interleave``) see the same device state round by
round, so the ratio of base's median to the candidate's median *within one round* cancels load,
clock and thermal drift that a ratio of two separately timed medians absorbs in full. The
speed-up is the geometric mean over rounds of those paired ratios, and its 95 % interval is
Student's t on the per-round log ratios (``R - 1`` degrees of freedom): the paired-design interval,
which widens when the rounds disagree. One round gives a ratio without an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METHOD = "geometric mean over rounds of base p50 / candidate p50 in the same round; 95 % t interval on the log ratios"
DRIFT_LIMIT = 0.20  # base's last rounds vs its first beyond +-20 %: the device changed state

# Student's t, 0.975 quantile, by degrees of freedom (beyond the table the normal's 1.96 is close)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The two-sided 95 % critical value of Student's t with *df* degrees of freedom."""
    if df < 1:
        raise ValueError(f"t975: expected df >= 1, found {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def paired_speedup(base_p50: Sequence[float], cand_p50: Sequence[float]) -> dict:
    """Speed-up (> 1: the candidate is faster) from each round's median latency of base and of
    the candidate, rounds paired by index: ``ratio``, ``ci95`` (``[None, None]`` from one round),
    ``rounds``, ``round_ratios`` and the ``method``."""
    if len(base_p50) != len(cand_p50) or not base_p50:
        raise ValueError(
            f"paired_speedup: expected equal, non-zero round counts, found {len(base_p50)} and {len(cand_p50)}"
        )
    if any(v <= 0 for v in (*base_p50, *cand_p50)):
        raise ValueError("paired_speedup: expected positive latencies")
    ratios = [b / c for b, c in zip(base_p50, cand_p50)]
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    mean = sum(logs) / n
    ci: list[float | None] = [None, None]
    if n > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / (n - 1))
        half = t975(n - 1) * sd / math.sqrt(n)
        ci = [math.exp(mean - half), math.exp(mean + half)]
    return {"ratio": math.exp(mean), "ci95": ci, "rounds": n, "round_ratios": ratios, "method": METHOD}


def drift(round_p50: Sequence[float], loadavg: Sequence[float | None] = ()) -> dict:
    """Whether the device changed state during a pass, from base's per-round medians: its last
    rounds (the last third, at least one) against its first. ``change`` is the relative
    difference; ``drifted`` when it exceeds :data:`DRIFT_LIMIT`. *loadavg* (per round, where the
    agent could read it) is reported beside it."""
    n = len(round_p50)
    k = max(1, n // 3)
    first = sorted(round_p50[:k])[(k - 1) // 2]
    last = sorted(round_p50[-k:])[(k - 1) // 2]
    change = last / first - 1.0 if first > 0 else 0.0
    loads = [v for v in loadavg if v is not None]
    return {
        "first_p50_ms": first,
        "last_p50_ms": last,
        "change": change,
        "drifted": n > 1 and abs(change) > DRIFT_LIMIT,
        "limit": DRIFT_LIMIT,
        "loadavg_first": loads[0] if loads else None,
        "loadavg_last": loads[-1] if loads else None,
    }


def with_speedups(runs: list[dict], base_runs: list[dict] | None) -> list[dict]:
    """*runs* (a timing pass's runs of one model) each with ``speedup`` over base's run of the
    same batch and mode in the same pass; None where base has no such run (or *base_runs* is
    None: the model is base, or there is none)."""
    out = []
    for run in runs:
        ref = next(
            (r for r in base_runs or () if r.get("batch") == run.get("batch") and r.get("mode") == run.get("mode")),
            None,
        )
        ok = ref is not None and "round_p50_ms" in ref and "round_p50_ms" in run
        out.append(dict(run, speedup=paired_speedup(ref["round_p50_ms"], run["round_p50_ms"]) if ok else None))  # type: ignore[index]
    return out


def pass_drift(base_runs: list[dict], rounds: list[dict]) -> dict | None:
    """The drift check of a pass on base's first timed run (smallest batch, end-to-end first),
    with each round's load average beside it."""
    runs = sorted((r for r in base_runs if "round_p50_ms" in r), key=lambda r: (r["batch"], r["mode"] != "end_to_end"))
    if not runs:
        return None
    loads = [r.get("loadavg_1m") for r in rounds]
    return dict(drift(runs[0]["round_p50_ms"], loads), batch=runs[0]["batch"], mode=runs[0]["mode"])


__all__ = ["DRIFT_LIMIT", "METHOD", "drift", "paired_speedup", "pass_drift", "t975", "with_speedups"]
