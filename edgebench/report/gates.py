"""Budgets become gates; gates become a verdict per candidate and device.

A budget is a ceiling (``max_*``) from the study config; ``null`` means "no gate". Each gate
compares one measured value with its ceiling and is ``pass``, ``fail`` or ``unmeasured``.
A value nobody measured never passes, so a run that skipped a measurement cannot look READY:

* ``NOT READY``  when any gate fails (even if others are unmeasured: a failure is certain);
* ``UNMEASURED`` when no gate fails but at least one was never measured;
* ``READY``      when every gate passes.

Everything here is a pure function of the ``results.json`` dict (``docs/results.md``), except
:func:`evaluate_verdicts`, which writes the verdicts into that dict (and returns it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from edgebench.errors import EXIT_NOT_READY, EXIT_OK, EXIT_UNMEASURED, EdgebenchError
from edgebench.report import format as fmt

READY = "READY"
NOT_READY = "NOT READY"
UNMEASURED = "UNMEASURED"
STATUSES = (READY, NOT_READY, UNMEASURED)

PASS = "pass"
FAIL = "fail"
GATE_UNMEASURED = "unmeasured"

FAIL_ON_CHOICES = ("not-ready", "unmeasured", "never")

# A value equal to its ceiling passes; this slack keeps 0.98 - 0.96 (= 0.020000000000000018)
# within a 0.02 budget. It is far below anything a measurement can resolve.
_REL_SLACK = 1e-9


@dataclass(frozen=True)
class Reading:
    """What a gate measured on one candidate x device: the value (``None``: unmeasured), a status
    that overrides the plain ``value <= ceiling`` comparison when the value is only a bound, and
    a one-line detail for the reports."""

    value: float | None
    status: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class GateContext:
    """What a gate may look at: the whole results (for the attack list), the candidate's entry on
    the device, and the base candidate's entry on the same device (``None`` when there is none)."""

    results: dict
    entry: dict
    base_entry: dict | None
    has_base: bool


@dataclass(frozen=True)
class GateSpec:
    """One gate, defined once: its name, the budget key that sets its ceiling (and that key's
    default in the study), what it measures, how its value is written, and how it is measured.

    ``Budgets`` (study config), the verdicts, the Markdown, the HTML and the terminal all read
    this registry: adding a gate is adding one entry to :data:`GATES`.
    """

    name: str
    budget: str
    unit: str
    label: str
    default: float | None
    describes: str
    format: Callable[[Any], str]
    measure: Callable[[GateContext], Reading]


def _p99(ctx: GateContext) -> Reading:
    return Reading(_number(_get(ctx.entry, "latency_ms", "p99")))


def _peak_memory(ctx: GateContext) -> Reading:
    return Reading(peak_memory_mb(ctx.entry))


def _accuracy_drop(ctx: GateContext) -> Reading:
    detail = None if ctx.has_base else "no base candidate to compare with"
    return Reading(accuracy_drop(ctx.base_entry, ctx.entry), detail=detail)


def _robustness_drop(ctx: GateContext) -> Reading:
    value, missing, worst = robustness_drop(ctx.results, ctx.base_entry, ctx.entry)
    detail = f"worst: {worst}" if worst and value and value > 0 else None
    status = None
    if missing:
        # A partial maximum is only a lower bound: it can prove a failure, never a pass.
        status = "bound"
        note = f"{len(missing)} attack(s) unmeasured: {', '.join(missing)}"
        detail = f"{detail}; {note}" if detail else note
    return Reading(value, status=status, detail=detail)


def _with_unit(formatter: Callable[[Any], str], unit: str) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return formatter(value) + ("" if value is None else f" {unit}")

    return show


GATES: tuple[GateSpec, ...] = (
    GateSpec(
        "p99_latency_ms",
        "max_p99_latency_ms",
        "ms",
        "p99 latency",
        10.0,
        "end-to-end latency at batch 1, 99th percentile, on the device",
        _with_unit(fmt.ms, "ms"),
        _p99,
    ),
    GateSpec(
        "peak_memory_mb",
        "max_peak_memory_mb",
        "MB",
        "peak memory",
        1024.0,
        "peak resident memory of the process that measured, on the device",
        _with_unit(fmt.mb, "MB"),
        _peak_memory,
    ),
    GateSpec(
        "accuracy_drop",
        "max_accuracy_drop",
        "",
        "accuracy drop",
        0.02,
        "base minus candidate clean accuracy on the same device",
        fmt.pp,
        _accuracy_drop,
    ),
    GateSpec(
        "robustness_drop",
        "max_robustness_drop",
        "",
        "robustness drop",
        0.10,
        "largest base minus candidate accuracy over the run's adversarial sets, same device",
        fmt.pp,
        _robustness_drop,
    ),
)
GATE_BY_NAME = {g.name: g for g in GATES}
BUDGET_KEYS = tuple(g.budget for g in GATES)


# --------------------------------------------------------------------------- helpers


def _number(value: Any) -> float | None:
    """A finite float, or None for null/missing/non-numeric (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def budgets_of(results: dict) -> dict[str, float | None]:
    """The validated budgets: ``results['budgets']`` (or ``study.budgets``), every key present.

    Raises :class:`EdgebenchError` for an unknown budget name or a negative / non-numeric ceiling.
    """
    raw = results.get("budgets")
    if raw is None:
        raw = _get(results, "study", "budgets")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise EdgebenchError(f"budgets: expected a mapping of {', '.join(BUDGET_KEYS)}, found {type(raw).__name__}")
    unknown = sorted(set(raw) - set(BUDGET_KEYS))
    if unknown:
        raise EdgebenchError(f"unknown budget {unknown[0]!r}: expected one of {', '.join(BUDGET_KEYS)}")
    out: dict[str, float | None] = {}
    for key in BUDGET_KEYS:
        value = raw.get(key)
        if value is None:
            out[key] = None
            continue
        num = _number(value)
        if num is None or num < 0:
            raise EdgebenchError(f"budget {key}: expected a number >= 0 or null, found {value!r}")
        out[key] = num
    return out


def base_candidate(results: dict) -> dict | None:
    """The uncompressed reference: the candidate named ``base``, else the first without a recipe."""
    candidates = results.get("candidates") or []
    for cand in candidates:
        if cand.get("name") == "base":
            return cand
    for cand in candidates:
        recipe = cand.get("recipe") or {}
        if not recipe.get("prune") and not recipe.get("quantize"):
            return cand
    return None


def device_entry(candidate: dict, device: str) -> dict:
    """A candidate's results on *device* (``{}`` when it was never measured there)."""
    return (candidate.get("devices") or {}).get(device) or {}


def device_names(results: dict) -> list[str]:
    """Devices of the run: those declared in ``devices``, then any only candidates mention."""
    names = list((results.get("devices") or {}).keys())
    for cand in results.get("candidates") or []:
        for dev in (cand.get("devices") or {}).keys():
            if dev not in names:
                names.append(dev)
    return names


def _check(value: float | None, threshold: float) -> str:
    if value is None:
        return GATE_UNMEASURED
    return PASS if value <= threshold + _REL_SLACK * max(1.0, abs(threshold)) else FAIL


def _gate(
    spec: GateSpec, value: float | None, threshold: float, status: str | None = None, detail: str | None = None
) -> dict:
    gate = {"name": spec.name, "value": value, "threshold": threshold, "status": status or _check(value, threshold)}
    if detail:
        gate["detail"] = detail
    return gate


# --------------------------------------------------------------------------- measured values


def peak_memory_mb(entry: dict) -> float | None:
    """Peak RSS of the measuring process, as its sampler saw it; ``None`` when it saw nothing.

    Never ``ru_maxrss``: on Linux a forked child inherits its parent's high-water mark, so it
    can report the host process's memory instead of the agent's."""
    mem = entry.get("memory_mb") or {}
    return _number(mem.get("peak_rss"))


def accuracy_drop(base_entry: dict | None, entry: dict) -> float | None:
    """Base clean accuracy minus candidate clean accuracy (same device); None if either is missing."""
    if base_entry is None:
        return None
    base_acc = _number(base_entry.get("clean_accuracy"))
    acc = _number(entry.get("clean_accuracy"))
    if base_acc is None or acc is None:
        return None
    return base_acc - acc


def _rows_by_id(entry: dict | None) -> dict[str, dict]:
    rows = (entry or {}).get("robustness") or []
    return {row["id"]: row for row in rows if isinstance(row, dict) and row.get("id") is not None}


def robustness_drop(results: dict, base_entry: dict | None, entry: dict) -> tuple[float | None, list[str], str | None]:
    """Largest base-minus-candidate adversarial accuracy over the run's attacks, in either
    threat model (transfer rows, and white-box rows against the base's white-box rows).

    Returns ``(drop, missing_ids, worst_id)``: ``missing_ids`` are attacks where either side has
    no accuracy. Attacks are those listed in ``results['attacks']``, else those the base has.
    """
    base_rows = _rows_by_id(base_entry)
    rows = _rows_by_id(entry)
    ids = [str(a["id"]) for a in results.get("attacks") or [] if isinstance(a, dict) and a.get("id")]
    if not ids:
        ids = list(base_rows)
    drops: dict[str, float] = {}
    missing: list[str] = []
    for attack_id in [str(i) for i in ids]:
        # each threat model against the base in the same one (white-box rows: "whitebox:<id>");
        # the gate takes the worse of the two
        found = False
        for key in (attack_id, f"whitebox:{attack_id}"):
            c = _number(_get(rows.get(key), "accuracy"))
            b = _number(_get(base_rows.get(key), "accuracy"))
            if key != attack_id:  # white-box: the base's own white-box accuracy on the same images
                same = _number(_get(rows.get(key), "base_whitebox_accuracy"))
                b = same if same is not None else b
            if b is not None and c is not None:
                found = True
                drops[key] = max(drops.get(key, b - c), b - c)
        if not found:
            missing.append(attack_id)
    if not drops:
        return None, missing, None
    worst = max(drops, key=lambda k: drops[k])
    return drops[worst], missing, worst


# --------------------------------------------------------------------------- verdicts


def verdict_status(gates: Iterable[dict]) -> str:
    """NOT READY if any gate fails, else UNMEASURED if any is unmeasured, else READY."""
    statuses = [g["status"] for g in gates]
    if FAIL in statuses:
        return NOT_READY
    if GATE_UNMEASURED in statuses:
        return UNMEASURED
    return READY


def verdict_for(results: dict, candidate: dict, device: str, budgets: dict | None = None) -> dict:
    """The verdict of one candidate on one device: ``{status, gates: [...]}`` (no mutation)."""
    budgets = budgets_of(results) if budgets is None else budgets
    entry = (candidate.get("devices") or {}).get(device) or {}
    base = base_candidate(results)
    base_entry = None if base is None else (base.get("devices") or {}).get(device)
    ctx = GateContext(results, entry, base_entry, base is not None)
    gates: list[dict] = []
    for spec in GATES:
        threshold = budgets.get(spec.budget)
        if threshold is None:
            continue
        reading = spec.measure(ctx)
        status = _check(reading.value, threshold)
        if reading.status == "bound" and status == PASS:
            status = GATE_UNMEASURED
        gates.append(_gate(spec, reading.value, threshold, status=status, detail=reading.detail))
    out = {"status": verdict_status(gates), "gates": gates}
    if entry.get("unmeasured_reason"):  # measurements skipped on purpose: say why
        out["reason"] = entry["unmeasured_reason"]
    return out


def iter_cells(results: dict) -> Iterator[tuple[dict, str]]:
    """Every (candidate, device name) pair of the run, candidates in order, devices in order."""
    devices = device_names(results)
    for cand in results.get("candidates") or []:
        for dev in devices:
            yield cand, dev


def evaluate_verdicts(results: dict) -> dict:
    """Fill ``candidates[*].devices[dev].verdict`` for every candidate x device; return *results*.

    Mutates *results* in place. A device the candidate was never measured on gets an entry
    holding only its verdict (every gate unmeasured), so it cannot silently drop out of CI.
    """
    if not isinstance(results, dict):
        raise EdgebenchError(f"results: expected a JSON object, found {type(results).__name__}")
    candidates = results.get("candidates")
    if not isinstance(candidates, list):
        raise EdgebenchError(
            "results: expected a 'candidates' list, found "
            f"{'nothing' if candidates is None else type(candidates).__name__}"
        )
    budgets = budgets_of(results)
    computed = [(cand, dev, verdict_for(results, cand, dev, budgets)) for cand, dev in iter_cells(results)]
    for cand, dev, verdict in computed:
        cand.setdefault("devices", {}).setdefault(dev, {})["verdict"] = verdict
    return results


def verdicts(results: dict) -> list[dict]:
    """Flat list ``[{candidate, device, status, gates}]``, computing any verdict not yet filled in."""
    budgets = None
    out = []
    for cand, dev in iter_cells(results):
        verdict = _get(cand, "devices", dev, "verdict")
        if not isinstance(verdict, dict) or verdict.get("status") not in STATUSES:
            budgets = budgets_of(results) if budgets is None else budgets
            verdict = verdict_for(results, cand, dev, budgets)
        out.append(
            {
                "candidate": cand.get("name"),
                "device": dev,
                "status": verdict["status"],
                "gates": verdict.get("gates", []),
                "reason": verdict.get("reason"),
            }
        )
    return out


def exit_code(results: dict, fail_on: str = "not-ready") -> int:
    """The process exit code for CI.

    ``never`` -> 0; ``not-ready`` -> 1 when any verdict is NOT READY; ``unmeasured`` -> 1 when
    any is NOT READY, else 3 when any is UNMEASURED. Otherwise 0.
    """
    if fail_on not in FAIL_ON_CHOICES:
        raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
    if fail_on == "never":
        return EXIT_OK
    statuses = {v["status"] for v in verdicts(results)}
    if NOT_READY in statuses:
        return EXIT_NOT_READY
    if fail_on == "unmeasured" and UNMEASURED in statuses:
        return EXIT_UNMEASURED
    return EXIT_OK
