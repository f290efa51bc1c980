"""The report as data: sections of tables built once from ``results.json``.

Markdown and HTML are two renderings of the same :class:`~edgebench.report.tables.Report`, so they can never disagree
about a number. Each :class:`~edgebench.report.tables.Cell` keeps the raw JSON value next to its display text; the HTML
writes it into ``data-value`` so a test (or a script) can read the exact numbers back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgebench.report import format as fmt
from edgebench.report.gates import (
    CAVEATS,
    GATES,
    base_candidate,
    budgets_of,
    device_entry,
    device_names,
    judged,
    peak_memory_mb,
)
from edgebench.report.robust_tables import robustness_extra_tables
from edgebench.report.search_tables import search_section
from edgebench.report.seeds_tables import seeds_sections
from edgebench.report.tables import Cell, Report, Section, Table
from edgebench.results import Candidate, DeviceEntry, Gate, HostDevice, LatencyStats, Results

TOP_OPS = 5


def _c(text: str, value: Any = None, key: str = "", status: str = "") -> Cell:
    return Cell(text=text, value=value, key=key, status=status)


def _name(cand: Candidate) -> Cell:
    return Cell(text=cand.name, value=cand.name, key="candidate")


def _metric(value: Any, formatter: Callable[[Any], str], key: str) -> Cell:
    return Cell(text=formatter(value), value=value, key=key, status="unmeasured" if value is None else "")


def status_class(status: str) -> str:
    return status.lower().replace(" ", "-")


# --------------------------------------------------------------------------- sections


# A gate's word in its cell, by status and whether its measurement was unstable: a pass on an
# unstable measurement never reads as a plain "pass", and one that cannot pass reads "unstable".
_GATE_WORDS = {
    ("pass", False): ("pass", "pass"),
    ("fail", False): ("FAIL", "fail"),
    ("unmeasured", False): ("unmeasured", "unmeasured"),
    ("pass", True): ("pass (unstable)", "warn"),
    ("fail", True): ("FAIL (unstable)", "fail"),
    ("unmeasured", True): ("unstable", "unmeasured"),
    ("inconclusive", False): ("inconclusive", "inconclusive"),
    ("inconclusive", True): ("inconclusive (unstable)", "inconclusive"),
}


def _gate_cell(gate: Gate | None, key: str, format_value: Callable[[Any], str]) -> Cell:
    if gate is None:
        return Cell(text=fmt.UNMEASURED, key=key, status="unmeasured")
    word, status = _GATE_WORDS[(gate.status, bool(gate.unstable))]
    return Cell(
        text=f"{format_value(gate.value)} {word}" if gate.value is not None else fmt.UNMEASURED,
        value=gate.value,
        key=key,
        status=status,
        threshold=gate.threshold,
        detail=gate.detail or "",
    )


# how adaptive sampling ended for a verdict (results.py Adaptive.outcome), in the verdict table
_ADAPTIVE_WORDS = {
    "decided": "decided",
    "cap": "cap reached",
    "accuracy": "accuracy undecided, every image used",
    "stopped": "stopped",
}


def images_cell(entry: DeviceEntry, gates: list[Gate]) -> Cell:
    """The images a verdict rests on: the clean ones its accuracy gates read and the attacked ones
    its robustness gate reads, and what adaptive sampling (``attacks.adaptive``) added."""
    clean = max((g.images for g in gates if g.name != "robustness_drop" and g.images), default=None)
    attacked = next((g.images for g in gates if g.name == "robustness_drop" and g.images), None)
    parts = ([f"clean {fmt.count(clean)}"] if clean else []) + ([f"attacked {fmt.count(attacked)}"] if attacked else [])
    a = entry.adaptive
    detail = ""
    if a is not None:
        rounds = f"{a.rounds} round{'s' if a.rounds != 1 else ''}"
        parts.append(f"(adaptive: +{fmt.count(a.added)} in {rounds}, {_ADAPTIVE_WORDS[a.outcome]})")
        detail = (
            f"{fmt.count(a.images_before)} -> {fmt.count(a.images)} attacked images, cap {fmt.count(a.cap)}: {a.detail}"
        )
    # the value: the fewest images a gate rests on (the attacked ones, where the robustness gate is set)
    return Cell(text=" ".join(parts) or "-", value=attacked or clean, key="images", detail=detail)


def verdict_table(results: Results | dict, device: str) -> Table:
    """Each candidate's verdict on *device*, the caveats beside it, and its gates, as
    results.json holds them."""
    results = judged(results)
    budgets = budgets_of(results)
    gate_specs = [g for g in GATES if budgets.get(g.budget) is not None]
    columns = ["Candidate", "Verdict", "Caveats"] + [
        f"{g.label} {g.sign} {g.format(budgets[g.budget])}" for g in gate_specs
    ]
    columns.append("Images")
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        v = entry.verdict
        assert v is not None  # judged: every candidate x device has one
        by_name = {g.name: g for g in v.gates}
        labels = [c.label for c in v.caveats or []]
        row = [
            _name(cand),
            Cell(
                text=v.status,
                value=v.status,
                key="verdict",
                status=status_class(v.status),
                detail=v.reason or "",  # why it was not measured, when skipped on purpose
            ),
            Cell(text="; ".join(labels), value=labels, key="caveats", status="warn" if labels else ""),
        ]
        row += [_gate_cell(by_name.get(spec.name), spec.name, spec.format) for spec in gate_specs]
        row.append(images_cell(entry, v.gates))
        rows.append(tuple(row))
    note = " ".join(f"{g.label.capitalize()}: {g.describes}." for g in gate_specs)
    if not gate_specs:
        note = "No budgets were set: every candidate is READY by default."
    note += (
        " Images: what the verdict's interval gates rest on (clean images for accuracy, attacked images every "
        "attack covered for robustness) and, with attacks.adaptive, the images adaptive sampling added."
    )
    return Table(f"verdict-{device}", f"Verdict on {device}", tuple(columns), tuple(rows), note)


def caveats_table(results: Results, device: str) -> Table | None:
    """Every caveat of every verdict on *device*, with its numbers (None when there is none)."""
    rows = []
    for cand in results.candidates:
        v = device_entry(cand, device).verdict
        if v is None:
            continue
        for c in v.caveats or []:
            rows.append(
                (
                    _name(cand),
                    _c(v.status, v.status, "verdict", status_class(v.status)),
                    _c(c.label, c.kind, "caveat", "warn"),
                    _c(c.detail, c.detail, "caveat.detail"),
                )
            )
    if not rows:
        return None
    note = " ".join(f"{c.kind.capitalize()}: {c.describes}." for c in CAVEATS)
    return Table(
        f"caveats-{device}", f"Caveats on {device}", ("Candidate", "Verdict", "Caveat", "Details"), tuple(rows), note
    )


def _caveat_summary(results: Results) -> str:
    """One line for the headline: each caveat label and the candidate x device cells it is on."""
    where: dict[str, list[str]] = {}
    for cand, dev in ((c, d) for c in results.candidates for d in c.devices):
        verdict = cand.devices[dev].verdict
        for c in [] if verdict is None else verdict.caveats or []:
            where.setdefault(c.label, []).append(f"{cand.name} on {dev}")
    return "; ".join(f"{label}: {', '.join(cells)}" for label, cells in where.items())


def _adaptive_summary(results: Results) -> str:
    """One headline line when the study ran adaptive sampling: its cap and each verdict it grew."""
    attacks = results.study.get("attacks") or {}
    if not attacks.get("adaptive"):
        return ""
    cells = [
        f"{cand.name} on {dev}: {fmt.count(a.images_before)} -> {fmt.count(a.images)} images, "
        f"{_ADAPTIVE_WORDS[a.outcome]}"
        for cand in results.candidates
        for dev, e in cand.devices.items()
        if (a := e.adaptive) is not None
    ]
    cap = attacks.get("adaptive_max_images")
    head = f"on, at most {fmt.count(cap)} attacked images a verdict" if cap else "on, up to every evaluation image"
    return f"{head}; " + ("; ".join(cells) if cells else "no verdict was undecided")


def candidates_table(results: Results) -> Table:
    rows = []
    for cand in results.candidates:
        art, chk, recipe = cand.artifact, cand.export_check, cand.recipe
        parts = []
        if recipe.prune:
            parts.append(fmt.recipe("prune", recipe.prune))
        if recipe.quantize:
            parts.append(fmt.recipe("quantize", recipe.quantize))
        precision = None if art is None else art.precision
        sha = None if art is None else art.sha256
        checker = None if chk is None else chk.onnx_checker
        rows.append(
            (
                _name(cand),
                _c("; ".join(parts) or "none (base)", key="recipe"),
                _c(fmt.text(None if art is None else art.format) + " " + fmt.text(precision), precision, "precision"),
                _metric(None if art is None else art.size_bytes, fmt.size, "size_bytes"),
                _c(fmt.short_sha(sha), sha, "sha256"),
                _metric(cand.params, fmt.count, "params"),
                _metric(cand.macs, fmt.si, "macs"),
                _c(fmt.text(checker), checker, "onnx_checker"),
                _metric(None if chk is None else chk.max_abs_diff, fmt.sci, "export_max_abs_diff"),
                _metric(None if chk is None else chk.top1_agreement, fmt.pct, "export_top1_agreement"),
            )
        )
    return Table(
        "candidates",
        "Candidates and artifacts",
        (
            "Candidate",
            "Recipe",
            "Artifact",
            "Size",
            "sha256",
            "Params",
            "MACs",
            "onnx.checker",
            "Export max |diff|",
            "Export top-1 agreement",
        ),
        tuple(rows),
        "Export check: the ONNX artifact against the PyTorch module on the same inputs (host).",
    )


def latency_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        for kind, key, lat in (
            ("end-to-end", "latency_ms", entry.latency_ms),
            ("compute", "latency_compute_ms", entry.latency_compute_ms),
        ):
            points = (lat.p50, lat.p90, lat.p99, lat.mean, lat.min, lat.max) if lat is not None else (None,) * 6
            unstable = None if lat is None else lat.unstable
            rows.append(
                (
                    _name(cand),
                    _c(kind, kind, "latency_kind"),
                    *(
                        _metric(v, fmt.ms, f"{key}.{p}")
                        for p, v in zip(("p50", "p90", "p99", "mean", "min", "max"), points, strict=True)
                    ),
                    _metric(None if lat is None else lat.cv, fmt.pct, f"{key}.cv"),
                    Cell(
                        text=fmt.flag(unstable),
                        value=unstable,
                        key=f"{key}.unstable",
                        status="fail" if unstable else ("unmeasured" if unstable is None else ""),
                    ),
                    _metric(None if lat is None else lat.samples, fmt.count, f"{key}.samples"),
                    _ci_cell(None if lat is None else lat.p99_ci, f"{key}.p99_ci"),
                )
            )
    return Table(
        f"latency-{device}",
        "Latency, batch 1 (ms)",
        ("Candidate", "Timing", "p50", "p90", "p99", "mean", "min", "max", "CV", "unstable", "samples", "p99 95% CI"),
        tuple(rows),
        "end-to-end: host array in, host array out, copies included (what an application sees); "
        "compute: the engine alone with inputs already in place. Unstable: CV above 10%. "
        "p99 95% CI: order-statistic interval; 'too few samples' below the 368 a p99 bound needs.",
    )


def _speedup_text(ratio: float | None) -> str:
    return fmt.UNMEASURED if ratio is None else f"{ratio:.2f}x"


def speedup_table(results: Results, device: str) -> Table | None:
    """Each candidate's speed-up over base per batch and timing: from paired interleaved rounds
    with a 95 % interval when the run timed them so (``profile.interleave``), else the ratio of
    two separately timed medians, marked as having no interval. None without a base."""
    base = next((c for c in results.candidates if c.name == "base"), None)
    if base is None:
        return None
    base_runs = {(r.batch, r.mode): r for r in device_entry(base, device).batch_sweep or []}
    rows = []
    drift_notes: list[str] = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        tp = entry.timing_pass
        if tp is not None and tp.drift is not None and tp.drift.drifted:
            d = tp.drift
            note = (
                f"the device changed state during the timing pass of {', '.join(tp.models)}: base "
                f"{fmt.ms(d.first_p50_ms)} ms in its first rounds, {fmt.ms(d.last_p50_ms)} ms in its last "
                f"({d.change:+.0%})"
            )
            if d.loadavg_first is not None and d.loadavg_last is not None:
                note += f", load average {d.loadavg_first:.1f} -> {d.loadavg_last:.1f}"
            if note not in drift_notes:
                drift_notes.append(note)
        if cand.name == "base":
            continue
        for run in entry.batch_sweep or []:
            ref = base_runs.get((run.batch, run.mode))
            sp = run.speedup
            ratio: float | None
            if sp is not None:
                ratio, ci, how = sp.ratio, sp.ci95, f"{sp.rounds} paired rounds"
            else:
                ratio = ref.latency_ms.p50 / run.latency_ms.p50 if ref is not None and run.latency_ms.p50 else None
                ci, how = None, "separate timings: no interval"
            lo, hi = (ci or [None, None])[:2]
            rows.append(
                (
                    _name(cand),
                    _metric(run.batch, fmt.count, "batch"),
                    _c(fmt.mode(run.mode), run.mode, "mode"),
                    _metric(None if ref is None else ref.latency_ms.p50, fmt.ms, "base_p50"),
                    _metric(run.latency_ms.p50, fmt.ms, "p50"),
                    _c(_speedup_text(ratio), ratio, "speedup.ratio"),
                    Cell(
                        text=f"{lo:.2f}x .. {hi:.2f}x" if lo is not None and hi is not None else "none",
                        value=list(ci) if ci else None,
                        key="speedup.ci95",
                        status="" if lo is not None else "unmeasured",
                    ),
                    _c(how, how, "speedup.method"),
                )
            )
    if not rows:
        return None
    note = (
        "Speed-up = base p50 / candidate p50 (> 1: faster). Interleaved timing (profile.interleave) runs every "
        "candidate of a device in rotating rounds in one session; the speed-up is the geometric mean of the "
        "per-round ratios and its 95% interval a t interval over the rounds, so load or clock changes that "
        "hit both sides of a round cancel."
    )
    if drift_notes:
        note += " Warning: " + "; ".join(drift_notes) + "."
    return Table(
        f"speedup-{device}",
        "Speed-up over base",
        ("Candidate", "Batch", "Timing", "base p50 (ms)", "p50 (ms)", "Speed-up", "95% CI", "From"),
        tuple(rows),
        note,
    )


def _ci_cell(ci: list | None, key: str) -> Cell:
    """A percentile's 95 % interval as text; flagged when too few samples bound it."""
    if ci is None or len(ci) != 2:
        return Cell(text=fmt.UNMEASURED, value=None, key=key, status="unmeasured")
    lo, hi = ci
    if hi is None or lo is None:
        return Cell(text=f"too few samples ({fmt.ms(lo)} .. ?)", value=list(ci), key=key, status="unmeasured")
    return Cell(text=f"{fmt.ms(lo)} .. {fmt.ms(hi)}", value=list(ci), key=key)


def throughput_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        sweep = entry.batch_sweep or []
        if not sweep:
            rows.append(
                (
                    _name(cand),
                    _c(fmt.UNMEASURED, key="batch", status="unmeasured"),
                    _c("", key="mode"),
                    _metric(None, fmt.ms, "batch.p50"),
                    _metric(None, fmt.ms, "batch.p99"),
                    _metric(None, fmt.ips, "batch.throughput_ips"),
                    _metric(entry.throughput_ips, fmt.ips, "throughput_ips"),
                )
            )
            continue
        for i, point in enumerate(sweep):
            lat: LatencyStats = point.latency_ms
            rows.append(
                (
                    _name(cand),
                    _metric(point.batch, fmt.count, "batch"),
                    _c(fmt.mode(point.mode), point.mode, "mode"),
                    _metric(lat.p50, fmt.ms, "batch.p50"),
                    _metric(lat.p99, fmt.ms, "batch.p99"),
                    _metric(lat.throughput_ips, fmt.ips, "batch.throughput_ips"),
                    _metric(entry.throughput_ips, fmt.ips, "throughput_ips") if i == 0 else _c(""),
                )
            )
    return Table(
        f"throughput-{device}",
        "Throughput and batch sweep",
        ("Candidate", "Batch", "Timing", "p50 (ms)", "p99 (ms)", "items/s", "best items/s"),
        tuple(rows),
    )


def memory_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        mem, energy = entry.memory_mb, entry.energy
        tel = entry.telemetry or {}  # the sampler's own summary: open-ended
        rows.append(
            (
                _name(cand),
                *(
                    _metric(v, fmt.mb, f"memory_mb.{k}")
                    for k, v in (
                        ("rss_before_load", None if mem is None else mem.rss_before_load),
                        ("rss_after_load", None if mem is None else mem.rss_after_load),
                        ("peak_rss", None if mem is None else mem.peak_rss),
                        ("ru_maxrss", None if mem is None else mem.ru_maxrss),
                    )
                ),
                _metric(peak_memory_mb(entry), fmt.mb, "gated_peak_mb"),
                _c(fmt.text(tel.get("source")), tel.get("source"), "telemetry.source"),
                _metric(tel.get("power_mean_mw"), lambda v: fmt.num(v, 0), "telemetry.power_mean_mw"),
                _metric(
                    None if energy is None else energy.gross_mj_per_item,
                    lambda v: fmt.num(v, 4),
                    "energy.gross_mj_per_item",
                ),
                _metric(
                    None if energy is None else energy.net_mj_per_item,
                    lambda v: fmt.num(v, 4),
                    "energy.net_mj_per_item",
                ),
            )
        )
    return Table(
        f"memory-{device}",
        "Memory (MB) and power",
        (
            "Candidate",
            "RSS before load",
            "RSS after load",
            "peak RSS",
            "ru_maxrss",
            "gated peak",
            "telemetry",
            "mean power (mW)",
            "energy mJ/item",
            "net mJ/item",
        ),
        tuple(rows),
        "Measured in an isolated process on the device; the memory gate uses peak RSS "
        "(ru_maxrss when the sampler has no peak; the agent's own peak, not its parent's). Energy: "
        "batch 1, end-to-end, the board's input rail over that timed window; net is above the idle "
        "baseline measured just before.",
    )


def accuracy_table(results: Results, device: str) -> Table:
    base = base_candidate(results)
    base_acc = None if base is None else device_entry(base, device).clean_accuracy
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        fid = entry.fidelity
        acc = entry.clean_accuracy
        drop = None if (acc is None or base_acc is None) else base_acc - acc
        rows.append(
            (
                _name(cand),
                _metric(acc, fmt.pct, "clean_accuracy"),
                _c(fmt.ci(entry.clean_accuracy_ci95), entry.clean_accuracy_ci95, "clean_accuracy_ci95"),
                _metric(drop, fmt.pp, "accuracy_drop"),
                _metric(entry.eval_count, fmt.count, "eval_count"),
                _metric(None if fid is None else fid.top1_agreement, fmt.pct, "fidelity.top1_agreement"),
                _metric(None if fid is None else fid.max_abs_logit_diff, fmt.sci, "fidelity.max_abs_logit_diff"),
                _metric(None if fid is None else fid.mean_abs_logit_diff, fmt.sci, "fidelity.mean_abs_logit_diff"),
            )
        )
    return Table(
        f"accuracy-{device}",
        "Clean accuracy and fidelity to the base",
        (
            "Candidate",
            "Clean accuracy",
            "95% CI",
            "Drop vs base",
            "Images",
            "Top-1 agreement with base",
            "Max |logit diff|",
            "Mean |logit diff|",
        ),
        tuple(rows),
        "Accuracy of the deployed artifact on the device; 95% Wilson score intervals. "
        "Fidelity compares each candidate's logits with the base's on the same clean inputs.",
    )


def robustness_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        robust = [r for r in entry.robustness if r.setting in (None, "transfer")]
        if not robust:
            rows.append(
                (
                    _name(cand),
                    _c(fmt.UNMEASURED, status="unmeasured", key="attack"),
                    _c(""),
                    _c(""),
                    _metric(None, fmt.count, "robustness.count"),
                    _metric(None, fmt.pct, "robustness.clean_accuracy"),
                    _metric(None, fmt.pct, "robustness.accuracy"),
                    _c(fmt.UNMEASURED, key="robustness.accuracy_ci95"),
                    _metric(None, fmt.pct, "robustness.transfer_success_rate"),
                    _metric(None, fmt.pct, "robustness.agreement"),
                )
            )
            continue
        for row in robust:
            rows.append(
                (
                    _name(cand),
                    _c(fmt.text(row.attack), row.id, "attack"),
                    _c(fmt.text(row.norm), row.norm, "norm"),
                    _c(fmt.eps(row.norm, row.eps), row.eps, "eps"),
                    _metric(row.count, fmt.count, "robustness.count"),
                    _metric(row.clean_accuracy, fmt.pct, "robustness.clean_accuracy"),
                    _metric(row.accuracy, fmt.pct, "robustness.accuracy"),
                    _c(fmt.ci(row.accuracy_ci95), row.accuracy_ci95, "robustness.accuracy_ci95"),
                    _metric(row.transfer_success_rate, fmt.pct, "robustness.transfer_success_rate"),
                    _metric(row.agreement, fmt.pct, "robustness.agreement"),
                )
            )
    return Table(
        f"robustness-{device}",
        "Robustness to adversarial inputs crafted on the base",
        (
            "Candidate",
            "Attack",
            "Norm",
            "eps",
            "Images",
            "Clean accuracy, same images",
            "Accuracy",
            "95% CI",
            "Transfer success",
            "Agreement with base",
        ),
        tuple(rows),
        "Adversarial sets are crafted white-box on the base model and replayed through each deployed "
        "artifact. Images: how many were attacked; read each accuracy against the clean accuracy on those "
        "same images, not against the clean accuracy on every evaluation image. Transfer success: of the "
        "examples that fooled the base and that the candidate got right when clean, the share that also fool "
        "the candidate.",
    )


def auc_table(results: Results, device: str) -> Table | None:
    families: list[str] = []
    for cand in results.candidates:
        for fam in device_entry(cand, device).robustness_auc or {}:
            if fam not in families:
                families.append(fam)
    if not families:
        return None
    rows = []
    for cand in results.candidates:
        auc = device_entry(cand, device).robustness_auc or {}
        rows.append(
            (_name(cand), *(_metric(auc.get(f), lambda v: fmt.num(v, 3), f"robustness_auc.{f}") for f in families))
        )
    return Table(
        f"auc-{device}",
        "Robustness curve area (normalized, higher is more robust)",
        ("Candidate", *families),
        tuple(rows),
    )


def blackbox_table(results: Results, device: str) -> Table | None:
    """The decision-based attack whose queries went to each deployed artifact (None if none ran)."""
    runs = [(cand, device_entry(cand, device).blackbox) for cand in results.candidates]
    if not any(bb for _, bb in runs):
        return None
    eps = sorted({r.eps for _, bb in runs if bb for r in bb.rows})
    rows = []
    for cand, bb in runs:
        acc = {} if bb is None else {r.eps: r.accuracy for r in bb.rows}
        rows.append(
            (
                _name(cand),
                _c(
                    fmt.text(f"{bb.attack} {bb.norm}") if bb else fmt.UNMEASURED,
                    None if bb is None else bb.attack,
                    "blackbox.attack",
                    "" if bb else "unmeasured",
                ),
                _metric(None if bb is None else bb.count, fmt.count, "blackbox.count"),
                _metric(None if bb is None else bb.max_queries, fmt.count, "blackbox.max_queries"),
                _metric(None if bb is None else bb.queries_mean, lambda v: fmt.num(v, 1), "blackbox.queries_mean"),
                _metric(
                    None if bb is None else bb.median_distance, lambda v: fmt.num(v, 3), "blackbox.median_distance"
                ),
                *(_metric(acc.get(e), fmt.pct, f"blackbox.accuracy@{e:g}") for e in eps),
            )
        )
    return Table(
        f"blackbox-{device}",
        "Black-box attack on the deployed engine",
        (
            "Candidate",
            "Attack",
            "Images",
            "Query budget",
            "Queries used (mean)",
            "Median distance",
            *(f"Accuracy at eps {e:g}" for e in eps),
        ),
        tuple(rows),
        "A decision-based attack (HopSkipJump or Boundary) whose every query went to this artifact on this "
        "device through the agent; median distance over images the engine classified right when clean.",
    )


def ops_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        ops = device_entry(cand, device).op_profile
        if not ops:
            rows.append(
                (
                    _name(cand),
                    _c(fmt.UNMEASURED, status="unmeasured", key="op_type"),
                    *(
                        _metric(None, f, k)
                        for f, k in (
                            (fmt.count, "node_count"),
                            (fmt.count, "calls"),
                            (fmt.ms, "total_ms"),
                            (fmt.ms, "mean_ms"),
                            (fmt.pct, "share"),
                        )
                    ),
                )
            )
            continue
        top = sorted(ops, key=lambda o: -(o.total_ms or 0))[:TOP_OPS]
        for op in top:
            rows.append(
                (
                    _name(cand),
                    _c(fmt.text(op.op_type), op.op_type, "op_type"),
                    _metric(op.node_count, fmt.count, "node_count"),
                    _metric(op.calls, fmt.count, "calls"),
                    _metric(op.total_ms, fmt.ms, "total_ms"),
                    _metric(op.mean_ms, lambda v: fmt.num(v, 4), "mean_ms"),
                    _metric(op.share, fmt.pct, "share"),
                )
            )
    return Table(
        f"ops-{device}",
        f"Top {TOP_OPS} operators by time",
        ("Candidate", "Operator", "Nodes", "Calls", "Total (ms)", "Mean (ms)", "Share"),
        tuple(rows),
        "From the runtime's own profiler on the device.",
    )


def roofline_table(results: Results, device: str) -> Table:
    rows = []
    for cand in results.candidates:
        roof = device_entry(cand, device).roofline
        if roof is None:
            rows.append(
                (
                    _name(cand),
                    _metric(None, lambda v: fmt.num(v, 2), "roofline.achieved_gops"),
                    _metric(None, lambda v: fmt.num(v, 1), "roofline.peak_gops"),
                    _metric(None, lambda v: fmt.pct(v, 2), "roofline.share_of_peak"),
                    _c(fmt.text(None), None, "roofline.peak_kind"),
                    _c(fmt.UNMEASURED, None, "roofline.precision"),
                )
            )
            continue
        rows.append(
            (
                _name(cand),
                _metric(roof.achieved_gops, lambda v: fmt.num(v, 2), "roofline.achieved_gops"),
                _metric(roof.peak_gops, lambda v: fmt.num(v, 1), "roofline.peak_gops"),
                _metric(roof.share_of_peak, lambda v: fmt.pct(v, 2), "roofline.share_of_peak"),
                _c(fmt.text(roof.peak_kind), roof.peak_kind, "roofline.peak_kind"),
                _c(fmt.text(roof.precision), roof.precision, "roofline.precision"),
            )
        )
    return Table(
        f"roofline-{device}",
        "Roofline estimate",
        ("Candidate", "Achieved GOPS", "Peak GOPS", "Share of peak", "Peak is", "Precision"),
        tuple(rows),
        "Achieved operations per second on the device against the peak in its device profile: "
        "'measured' (a microbenchmark on the device, e.g. the local device's numpy sgemm) or "
        "'theoretical' (datasheet or cores x clock x ops/cycle).",
    )


def _kv_table(key: str, title: str, mapping: dict, note: str = "") -> Table:
    rows = tuple(
        (_c(str(k), k, "name"), _c(fmt.text(v), v if not isinstance(v, (dict, list)) else None, f"env.{k}"))
        for k, v in mapping.items()
    )
    return Table(key, title, ("Name", "Value"), rows, note)


def device_environment_table(results: Results, device: str) -> Table:
    merged: dict[str, Any] = {}
    info = results.devices.get(device)
    if info is not None:
        for k, v in (("name", info.name), ("kind", info.kind)):
            if v is not None:
                merged[f"device.{k}"] = v
        for k, v in info.profile.items():  # the device profile: open-ended
            merged[f"profile.{k}"] = v
    for cand in results.candidates:
        for k, v in (device_entry(cand, device).environment or {}).items():
            if k in ("precision",):
                continue
            merged.setdefault(k, v)
    return _kv_table(
        f"device-env-{device}",
        f"Device {device}: environment",
        merged,
        "As the agent recorded it on the device (first candidate that reported each key).",
    )


# --------------------------------------------------------------------------- the whole report


def describe_source(source: dict | None) -> str:
    """Where the base model came from, in one line: source, files with sha256, weights."""
    if not source:
        return "-"
    files = ", ".join(f"{f['role']} {f['path']} (sha256 {f['sha256'][:16]}…)" for f in source.get("files") or [])
    parts = [f"{source.get('kind')}: {source.get('spec')}"]
    if files:
        parts.append(files)
    parts.append(f"weights: {source.get('weights', '-')}")
    if source.get("normalize"):
        parts.append(
            f"normalize mean {source['normalize']['mean']} std {source['normalize']['std']} (inside the model)"
        )
    graph = source.get("graph")
    if graph:  # an ONNX file: deployed as it is, or with the edits listed
        parts.append(
            f"ONNX opset {graph.get('opset')} from {graph.get('producer') or 'an unnamed producer'}, layout "
            f"{graph.get('layout')}{' (detected)' if graph.get('layout_detected') else ''}, batch {graph.get('batch')}; "
            f"deployed as base with: {', '.join(graph.get('edits') or [])}"
        )
    out = source.get("output")
    if out:
        parts.append(f"the model returns {out['kind']} ({out['detected_by']}): attacks use its {out['attacked']}")
    conv = source.get("conversion_check") or {}
    if conv.get("failed"):
        parts.append(f"no PyTorch model: {conv['failed']}")
    elif conv.get("graph_edits"):
        parts.append(f"converted to PyTorch after: {', '.join(conv['graph_edits'])}")
    return "; ".join(parts)


def describe_host_device(hd: HostDevice | None) -> str:
    """Where host work (fine-tuning, gradients, crafting, white-box models) ran, for the headline."""
    if hd is None:
        return "not recorded (no host PyTorch work in this run folder)"
    where = hd.device if hd.name is None else f"{hd.device} ({hd.name}, CUDA {fmt.text(hd.cuda)})"
    asked = "" if hd.requested == hd.device else f", host.device {hd.requested}"
    earlier = f"; earlier runs: {', '.join(hd.earlier)}" if hd.earlier else ""
    return f"{where}{asked}{earlier}"


def describe_pruning(p: dict) -> str:
    """One line: params and MACs removed (as reached, not as asked), the layers left whole, and
    the note when accuracy fell after short fine-tuning."""
    left = p.get("layers_left") or []
    shown = ", ".join(f"{x['layer']} ({x['reason']})" for x in left[:3]) + (
        f", and {len(left) - 3} more" if len(left) > 3 else ""
    )
    macs = "unmeasured" if p.get("mac_ratio") is None else f"{p['mac_ratio']:.1%}"
    return (
        f"params {p.get('params_before')} -> {p.get('params_after')} ({p.get('param_ratio', 0):.1%} removed), "
        f"MACs {macs} removed; {len(left)} layer(s) left whole" + (f": {shown}" if left else "")
    ) + (f". Note: {p['finetune_note']}" if p.get("finetune_note") else "")


def describe_accuracy_control(ac: dict) -> str:
    """One line: the budget, met or not, the nodes kept in float, accuracy at each step."""
    kept = ", ".join(f"{n['name']} ({n['op_type']})" for n in ac.get("kept_float") or []) or "none"
    steps = "; ".join(
        f"step {s['step']}: accuracy {s['accuracy']:.3f} (drop {s['accuracy_drop']:+.3f}), {s['latency_ms']:.3f} ms"
        for s in ac.get("steps") or []
    )
    status = "met" if ac.get("met") else f"NOT met: {ac.get('reason')}"
    return (
        f"max_accuracy_drop {ac.get('max_accuracy_drop')} {status}; fp32 accuracy {ac.get('fp32_accuracy', 0):.3f}; "
        f"kept in float: {kept}; {steps} (latency indicative: {ac.get('latency_note', 'host CPU')})"
    )


def build_report(results: Results | dict) -> Report:
    """Every section of the report, in reading order, from *results* (typed, or a results.json
    object, validated here) and the verdicts it holds."""
    results = judged(results)
    subject = results.subject
    budgets = budgets_of(results)
    statuses = [v.status for cand in results.candidates for e in cand.devices.values() if (v := e.verdict) is not None]
    counts = {s: statuses.count(s) for s in ("READY", "NOT READY", "INCONCLUSIVE", "UNMEASURED")}
    headline = (
        ("Run", fmt.text(results.run_id)),
        ("Created", fmt.text(results.created)),
        ("Model", f"{fmt.text(subject.model)} on {fmt.text(subject.dataset)}"),
        ("Model source", describe_source(subject.source)),
        *(
            [
                (
                    "Needs PyTorch, UNMEASURED",
                    f"pruned candidates, transfer and white-box attacks: {subject.torch_unavailable}",
                )
            ]
            if subject.torch_unavailable
            else []
        ),
        *[(f"Not built: {c.name}", c.skipped) for c in results.candidates if c.skipped],
        *[(f"Pruning reached: {c.name}", describe_pruning(c.pruning)) for c in results.candidates if c.pruning],
        *[
            (f"INT8 accuracy control: {c.name}", describe_accuracy_control(c.accuracy_control))
            for c in results.candidates
            if c.accuracy_control
        ],
        ("Host work ran on", describe_host_device(results.environment.host_device)),
        ("Input shape", fmt.text(subject.input_shape)),
        ("Evaluation images", fmt.text(subject.eval_count)),
        ("Calibration / training images", f"{fmt.text(subject.calib_count)} / {fmt.text(subject.train_count)}"),
        (
            "Budgets",
            ", ".join(f"{g.budget} = {fmt.text(budgets[g.budget])}" for g in GATES if budgets.get(g.budget) is not None)
            or "none",
        ),
        *([("Caveats", caveats)] if (caveats := _caveat_summary(results)) else []),
        *([("Adaptive sampling", adaptive)] if (adaptive := _adaptive_summary(results)) else []),
    )
    sections: list[Section] = []
    devices = device_names(results)
    verdict_tables: list[Table] = []
    for d in devices:
        verdict_tables.append(verdict_table(results, d))
        verdict_tables += [t for t in (caveats_table(results, d),) if t is not None]
    sections.append(
        Section(
            "verdicts",
            "Verdicts",
            tuple(verdict_tables),
            note="READY: every gate passes. NOT READY: a gate fails. INCONCLUSIVE: nothing fails or is missing, but "
            "an accuracy or robustness gate's 95% interval straddles its budget (the gate says about how many images "
            "would decide it); accuracies and drops pass only when their whole interval is within the budget. "
            "UNMEASURED: nothing fails, "
            "but a gate was never measured (it never passes), or its value cannot prove a pass: a latency "
            "measured unstably (CV above 10%) passes only when even its slowest iteration is within the "
            "budget, else its gate reads 'unstable'. Caveats change no verdict; read them before trusting one.",
        )
    )
    # edgebench search only: its recommendation right after the verdicts, before the candidates
    sections += [s for s in (search_section(results),) if s is not None]
    sections += seeds_sections(results)  # a study's reductions: and seeds: (mean and spread)
    sections.append(Section("candidates", "Candidates", (candidates_table(results),)))
    for d in devices:
        tables = [
            latency_table(results, d),
            *[t for t in (speedup_table(results, d),) if t is not None],
            throughput_table(results, d),
            memory_table(results, d),
            accuracy_table(results, d),
            robustness_table(results, d),
        ]
        tables += robustness_extra_tables(results, d)  # white-box side by side, attacker's model, sanity
        for extra in (auc_table(results, d), blackbox_table(results, d)):
            if extra is not None:
                tables.append(extra)
        tables += [ops_table(results, d), roofline_table(results, d), device_environment_table(results, d)]
        sections.append(Section(f"device-{d}", f"Device: {d}", tuple(tables), device=d))
    env = results.environment
    env_tables = [
        _kv_table("host", "Host (compress, export, attack)", dict(env.host)),
        _kv_table("versions", "Versions", {**env.versions, "git_revision": env.git_revision}),
    ]
    attacks = results.attacks
    if attacks:
        env_tables.append(
            Table(
                "attacks",
                "Adversarial sets (crafted on the base)",
                ("Id", "Attack", "Norm", "eps", "Images", "Base accuracy", "Parameters"),
                tuple(
                    (
                        _c(fmt.text(a.id), a.id, "id"),
                        _c(fmt.text(a.attack), a.attack, "attack"),
                        _c(fmt.text(a.norm), a.norm, "norm"),
                        _c(fmt.eps(a.norm, a.eps), a.eps, "eps"),
                        _metric(a.count, fmt.count, "count"),
                        _metric(a.base_accuracy, fmt.pct, "base_accuracy"),
                        _c(fmt.text(a.params) or "-", None, "params"),
                    )
                    for a in attacks
                ),
            )
        )
    sections.append(Section("environment", "Environment and versions", tuple(env_tables)))
    return Report(
        run_id=fmt.text(results.run_id),
        created=fmt.text(results.created),
        headline=headline,
        sections=tuple(sections),
        counts=counts,
    )


__all__ = ["build_report", "status_class"]
