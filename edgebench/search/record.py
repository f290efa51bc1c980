"""The ``search`` record of results.json: trials, the Pareto front and the recommendation per
device. Recomputed from the run folder (``search/trials.json``) and the assembled candidates
every time results.json is assembled, so it always agrees with the measurements.

* ``trials``: one entry per trial (number, candidate name, params, host screen numbers,
  feasible on the host, ``measured``: the candidate has device measurements).
* ``pareto[device]``: candidates no other measured candidate beats on every one of p99 latency,
  clean accuracy, robust accuracy (mean over the adversarial sets) and peak memory.
* ``recommended[device]``: the fastest (p99) READY candidate with its margin to each budget
  (ceiling minus value), or ``null``.
* ``closest[device]``: when no trial is READY there (whether or not a listed candidate such as
  base is), the measured candidate that is not READY and misses the budgets by the least (sum
  of relative excess over the failing gates; ties: the smaller host constraint violation), and
  what it misses; ``null`` when a trial is READY.
"""

from __future__ import annotations

from typing import Any

from edgebench.report.gates import peak_memory_mb
from edgebench.results import DeviceEntry
from edgebench.study.store import RunStore

TRIALS = "search/trials.json"


def device_point(entry: dict) -> dict | None:
    """A measured candidate's four device objectives, or ``None`` when not measured."""
    p99 = (entry.get("latency_ms") or {}).get("p99")
    clean = entry.get("clean_accuracy")
    if p99 is None or clean is None:
        return None
    rows = entry.get("robustness") or []
    robust = sum(r["accuracy"] for r in rows) / len(rows) if rows else None
    peak = peak_memory_mb(DeviceEntry.model_validate(entry))  # the memory gate's own reading
    return {"p99_ms": p99, "clean_accuracy": clean, "robust_accuracy": robust, "peak_memory_mb": peak}


def _vector(pt: dict) -> list[float]:
    return [
        pt["p99_ms"],
        -pt["clean_accuracy"],
        -(pt["robust_accuracy"] if pt["robust_accuracy"] is not None else 0.0),
        pt["peak_memory_mb"] if pt["peak_memory_mb"] is not None else 0.0,
    ]


def _margins(verdict: dict) -> dict[str, float]:
    return {
        g["name"]: g["threshold"] - g["value"]
        for g in verdict.get("gates") or []
        if g.get("value") is not None and g.get("threshold") is not None
    }


def _excess(verdict: dict) -> tuple[float, list[str]]:
    """Sum of relative excess over the failing gates, and their names (unmeasured counts 1)."""
    total, missed = 0.0, []
    for g in verdict.get("gates") or []:
        if g.get("status") == "fail" and g.get("value") is not None:
            total += (g["value"] - g["threshold"]) / max(abs(g["threshold"]), 1e-9)
            missed.append(g["name"])
        elif g.get("status") == "unmeasured":
            total += 1.0
            missed.append(g["name"])
    return total, missed


def violation(trial: dict) -> float:
    """A trial's total constraint violation (the sum of its positive constraint values), as
    Optuna's constrained NSGA-II and TPE rank infeasible trials."""
    return sum(max(0.0, float(c)) for c in trial.get("constraints") or [])


def _closest(measured: list[tuple[str, dict, dict]], violations: dict[str, float]) -> dict | None:
    """The measured candidate that is not READY and misses the budgets by the least (ties: the
    smaller host constraint violation; a listed candidate counts none), and what it misses."""
    missing = [(_excess(v), n, v) for n, _, v in measured if v.get("status") != "READY"]
    if not missing:
        return None
    (excess, missed), name, verdict = min(missing, key=lambda m: (m[0][0], violations.get(m[1], 0.0), m[1]))
    return {"candidate": name, "misses": missed, "excess": excess, "margins": _margins(verdict)}


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_ranks(points: list[list[float]]) -> list[int]:
    """Non-dominated rank of each point (0 = the front), every objective minimized."""
    ranks = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        front = {i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def search_record(results: dict, run_dir: Any) -> dict:
    """The ``search`` record for assembled (verdicts filled in) *results*: the search command
    hands it to the pipeline (``Pipeline.records``), which has every assembly add it."""
    store = RunStore(run_dir)
    trials = [dict(t) for t in store.read_json(TRIALS) or []]
    devices = list((results.get("devices") or {}).keys())
    by_name = {c["name"]: c for c in results.get("candidates") or []}
    violations: dict[str, float] = {}
    for t in trials:
        violations.setdefault(t["name"], violation(t))
        cand = by_name.get(t["name"]) or {}
        t["measured"] = any(device_point((cand.get("devices") or {}).get(d) or {}) for d in devices)
    pareto: dict[str, list[dict]] = {}
    recommended: dict[str, dict | None] = {}
    closest: dict[str, dict | None] = {}
    for dev in devices:
        measured = []
        for cand in results.get("candidates") or []:
            entry = (cand.get("devices") or {}).get(dev) or {}
            pt = device_point(entry)
            if pt is not None:
                measured.append((cand["name"], pt, entry.get("verdict") or {}))
        ranks = pareto_ranks([_vector(pt) for _, pt, _ in measured])
        pareto[dev] = [
            dict(pt, candidate=n, status=v.get("status")) for (n, pt, v), r in zip(measured, ranks) if r == 0
        ]
        pareto[dev].sort(key=lambda p: p["p99_ms"])
        ready = [(pt["p99_ms"], n, v) for n, pt, v in measured if v.get("status") == "READY"]
        if ready:
            p99, name, verdict = min(ready, key=lambda r: r[0])
            recommended[dev] = {"candidate": name, "p99_ms": p99, "margins": _margins(verdict)}
        else:
            recommended[dev] = None
        closest[dev] = None if any(n in violations for _, n, _ in ready) else _closest(measured, violations)
    screen = store.read_json("search/screen.json") or {}
    return {
        "trials": trials,
        "survivors": screen.get("survivors", []),
        "base_screen": screen.get("base"),
        "pareto": pareto,
        "recommended": recommended,
        "closest": closest,
    }
