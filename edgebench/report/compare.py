"""Diff two runs: what got slower, bigger or less accurate, which verdicts and recipes changed.

Per candidate x device present in both runs, each metric is compared with a direction (lower
or higher is better). A metric regresses only when it got worse by more than the minimum effect
size of its kind (:data:`EFFECT_SIZES`, set through :class:`Tolerance`): latency percentiles,
throughput and memory relative to run A, clean and robust accuracy in absolute points (and never
by a single image of the set they were measured on). A latency percentile that carries a 95 %
confidence interval in both runs (``p50_ci`` ... from :mod:`edgebench.measure.stats`) must also
be outside noise: the intervals disjoint in the worse direction (B's lower bound above A's upper
bound). Both are needed: a within-run interval says how precisely one run measured, not how far
a second run on the same host drifts, so two runs of one study often have disjoint intervals a
few percent apart; and a large change inside overlapping intervals is not shown to be real. Each
row says which rules decided (``judged_by``) and the smallest change that would have counted
(``min_effect``, in the metric's unit). A metric measured in A but not in B counts as a
regression (a measurement that silently disappears could hide one). Candidates or devices present
in only one run are listed, not counted. Verdicts are each run's own, as its results.json holds
them (judged with its own budgets); a verdict that got worse (READY > UNMEASURED > NOT READY) is
a regression. A candidate whose recipe (pruning, quantization, parent, engine options) differs
between the runs is noted beside its rows: its changes are then the recipe's, not noise's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgebench.errors import EXIT_NOT_READY, EXIT_OK, EdgebenchError
from edgebench.report.gates import NOT_READY, READY, UNMEASURED, budgets_of, judged, peak_memory_mb
from edgebench.results import Candidate, DeviceEntry, LatencyStats, Results

_RANK = {READY: 2, UNMEASURED: 1, NOT_READY: 0}


@dataclass(frozen=True)
class Tolerance:
    """The minimum effect size per metric kind: how much worse a metric may get before it counts
    as a regression (see ``edgebench compare --help`` for why these defaults).

    Latency (every percentile, with or without intervals), throughput and memory are relative to
    run A (0.10 = 10 % worse); clean and robust accuracy absolute fractions (0.02 = two
    percentage points).
    """

    latency_rel: float = 0.10
    throughput_rel: float = 0.10
    memory_rel: float = 0.10
    accuracy_abs: float = 0.02
    robustness_abs: float = 0.05

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise EdgebenchError(f"tolerance {name}: expected a number >= 0, found {value!r}")


@dataclass(frozen=True)
class EffectSize:
    """How one metric kind's minimum effect size is read from a :class:`Tolerance`."""

    field: str  # the Tolerance attribute
    relative: bool  # a fraction of run A's value, else an absolute amount
    per_image: bool = False  # accuracies: never less than one image of the set measured on


EFFECT_SIZES: dict[str, EffectSize] = {
    "latency": EffectSize("latency_rel", relative=True),
    "speedup": EffectSize("latency_rel", relative=True),  # a ratio of latencies: the latency tolerance
    "throughput": EffectSize("throughput_rel", relative=True),
    "memory": EffectSize("memory_rel", relative=True),
    "accuracy": EffectSize("accuracy_abs", relative=False, per_image=True),
    "robustness": EffectSize("robustness_abs", relative=False, per_image=True),
}


@dataclass(frozen=True)
class Metric:
    name: str
    lower_is_better: bool
    kind: str  # a key of EFFECT_SIZES
    get: Callable[[DeviceEntry], Any]
    stats: Callable[[DeviceEntry], LatencyStats | None] | None = None  # latency: the statistics it is read from
    count: Callable[[DeviceEntry], int | None] | None = None  # accuracies: the images the value is over
    interval: Callable[[DeviceEntry], list | None] | None = None  # a stored 95 % interval not in LatencyStats


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
    # batch 1 end-to-end speed-up over base from paired interleaved rounds, with its interval
    Metric(
        "speedup",
        False,
        "speedup",
        lambda e: None if e.speedup is None else e.speedup.ratio,
        interval=lambda e: None if e.speedup is None else list(e.speedup.ci95),
    ),
    Metric("throughput_ips", False, "throughput", lambda e: e.throughput_ips),
    Metric("peak_memory_mb", True, "memory", peak_memory_mb),
    Metric("clean_accuracy", False, "accuracy", lambda e: e.clean_accuracy, count=lambda e: e.eval_count),
)


def _robust_metrics(a: DeviceEntry, b: DeviceEntry) -> list[Metric]:
    ids: list[str] = []
    for entry in (a, b):
        for row in entry.robustness:
            if row.id and row.id not in ids:
                ids.append(row.id)

    def field(attack_id: str, name: str) -> Callable[[DeviceEntry], Any]:
        def get(entry: DeviceEntry) -> Any:
            return next((getattr(row, name) for row in entry.robustness if row.id == attack_id), None)

        return get

    return [
        Metric(f"robust_accuracy[{i}]", False, "robustness", field(i, "accuracy"), count=field(i, "count")) for i in ids
    ]


def min_effect(metric: Metric, a: float, tol: Tolerance, counts: tuple[int | None, ...] = ()) -> float:
    """The smallest worsening of *metric* from run A's value *a* that counts, in the metric's unit:
    the tolerance of its kind (relative kinds scaled by ``|a|``); for accuracies never less than
    one image of the smaller set measured on (*counts*), the finest step an accuracy can take."""
    size = EFFECT_SIZES[metric.kind]
    value = float(getattr(tol, size.field))
    if size.relative:
        return value * abs(a)
    known = [c for c in counts if isinstance(c, int) and c > 0]
    return max(value, 1.0 / min(known)) if size.per_image and known else value


def regressed(metric: Metric, a: float, b: float, tol: Tolerance, counts: tuple[int | None, ...] = ()) -> bool:
    """True when *b* is worse than *a* by more than the metric's minimum effect size."""
    worse = (b - a) if metric.lower_is_better else (a - b)
    return worse > 0 and worse > min_effect(metric, a, tol, counts) + 1e-12


def _ci(entry: DeviceEntry, metric: Metric) -> list | None:
    """The ``[low, high]`` interval stored beside a latency percentile or a speed-up, if the run
    has one."""
    if metric.interval is not None:
        ci = metric.interval(entry)
        return ci if ci is not None and len(ci) == 2 and None not in ci else None
    stats = None if metric.stats is None else metric.stats(entry)
    if stats is None:
        return None
    pct = metric.name.split(".", 1)[1]
    ci = {"p50": stats.p50_ci, "p90": stats.p90_ci, "p99": stats.p99_ci}.get(pct)
    return list(ci) if ci is not None and len(ci) == 2 else None


def judge_by_intervals(ci_a: list, ci_b: list, lower_is_better: bool = True) -> tuple[bool, str]:
    """``(outside noise and worse, note)`` from two ``[low, high]`` intervals (an end may be None:
    unbounded).

    Worse beyond noise only when the intervals are disjoint in the worse direction; an improvement
    is noted when they are disjoint the other way; anything else is within noise. Whether the
    change is also large enough to matter is :func:`min_effect`'s question.
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


def _judge(metric: Metric, ea: DeviceEntry, eb: DeviceEntry, va: float, vb: float, tol: Tolerance) -> dict:
    """The verdict fields of a row measured in both runs: intervals (where both runs have them)
    and the minimum effect size must both call it worse."""
    counts = tuple(metric.count(e) for e in (ea, eb)) if metric.count is not None else ()
    effect = min_effect(metric, va, tol, counts)
    big = regressed(metric, va, vb, tol, counts)
    out: dict[str, Any] = {"min_effect": effect, "judged_by": "tolerance"}
    ci_a, ci_b = _ci(ea, metric), _ci(eb, metric)
    if ci_a is not None and ci_b is not None:
        outside, note = judge_by_intervals(ci_a, ci_b, metric.lower_is_better)
        out.update(judged_by="intervals+tolerance", a_ci=ci_a, b_ci=ci_b, regressed=outside and big)
        out["note"] = note + ("" if big or not outside else ", within tolerance")
        return out
    worse = (vb - va) if metric.lower_is_better else (va - vb)
    out["regressed"] = big
    out["note"] = "worse: beyond tolerance" if big else "worse, within tolerance" if worse > 0 else ""
    return out


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


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """``{"prune.finetune.epochs": 1, ...}`` from nested dicts."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}", out)
    else:
        out[prefix] = value
    return out


def _union(a: dict, b: dict) -> list:
    return list(a) + [k for k in b if k not in a]


def recipe_changes(a: Candidate, b: Candidate) -> list[dict]:
    """What differs between two runs' recipes of one candidate (results.json ``recipe``: pruning,
    quantization, parent, engine, defaults resolved), as ``{"key", "a", "b"}`` with dotted keys
    (``prune.ratio``, ``prune.finetune.epochs``, ``quantize.per_channel``). A step applied in one
    run only is one entry, ``None`` on the other side."""
    da, db = a.recipe.model_dump(mode="json"), b.recipe.model_dump(mode="json")
    out = []
    for step in _union(da, db):
        sa, sb = da.get(step), db.get(step)
        if isinstance(sa, dict) and isinstance(sb, dict):
            fa, fb = _flatten(sa, step, {}), _flatten(sb, step, {})
            out += [{"key": k, "a": fa.get(k), "b": fb.get(k)} for k in _union(fa, fb) if fa.get(k) != fb.get(k)]
        elif sa != sb:
            out.append({"key": step, "a": sa, "b": sb})
    return out


def _rows(cand: str, dev: str, ea: DeviceEntry, eb: DeviceEntry, tol: Tolerance) -> list[dict]:
    rows = []
    for metric in BASE_METRICS + tuple(_robust_metrics(ea, eb)):
        va, vb = _num(metric.get(ea)), _num(metric.get(eb))
        if va is None and vb is None:
            continue
        row: dict[str, Any] = {
            "candidate": cand,
            "device": dev,
            "metric": metric.name,
            "kind": metric.kind,
            "better": "lower" if metric.lower_is_better else "higher",
            "a": va,
            "b": vb,
            "change": None,
            "change_rel": None,
            "regressed": False,
            "note": "",
            "unstable_in": _unstable_in(metric, ea, eb),
            "judged_by": "tolerance",
            "min_effect": None,
        }
        if va is not None and vb is not None:
            row["change"] = vb - va
            row["change_rel"] = (vb - va) / abs(va) if va else None
            row.update(_judge(metric, ea, eb, va, vb, tol))
        elif vb is None:
            row.update(regressed=True, note="no longer measured")
        else:
            row["note"] = "newly measured"
        rows.append(row)
    return rows


def compare_results(a: Results | dict, b: Results | dict, tolerance: Tolerance | None = None) -> dict:
    """Compare two runs' results (typed, or results.json objects, validated here; not modified),
    verdicts as each holds them. See the module docstring for the rules."""
    tol = tolerance or Tolerance()
    a, b = judged(a, "run A results.json"), judged(b, "run B results.json")
    cells_a, cells_b = _cells(a), _cells(b)
    cands_b = {c.name: c for c in b.candidates}
    recipes = [
        {"candidate": c.name, "changes": changes}
        for c in a.candidates
        if c.name in cands_b and (changes := recipe_changes(c, cands_b[c.name]))
    ]
    changed = {r["candidate"] for r in recipes}
    rows: list[dict] = []
    verdict_changes: list[dict] = []
    for (cand, dev), ea in cells_a.items():
        if (cand, dev) not in cells_b:
            continue
        eb = cells_b[(cand, dev)]
        rows += _rows(cand, dev, ea, eb, tol)
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
                    "recipe_changed": cand in changed,
                }
            )
    for row in rows:
        row["recipe_changed"] = row["candidate"] in changed
    regressions = sum(r["regressed"] for r in rows) + sum(v["regressed"] for v in verdict_changes)
    return {
        "a": {"run_id": a.run_id, "created": a.created},
        "b": {"run_id": b.run_id, "created": b.created},
        "tolerance": asdict(tol),
        "budgets_changed": budgets_of(a) != budgets_of(b),
        "recipe_changes": recipes,
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
