"""Diff two runs: what got slower, bigger or less accurate, and which verdicts changed.

Per candidate x device present in both runs, each metric is compared with a direction (lower
or higher is better). A latency percentile that carries a 95 % confidence interval in both runs
(``p50_ci`` ... from :mod:`edgebench.measure.stats`) regresses only when the intervals are
disjoint in the worse direction (B's lower bound above A's upper bound); a worse value with
overlapping intervals, or a bound too few samples could give, is "within noise". Results
without intervals (older runs, imported trtexec numbers) fall back to a relative tolerance, and
the row says which rule decided (``judged_by``). Other metrics use a tolerance. A metric
measured in A but not in B counts as a regression (a measurement that silently disappears could
hide one). Candidates or devices
present in only one run are listed, not counted. Verdicts are each run's own, as its
results.json holds them (judged with its own budgets); a verdict that got worse (READY >
UNMEASURED > NOT READY) is a regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgebench.errors import EXIT_NOT_READY, EXIT_OK, EdgebenchError
from edgebench.report.gates import NOT_READY, READY, UNMEASURED, budgets_of, judged, peak_memory_mb
from edgebench.results import DeviceEntry, LatencyStats, Results

_RANK = {READY: 2, UNMEASURED: 1, NOT_READY: 0}


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get before it counts as a regression.

    Latency, throughput and memory are relative (0.10 = 10 % worse), accuracies absolute
    fractions (0.01 = one percentage point). ``latency_rel`` applies only to latencies that
    carry no confidence interval; intervals decide the others.
    """

    latency_rel: float = 0.10
    throughput_rel: float = 0.10
    memory_rel: float = 0.10
    accuracy_abs: float = 0.01

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise EdgebenchError(f"tolerance {name}: expected a number >= 0, found {value!r}")


@dataclass(frozen=True)
class Metric:
    name: str
    lower_is_better: bool
    kind: str  # latency | throughput | memory | accuracy
    get: Callable[[DeviceEntry], Any]
    stats: Callable[[DeviceEntry], LatencyStats | None] | None = None  # latency: the statistics it is read from


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _end_to_end(e: DeviceEntry) -> LatencyStats | None:
    return e.latency_ms


def _compute(e: DeviceEntry) -> LatencyStats | None:
    return e.latency_compute_ms


def _p50(stats: Callable[[DeviceEntry], LatencyStats | None]) -> Callable[[DeviceEntry], Any]:
    return lambda e: None if (s := stats(e)) is None else s.p50


def _p99(stats: Callable[[DeviceEntry], LatencyStats | None]) -> Callable[[DeviceEntry], Any]:
    return lambda e: None if (s := stats(e)) is None else s.p99


BASE_METRICS: tuple[Metric, ...] = (
    Metric("latency_ms.p50", True, "latency", _p50(_end_to_end), _end_to_end),
    Metric("latency_ms.p99", True, "latency", _p99(_end_to_end), _end_to_end),
    Metric("latency_compute_ms.p50", True, "latency", _p50(_compute), _compute),
    Metric("latency_compute_ms.p99", True, "latency", _p99(_compute), _compute),
    Metric("throughput_ips", False, "throughput", lambda e: e.throughput_ips),
    Metric("peak_memory_mb", True, "memory", peak_memory_mb),
    Metric("clean_accuracy", False, "accuracy", lambda e: e.clean_accuracy),
)


def _robust_metrics(a: DeviceEntry, b: DeviceEntry) -> list[Metric]:
    ids: list[str] = []
    for entry in (a, b):
        for row in entry.robustness:
            if row.id and row.id not in ids:
                ids.append(row.id)

    def getter(attack_id: str) -> Callable[[DeviceEntry], Any]:
        def get(entry: DeviceEntry) -> Any:
            for row in entry.robustness:
                if row.id == attack_id:
                    return row.accuracy
            return None

        return get

    return [Metric(f"robust_accuracy[{i}]", False, "accuracy", getter(i)) for i in ids]


def regressed(metric: Metric, a: float, b: float, tol: Tolerance) -> bool:
    """True when *b* is worse than *a* by more than the tolerance for the metric's kind."""
    worse = (b - a) if metric.lower_is_better else (a - b)
    if worse <= 0:
        return False
    if metric.kind == "accuracy":
        return worse > tol.accuracy_abs + 1e-12
    rel = {"latency": tol.latency_rel, "throughput": tol.throughput_rel, "memory": tol.memory_rel}[metric.kind]
    return worse > rel * abs(a) + 1e-12


def _ci(entry: DeviceEntry, metric: Metric) -> list | None:
    """The ``[low, high]`` interval stored beside a latency percentile, if the run has one."""
    stats = None if metric.stats is None else metric.stats(entry)
    if stats is None:
        return None
    pct = metric.name.split(".", 1)[1]
    ci = {"p50": stats.p50_ci, "p90": stats.p90_ci, "p99": stats.p99_ci}.get(pct)
    return list(ci) if ci is not None and len(ci) == 2 else None


def judge_by_intervals(ci_a: list, ci_b: list, lower_is_better: bool = True) -> tuple[bool, str]:
    """``(regressed, note)`` from two ``[low, high]`` intervals (an end may be None: unbounded).

    A regression only when the intervals are disjoint in the worse direction; an improvement is
    noted when they are disjoint the other way; anything else is within noise.
    """
    a_lo, a_hi = (_num(v) for v in ci_a)
    b_lo, b_hi = (_num(v) for v in ci_b)
    if not lower_is_better:
        a_lo, a_hi, b_lo, b_hi = b_lo, b_hi, a_lo, a_hi
    if a_hi is not None and b_lo is not None and b_lo > a_hi:
        return True, "worse: intervals disjoint"
    if b_hi is not None and a_lo is not None and b_hi < a_lo:
        return False, "better: intervals disjoint"
    if None in (a_lo, a_hi, b_lo, b_hi):
        return False, "within noise (too few samples to bound the interval)"
    return False, "within noise"


def _cells(results: Results) -> dict[tuple[str, str], DeviceEntry]:
    out = {}
    for cand in results.candidates:
        for dev, entry in cand.devices.items():
            out[(cand.name, dev)] = entry
    return out


def _unstable_in(metric: Metric, a: DeviceEntry, b: DeviceEntry) -> list[str]:
    """Which runs ("A", "B") flagged this latency as unstable (CV above 10 %): a change there
    may be the host's noise rather than the artifact's."""
    if metric.stats is None:
        return []
    return [tag for tag, e in (("A", a), ("B", b)) if (s := metric.stats(e)) is not None and s.unstable]


def compare_results(a: Results | dict, b: Results | dict, tolerance: Tolerance | None = None) -> dict:
    """Compare two runs' results (typed, or results.json objects, validated here; not modified),
    verdicts as each holds them. See the module docstring for the rules."""
    tol = tolerance or Tolerance()
    a, b = judged(a, "run A results.json"), judged(b, "run B results.json")
    cells_a, cells_b = _cells(a), _cells(b)
    rows: list[dict] = []
    verdict_changes: list[dict] = []
    for key, ea in cells_a.items():
        if key not in cells_b:
            continue
        eb = cells_b[key]
        cand, dev = key
        for metric in BASE_METRICS + tuple(_robust_metrics(ea, eb)):
            va, vb = _num(metric.get(ea)), _num(metric.get(eb))
            if va is None and vb is None:
                continue
            row = {
                "candidate": cand,
                "device": dev,
                "metric": metric.name,
                "better": "lower" if metric.lower_is_better else "higher",
                "a": va,
                "b": vb,
                "change": None,
                "change_rel": None,
                "regressed": False,
                "note": "",
                "unstable_in": _unstable_in(metric, ea, eb),
                "judged_by": "tolerance",
            }
            if va is not None and vb is not None:
                row["change"] = vb - va
                row["change_rel"] = (vb - va) / abs(va) if va else None
                ci_a, ci_b = _ci(ea, metric), _ci(eb, metric)
                if ci_a is not None and ci_b is not None:
                    row.update(judged_by="intervals", a_ci=ci_a, b_ci=ci_b)
                    row["regressed"], row["note"] = judge_by_intervals(ci_a, ci_b, metric.lower_is_better)
                else:
                    row["regressed"] = regressed(metric, va, vb, tol)
            elif vb is None:
                row["regressed"] = True
                row["note"] = "no longer measured"
            else:
                row["note"] = "newly measured"
            rows.append(row)
        sa = None if ea.verdict is None else ea.verdict.status
        sb = None if eb.verdict is None else eb.verdict.status
        if sa != sb:
            verdict_changes.append(
                {
                    "candidate": cand,
                    "device": dev,
                    "a": sa,
                    "b": sb,
                    "regressed": _RANK.get(sb or "", -1) < _RANK.get(sa or "", -1),
                }
            )
    regressions = sum(r["regressed"] for r in rows) + sum(v["regressed"] for v in verdict_changes)
    return {
        "a": {"run_id": a.run_id, "created": a.created},
        "b": {"run_id": b.run_id, "created": b.created},
        "tolerance": asdict(tol),
        "budgets_changed": budgets_of(a) != budgets_of(b),
        "rows": rows,
        "verdict_changes": verdict_changes,
        "only_in_a": [{"candidate": c, "device": d} for c, d in cells_a if (c, d) not in cells_b],
        "only_in_b": [{"candidate": c, "device": d} for c, d in cells_b if (c, d) not in cells_a],
        "regressions": regressions,
        "regressed": regressions > 0,
    }


def compare_runs(a: str | Path, b: str | Path, tolerance: Tolerance | None = None) -> dict:
    """Compare two runs given as run folders or results.json paths."""
    from edgebench.report.render import load_results

    ra, dir_a = load_results(a)
    rb, dir_b = load_results(b)
    out = compare_results(ra, rb, tolerance)
    out["a"]["path"] = str(dir_a)
    out["b"]["path"] = str(dir_b)
    return out


def compare_exit_code(diff: dict) -> int:
    """1 when anything regressed beyond tolerance, else 0."""
    return EXIT_NOT_READY if diff["regressed"] else EXIT_OK
