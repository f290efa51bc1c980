"""Budgets become gates; gates become a verdict per candidate and device.

A budget is a ceiling (``max_*``) or a floor (``min_*``) from the study config; ``null`` means
"no gate". Each gate compares one measured value with its budget and is ``pass``, ``fail`` or
``unmeasured``. A value nobody measured never passes, so a run that skipped a measurement cannot
look READY:

* ``NOT READY``  when any gate fails (even if others are unmeasured: a failure is certain);
* ``UNMEASURED`` when no gate fails but at least one was never measured;
* ``READY``      when every gate passes.

A value that cannot prove a pass is ``unmeasured`` too, though it can prove a failure: a maximum
over some attacks only (a lower bound), and a latency from an unstable measurement (CV above
10 %) unless even its slowest iteration is within the ceiling: such a p99 moved from 0.21 ms to
4.17 ms between two identical runs, so a pass on it would not hold. Its gate says ``unstable``.

Every verdict also lists its *caveats* (:data:`CAVEATS`): what it rests on that should give a
user pause whatever the gates say (an unstable latency, a failed robustness sanity check, a base
or candidate at chance accuracy). They change no status; the reports show them beside it.

Everything here reads the typed :class:`~edgebench.results.Results` (``docs/results.md``) and
changes nothing. Verdicts are evaluated once, by :func:`with_verdicts` (which returns a new
``Results``), when ``study/assemble.py`` makes results.json; everything else reads them from
``candidates[].devices[dev].verdict``. :func:`judged` is the one door for anything else: a
results.json whose verdicts are missing (a hand-written file) or were judged against other
budgets than the ones it holds (budgets edited since assembly) gets them evaluated there, once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgebench.errors import EXIT_INCONCLUSIVE, EXIT_NOT_READY, EXIT_OK, EXIT_UNMEASURED, EdgebenchError
from edgebench.report import format as fmt
from edgebench.results import (
    Candidate,
    Caveat,
    DeviceEntry,
    Gate,
    Results,
    RobustnessRow,
    Verdict,
    as_results,
)

log = logging.getLogger(__name__)

READY: Final = "READY"
NOT_READY: Final = "NOT READY"
UNMEASURED: Final = "UNMEASURED"
STATUSES = (READY, NOT_READY, "INCONCLUSIVE", UNMEASURED)
Status = Literal["READY", "NOT READY", "INCONCLUSIVE", "UNMEASURED"]

PASS: Final = "pass"
FAIL: Final = "fail"
INCONCLUSIVE_GATE: Final = "inconclusive"
GATE_UNMEASURED: Final = "unmeasured"
INCONCLUSIVE: Final = "INCONCLUSIVE"

FAIL_ON_CHOICES = ("not-ready", "inconclusive", "unmeasured", "never")

# A value equal to its ceiling passes; this slack keeps 0.98 - 0.96 (= 0.020000000000000018)
# within a 0.02 budget. It is far below anything a measurement can resolve.
_REL_SLACK = 1e-9


@dataclass(frozen=True)
class Reading:
    """What a gate measured on one candidate x device: the value (``None``: unmeasured), a status
    that overrides the plain comparison with the budget when the value is only a bound, a
    one-line detail for the reports, and, for a value from an unstable measurement, why it is
    (``unstable``) and its worst single observation (``worst``), which a pass must also meet."""

    value: float | None
    status: str | None = None
    detail: str | None = None
    unstable: str | None = None
    worst: float | None = None
    ci: tuple[float, float] | None = None  # judge with the interval (accuracies and drops)
    images: int | None = None  # the images the value rests on


@dataclass(frozen=True)
class GateContext:
    """What a gate may look at: the whole results (for the attack list), the candidate's entry on
    the device, and the base candidate's entry on the same device (``None`` when there is none)."""

    results: Results
    entry: DeviceEntry
    base_entry: DeviceEntry | None
    has_base: bool
    is_base: bool = False


@dataclass(frozen=True)
class GateSpec:
    """One gate, defined once: its name, the budget key that sets its ceiling (and that key's
    default in the study), what it measures, how its value is written, how it is measured, and
    whether the budget is a floor (``min_*``: passes when value >= budget) with the largest
    budget that makes sense (``upper``: 1 for a fraction).

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
    floor: bool = False
    upper: float | None = None

    @property
    def sign(self) -> str:
        """How the value must compare with the budget to pass."""
        return "\u2265" if self.floor else "\u2264"


def _p99(ctx: GateContext) -> Reading:
    lat = ctx.entry.latency_ms
    if lat is None:
        return Reading(None)
    if not lat.unstable:
        return Reading(_number(lat.p99))
    why = f"CV {fmt.pct(lat.cv, 0)} over {lat.samples} iterations"
    return Reading(_number(lat.p99), unstable=why, worst=_number(lat.max))


def _clean_accuracy(ctx: GateContext) -> Reading:
    acc, n = _number(ctx.entry.clean_accuracy), ctx.entry.eval_count
    if acc is None or not n:
        return Reading(acc)
    from edgebench.robustness.metrics import wilson_interval

    return Reading(acc, ci=wilson_interval(round(acc * n), n), images=n)


def _peak_memory(ctx: GateContext) -> Reading:
    return Reading(peak_memory_mb(ctx.entry))


def _accuracy_drop(ctx: GateContext) -> Reading:
    detail = None if ctx.has_base else "no base candidate to compare with"
    value = accuracy_drop(ctx.base_entry, ctx.entry)
    if value is None or ctx.is_base or ctx.base_entry is None:
        return Reading(value, detail=detail)
    base, entry = ctx.base_entry, ctx.entry
    if entry.clean_pairs is None or not base.eval_count or not entry.eval_count:
        # a results.json without per-image outcomes (made before they were recorded): the point value
        return Reading(value, detail=detail)
    from edgebench.measure.proportions import drop_interval

    ci = drop_interval(
        _number(base.clean_accuracy) or 0.0,
        base.eval_count,
        _number(entry.clean_accuracy) or 0.0,
        entry.eval_count,
        _pairs(entry.clean_pairs),
    )
    return Reading(value, detail=detail, ci=ci, images=min(base.eval_count, entry.eval_count))


def worst_case_drop(entry: DeviceEntry) -> tuple[float, str] | None:
    """The largest drop of per-example worst-case robust accuracy (right clean and under every
    attack at one epsilon, ``robustness/worstcase.py``) against the base's on the same images,
    and where: None when the entry has no such rows."""
    drops = [
        (b - r, f"worst case at {row.id}: base {fmt.pct(b)} vs {fmt.pct(r)} on {row.count} images ({row.images})")
        for row in entry.robust_accuracy or []
        if (r := _number(row.robust_accuracy)) is not None and (b := _number(row.base_robust_accuracy)) is not None
    ]
    return max(drops, key=lambda d: d[0]) if drops else None


def _robustness_drop(ctx: GateContext) -> Reading:
    value, missing, worst = robustness_drop([a.id for a in ctx.results.attacks], ctx.base_entry, ctx.entry)
    detail = f"worst: {worst}" if worst and value and value > 0 else None
    ensemble = worst_case_drop(ctx.entry)
    if ensemble is not None:
        # robust accuracy as RobustBench defines it: an image counts when it survives every attack,
        # so the gate judges the ensemble (never weaker than any single attack on the same images)
        value, detail = ensemble[0], ensemble[1] if ensemble[0] > 0 else None
    status = None
    if missing:
        # A partial maximum is only a lower bound: it can prove a failure, never a pass.
        status = "bound"
        note = f"{len(missing)} attack(s) unmeasured: {', '.join(missing)}"
        detail = f"{detail}; {note}" if detail else note
    ci, images = (None, None) if ctx.is_base else robustness_drop_interval(ctx.base_entry, ctx.entry)
    return Reading(value, status=status, detail=detail, ci=ci, images=images)


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
        "clean_accuracy",
        "min_accuracy",
        "",
        "clean accuracy",
        None,
        "candidate clean accuracy on the device, an absolute floor (drops from a useless base prove nothing)",
        fmt.pct,
        _clean_accuracy,
        floor=True,
        upper=1.0,
    ),
    GateSpec(
        "robustness_drop",
        "max_robustness_drop",
        "",
        "robustness drop",
        0.10,
        "largest base minus candidate robust accuracy (an image counts when it survives every attack at an "
        "epsilon, transfer and white-box), same images and device; per attack set for runs without it",
        fmt.pp,
        _robustness_drop,
    ),
)
GATE_BY_NAME = {g.name: g for g in GATES}
BUDGET_KEYS = tuple(g.budget for g in GATES)
_BY_BUDGET = {g.budget: g for g in GATES}


# --------------------------------------------------------------------------- helpers


def _number(value: Any) -> float | None:
    """A finite float, or None for null/missing/non-numeric (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def budget_value(key: str, value: Any) -> float | None:
    """*value* as the budget *key* (``None``: no gate). Raises ``ValueError`` saying what was
    expected when it is not a number in the gate's range (>= 0, and <= 1 for a fraction); the
    study config and :func:`budgets_of` both check budgets through it."""
    if value is None:
        return None
    spec = _BY_BUDGET[key]
    num = _number(value)
    if num is None or num < 0 or (spec.upper is not None and num > spec.upper):
        expected = "a number >= 0" if spec.upper is None else f"a number in [0, {spec.upper:g}]"
        raise ValueError(f"expected {expected} or null, found {value!r}")
    return num


def budgets_of(results: Results) -> dict[str, float | None]:
    """The validated budgets: ``results.budgets``, every key present.

    Raises :class:`EdgebenchError` for an unknown budget name or a value out of its range.
    """
    raw = results.budgets
    unknown = sorted(set(raw) - set(BUDGET_KEYS))
    if unknown:
        raise EdgebenchError(f"unknown budget {unknown[0]!r}: expected one of {', '.join(BUDGET_KEYS)}")
    out: dict[str, float | None] = {}
    for key in BUDGET_KEYS:
        try:
            out[key] = budget_value(key, raw.get(key))
        except ValueError as exc:
            raise EdgebenchError(f"budget {key}: {exc}") from None
    return out


def base_candidate(results: Results) -> Candidate | None:
    """The uncompressed reference: the candidate named ``base``, else the first without a recipe."""
    for cand in results.candidates:
        if cand.name == "base":
            return cand
    for cand in results.candidates:
        if not cand.recipe.prune and not cand.recipe.quantize:
            return cand
    return None


def empty_entry() -> DeviceEntry:
    """A device entry with nothing measured (a candidate never run on a device)."""
    return DeviceEntry.model_validate({"latency_ms": None, "memory_mb": None, "clean_accuracy": None, "robustness": []})


def device_entry(candidate: Candidate, device: str) -> DeviceEntry:
    """A candidate's results on *device* (nothing measured when it was never run there)."""
    entry = candidate.devices.get(device)
    return empty_entry() if entry is None else entry


def device_names(results: Results) -> list[str]:
    """Devices of the run: those declared in ``devices``, then any only candidates mention."""
    names = list(results.devices)
    for cand in results.candidates:
        for dev in cand.devices:
            if dev not in names:
                names.append(dev)
    return names


def _check(value: float | None, threshold: float, floor: bool = False) -> str:
    if value is None:
        return GATE_UNMEASURED
    slack = _REL_SLACK * max(1.0, abs(threshold))
    ok = value >= threshold - slack if floor else value <= threshold + slack
    return PASS if ok else FAIL


def _gate(
    spec: GateSpec,
    value: float | None,
    threshold: float,
    status: str,
    detail: str | None = None,
    unstable: bool = False,
    extra: dict[str, Any] | None = None,
) -> Gate:
    fields: dict[str, Any] = {"name": spec.name, "value": value, "threshold": threshold, "status": status}
    fields.update({k: v for k, v in (extra or {}).items() if v is not None})
    if unstable:  # absent, not false, when the measurement held still
        fields["unstable"] = True
    if detail:  # absent, not null, when there is nothing to say
        fields["detail"] = detail
    return Gate.model_validate(fields)


def _judge(spec: GateSpec, reading: Reading, threshold: float) -> Gate:
    """One gate from its reading: a bound can prove a failure, never a pass; so can an unstable
    measurement, unless its worst observation passes as well."""
    status = _check(reading.value, threshold, spec.floor)
    notes = [reading.detail] if reading.detail else []
    extra: dict[str, Any] = {}
    if reading.ci is not None and reading.value is not None:
        status, extra = _judge_interval(spec, reading, threshold)
        if status == INCONCLUSIVE_GATE:
            lo, hi = reading.ci
            more = extra.get("images_to_decide")
            notes.append(
                f"95% CI {spec.format(lo)} .. {spec.format(hi)} on {reading.images} images straddles the budget"
                + (f"; about {more} images would decide it" if more else "; the value sits on the budget")
            )
    if reading.status == "bound" and status in (PASS, INCONCLUSIVE_GATE):
        status = GATE_UNMEASURED
    if reading.unstable is not None:
        worst = f"slowest iteration {spec.format(reading.worst)}"
        if status != PASS:
            notes.append(f"unstable: {reading.unstable}")
        elif _check(reading.worst, threshold, spec.floor) == PASS:
            notes.append(f"unstable: {reading.unstable}; passes all the same: {worst}, within the budget")
        else:
            status = GATE_UNMEASURED
            notes.append(f"unstable: {reading.unstable}; a pass that would not hold ({worst}, over the budget)")
    return _gate(spec, reading.value, threshold, status, "; ".join(notes), reading.unstable is not None, extra)


def _judge_interval(spec: GateSpec, reading: Reading, threshold: float) -> tuple[str, dict[str, Any]]:
    """pass when the whole 95 % interval is within the budget, fail when all of it is beyond,
    else inconclusive (with about how many images would decide it)."""
    from edgebench.measure.proportions import images_to_decide

    lo, hi = reading.ci  # type: ignore[misc]
    extra: dict[str, Any] = {"ci95": [lo, hi], "images": reading.images}
    inside, outside = (lo, hi) if spec.floor else (hi, lo)
    if _check(inside, threshold, spec.floor) == PASS:
        return PASS, extra
    if _check(outside, threshold, spec.floor) == FAIL:
        return FAIL, extra
    if reading.images:
        half = max(reading.value - lo, hi - reading.value)  # type: ignore[operator]
        extra["images_to_decide"] = images_to_decide(reading.value, threshold, half, reading.images)  # type: ignore[arg-type]
    return INCONCLUSIVE_GATE, extra


# --------------------------------------------------------------------------- measured values


def peak_memory_mb(entry: DeviceEntry) -> float | None:
    """Peak RSS of the measuring process, as its sampler saw it; ``None`` when it saw nothing.

    Never ``ru_maxrss``: on Linux a forked child inherits its parent's high-water mark, so it
    can report the host process's memory instead of the agent's."""
    return None if entry.memory_mb is None else _number(entry.memory_mb.peak_rss)


def accuracy_drop(base_entry: DeviceEntry | None, entry: DeviceEntry) -> float | None:
    """Base clean accuracy minus candidate clean accuracy (same device); None if either is missing."""
    if base_entry is None:
        return None
    base_acc = _number(base_entry.clean_accuracy)
    acc = _number(entry.clean_accuracy)
    if base_acc is None or acc is None:
        return None
    return base_acc - acc


def _rows_by_id(entry: DeviceEntry | None) -> dict[str, RobustnessRow]:
    return {} if entry is None else {row.id: row for row in entry.robustness}


def robustness_drop(
    attack_ids: list[str], base_entry: DeviceEntry | None, entry: DeviceEntry
) -> tuple[float | None, list[str], str | None]:
    """Largest base-minus-candidate adversarial accuracy over the run's attacks, in either
    threat model (transfer rows, and white-box rows against the base's white-box rows).

    Returns ``(drop, missing_ids, worst_id)``: ``missing_ids`` are attacks where either side has
    no accuracy. Attacks are *attack_ids* (the run's ``attacks``), else those the base has.
    """
    base_rows = _rows_by_id(base_entry)
    rows = _rows_by_id(entry)
    ids = [i for i in attack_ids if i] or list(base_rows)
    drops: dict[str, float] = {}
    missing: list[str] = []
    for attack_id in ids:
        # each threat model against the base in the same one (white-box rows: "whitebox:<id>");
        # the gate takes the worse of the two
        found = False
        for key in (attack_id, f"whitebox:{attack_id}"):
            row, base_row = rows.get(key), base_rows.get(key)
            c = None if row is None else _number(row.accuracy)
            b = None if base_row is None else _number(base_row.accuracy)
            if key != attack_id:  # white-box: the base's own white-box accuracy on the same images
                same = None if row is None else _number(row.base_whitebox_accuracy)
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


def _pairs(p: Any) -> Any:
    """The results' per-image table as the statistics module's :class:`Pairs` (None stays None)."""
    from edgebench.measure.proportions import Pairs

    return None if p is None else Pairs(p.both, p.base_only, p.cand_only, p.neither)


def robustness_drop_interval(
    base_entry: DeviceEntry | None, entry: DeviceEntry
) -> tuple[tuple[float, float] | None, int | None]:
    """A 95 % interval of the largest worst-case robustness drop: ``[max of the rows' lower bounds, max of
    their upper bounds]`` (the maximum is above every row's lower bound and, when each row's
    upper bound holds, below the largest), and the fewest images a row rests on."""
    from edgebench.measure.proportions import drop_interval

    worst = [
        (drop_interval(b, row.count, r, row.count, _pairs(row.pairs)), row.count)
        for row in entry.robust_accuracy or []
        if row.count
        and (r := _number(row.robust_accuracy)) is not None
        and (b := _number(row.base_robust_accuracy)) is not None
    ]
    if not worst:  # per-attack rows only (a results.json made before worst-case rows): the point value
        return None, None
    # the gate judges the worst case (see worst_case_drop): the max's interval from its rows' paired ones
    return (max(lo for (lo, _), _ in worst), max(hi for (_, hi), _ in worst)), min(n for _, n in worst)


# --------------------------------------------------------------------------- caveats


@dataclass(frozen=True)
class CaveatCheck:
    """One kind of caveat, defined once: its kind (``Caveat.kind``), what it warns of (the
    reports' note), and how it is found on one candidate x device."""

    kind: str
    describes: str
    find: Callable[[GateContext], list[Caveat]]


def _caveat(kind: str, label: str, detail: str) -> Caveat:
    return Caveat.model_validate({"kind": kind, "label": label, "detail": detail})


def _unstable_latency(ctx: GateContext) -> list[Caveat]:
    from edgebench.measure.stats import UNSTABLE_CV

    lat = ctx.entry.latency_ms
    if lat is None or not lat.unstable:
        return []
    return [
        _caveat(
            "unstable",
            "unstable latency",
            f"end-to-end latency CV {fmt.pct(lat.cv, 0)} over {lat.samples} iterations (stable: at most "
            f"{fmt.pct(UNSTABLE_CV, 0)}): p50 {fmt.ms(lat.p50)} ms, p99 {fmt.ms(lat.p99)} ms, slowest "
            f"{fmt.ms(lat.max)} ms; another run may differ as much: re-measure on a quiet device",
        )
    ]


def _failed_sanity(ctx: GateContext) -> list[Caveat]:
    return [
        _caveat("sanity", f"{c.label or 'sanity check warns'} ({c.check})", c.detail)
        for c in ctx.entry.sanity or []
        if c.status == "warn"
    ]


def at_chance(entry: DeviceEntry, num_classes: int) -> str | None:
    """The clean accuracy of *entry* in words when it is within its 95 % interval of chance
    (1 / *num_classes*) or below it; ``None`` when it is clearly above chance or unmeasured."""
    acc = _number(entry.clean_accuracy)
    if acc is None or num_classes < 2:
        return None
    chance = 1.0 / num_classes
    ci = entry.clean_accuracy_ci95
    lo, hi = (ci[0], ci[1]) if ci and len(ci) == 2 and None not in ci else (None, None)
    if lo is None and entry.eval_count:
        from edgebench.robustness.metrics import wilson_interval

        lo, hi = wilson_interval(round(acc * entry.eval_count), entry.eval_count)
    within = lo is not None and hi is not None and lo <= chance <= hi
    if not within and acc > chance:
        return None
    bounds = "" if lo is None else f", 95% CI {fmt.pct(lo)} .. {fmt.pct(hi)}"
    images = "" if not entry.eval_count else f" on {entry.eval_count} images"
    return f"{fmt.pct(acc)}{bounds}{images}, chance {fmt.pct(chance)} ({num_classes} classes)"


def _chance_accuracy(ctx: GateContext) -> list[Caveat]:
    classes = ctx.results.subject.num_classes
    out = []
    own = at_chance(ctx.entry, classes)
    if own:
        out.append(
            _caveat(
                "chance",
                "base at chance" if ctx.is_base else "at chance",
                f"clean accuracy {own}: no better than guessing (random or wrong weights, wrong data or "
                "preprocessing?)" + ("; every drop gate compares with this model" if ctx.is_base else ""),
            )
        )
    base = None if ctx.is_base or ctx.base_entry is None else at_chance(ctx.base_entry, classes)
    if base:
        out.append(
            _caveat(
                "chance",
                "base at chance",
                f"the base's clean accuracy {base}: the accuracy and robustness drops compare with a model "
                "that has learnt nothing; set budgets.min_accuracy",
            )
        )
    return out


CAVEATS: tuple[CaveatCheck, ...] = (
    CaveatCheck(
        "unstable",
        "the gated end-to-end latency varied too much to be trusted (CV above 10%)",
        _unstable_latency,
    ),
    CaveatCheck(
        "sanity",
        "a robustness sanity check warns: the attack, not the model, may be weak (possible gradient masking)",
        _failed_sanity,
    ),
    CaveatCheck(
        "chance",
        "the candidate's or the base's clean accuracy is within its 95% interval of chance (1 / classes)",
        _chance_accuracy,
    ),
)


# --------------------------------------------------------------------------- verdicts


def verdict_status(gates: Iterable[Gate]) -> Status:
    """NOT READY if any gate fails, else UNMEASURED if any is unmeasured, else INCONCLUSIVE if any
    interval straddles its budget, else READY."""
    statuses = [g.status for g in gates]
    if FAIL in statuses:
        return NOT_READY
    if GATE_UNMEASURED in statuses:
        return UNMEASURED
    if INCONCLUSIVE_GATE in statuses:
        return "INCONCLUSIVE"
    return READY


def verdict_for(
    results: Results, candidate: Candidate, device: str, budgets: dict[str, float | None] | None = None
) -> Verdict:
    """The verdict of one candidate on one device, from its measurements and the budgets."""
    budgets = budgets_of(results) if budgets is None else budgets
    entry = device_entry(candidate, device)
    base = base_candidate(results)
    base_entry = None if base is None else base.devices.get(device)
    ctx = GateContext(results, entry, base_entry, base is not None, base is not None and base.name == candidate.name)
    gates = [
        _judge(spec, spec.measure(ctx), threshold)
        for spec in GATES
        if (threshold := budgets.get(spec.budget)) is not None
    ]
    verdict: dict[str, Any] = {"status": verdict_status(gates), "gates": gates}
    if entry.unmeasured_reason:  # measurements skipped on purpose: say why (absent otherwise)
        verdict["reason"] = entry.unmeasured_reason
    verdict["caveats"] = [c for check in CAVEATS for c in check.find(ctx)]
    return Verdict.model_validate(verdict)


def iter_cells(results: Results) -> Iterator[tuple[Candidate, str]]:
    """Every (candidate, device name) pair of the run, candidates in order, devices in order."""
    devices = device_names(results)
    for cand in results.candidates:
        for dev in devices:
            yield cand, dev


def with_verdicts(results: Results) -> Results:
    """*results* with ``candidates[*].devices[dev].verdict`` evaluated for every candidate x
    device: a new :class:`Results`, *results* is not changed. The one place verdicts are made.

    A device the candidate was never measured on gets an entry with nothing measured and its
    verdict (every gate unmeasured), so it cannot silently drop out of CI.
    """
    budgets = budgets_of(results)
    devices = device_names(results)
    candidates = []
    for cand in results.candidates:
        entries = dict(cand.devices)
        for dev in devices:
            verdict = verdict_for(results, cand, dev, budgets)
            entry = entries.get(dev)
            entries[dev] = (empty_entry() if entry is None else entry).model_copy(update={"verdict": verdict})
        candidates.append(cand.model_copy(update={"devices": entries}))
    return results.model_copy(update={"candidates": candidates})


def _stale(results: Results) -> str | None:
    """Why the verdicts *results* holds cannot be read as they are (None: they can): a cell
    without one, or one judged against other budgets than ``results.budgets``."""
    budgets = budgets_of(results)
    expected = [(g.name, budgets[g.budget]) for g in GATES if budgets[g.budget] is not None]
    for cand, dev in iter_cells(results):
        entry = cand.devices.get(dev)
        if entry is None or entry.verdict is None:
            return f"no verdict for {cand.name} on {dev}"
        if entry.verdict.caveats is None:
            return f"the verdict of {cand.name} on {dev} was made before verdicts carried caveats"
        if [(g.name, g.threshold) for g in entry.verdict.gates] != expected:
            return f"the verdict of {cand.name} on {dev} was judged against other budgets"
    return None


def judged(results: Results | dict, source: str = "results.json") -> Results:
    """*results* (typed, or a parsed results.json, validated here) with its verdicts: as they
    are when every candidate x device has one judged against its budgets (results.json as
    assembled), else evaluated by :func:`with_verdicts`."""
    typed = as_results(results, source)
    why = _stale(typed)
    if why is None:
        return typed
    log.debug("%s: verdicts evaluated (%s)", source, why)
    return with_verdicts(typed)


def verdicts(results: Results | dict) -> list[dict]:
    """Flat list ``[{candidate, device, status, gates, reason, caveats}]``, as results.json holds them."""
    out = []
    for cand, dev in iter_cells(judged(results)):
        verdict = cand.devices[dev].verdict
        assert verdict is not None  # judged: every cell has one
        out.append(
            {
                "candidate": cand.name,
                "device": dev,
                "status": verdict.status,
                "gates": [g.model_dump(mode="json", exclude_unset=True) for g in verdict.gates],
                "reason": verdict.reason,
                "caveats": [c.model_dump(mode="json") for c in verdict.caveats or []],
            }
        )
    return out


def gate_outcome(results: Results | dict, fail_on: str = "not-ready") -> tuple[int, str]:
    """The process exit code for CI, from the verdicts, and one line saying why ("" for 0).

    ``never`` -> 0; ``not-ready`` -> 1 when any verdict is NOT READY, else 3 when every verdict is
    UNMEASURED (the run judged nothing, so it cannot pass a gate); ``unmeasured`` -> 1 when any is
    NOT READY, else 3 when any is UNMEASURED. Otherwise 0.
    """
    if fail_on not in FAIL_ON_CHOICES:
        raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
    if fail_on == "never":
        return EXIT_OK, ""
    statuses = [v["status"] for v in verdicts(results)]
    if NOT_READY in statuses:
        return EXIT_NOT_READY, f"{statuses.count(NOT_READY)} candidate x device verdict(s) NOT READY"
    if all(s == UNMEASURED for s in statuses):
        return EXIT_UNMEASURED, "every verdict is UNMEASURED: the run judged nothing, so it passes no gate"
    if fail_on == "unmeasured" and UNMEASURED in statuses:
        return EXIT_UNMEASURED, f"{statuses.count(UNMEASURED)} verdict(s) UNMEASURED (--fail-on unmeasured)"
    if fail_on in ("inconclusive", "unmeasured") and INCONCLUSIVE in statuses:
        return EXIT_INCONCLUSIVE, (
            f"{statuses.count(INCONCLUSIVE)} verdict(s) INCONCLUSIVE: an interval straddles its budget "
            f"(--fail-on {fail_on}); more images would decide"
        )
    return EXIT_OK, ""


def exit_code(results: Results | dict, fail_on: str = "not-ready") -> int:
    """The process exit code for CI (:func:`gate_outcome`)."""
    return gate_outcome(results, fail_on)[0]
