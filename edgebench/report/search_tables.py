"""The report's "Search" section, the answer first: the recommendation per device (and, when no
trial meets the budgets, the closest and what it misses), then the Pareto front per device and
the trials with their host screen."""

from __future__ import annotations

from edgebench.report import format as fmt
from edgebench.report.gates import GATE_BY_NAME
from edgebench.report.tables import Cell, Section, Table
from edgebench.results import Results, Search


def _c(text: str, value: object = None, key: str = "", status: str = "") -> Cell:
    return Cell(text=text, value=value, key=key, status=status)


def _margin_text(margins: dict) -> str:
    parts = []
    for name, m in margins.items():
        gate = GATE_BY_NAME.get(name)
        label = gate.label if gate else name
        shown = gate.format(abs(m)) if gate else f"{abs(m):.3g}"
        parts.append(f"{label} {'under' if m >= 0 else 'over'} budget by {shown}")
    return "; ".join(parts)


def recommendation_line(record: Search | dict, device: str) -> str:
    """The recommendation on *device* in one line (*record*: the typed ``search`` record, or its JSON)."""
    if not isinstance(record, Search):
        record = Search.model_validate(record)
    rec, close = record.recommended.get(device), record.closest.get(device)
    missed = "" if close is None else f"closest is {close.candidate} (misses {', '.join(close.misses)}; "
    missed += "" if close is None else f"{_margin_text(close.margins)})"
    if rec:
        line = f"{device}: recommended {rec.candidate} (fastest READY, p99 {fmt.ms(rec.p99_ms)} ms; "
        return line + _margin_text(rec.margins) + ")" + (f"; no trial meets the budgets: {missed}" if close else "")
    if close:
        return f"{device}: no candidate meets the budgets; {missed}"
    return f"{device}: no candidate was measured"


def recommendation_table(record: Search) -> Table:
    """One row per device: the recommended candidate and its margins, and the closest one (when
    no trial is READY) and what it misses; the first table of the section."""
    rows = []
    for dev in record.pareto:
        rec, close = record.recommended.get(dev), record.closest.get(dev)
        rows.append(
            (
                _c(dev, dev, "device"),
                _c(
                    rec.candidate if rec else "none",
                    rec.candidate if rec else None,
                    "recommended",
                    "ready" if rec else "not-ready",
                ),
                _c(fmt.ms(rec.p99_ms) if rec else "", rec.p99_ms if rec else None, "p99"),
                _c(_margin_text(rec.margins) if rec else "", None, "margins"),
                _c(
                    close.candidate if close else "",
                    close.candidate if close else None,
                    "closest",
                    "not-ready" if close else "",
                ),
                _c(_margin_text(close.margins) if close else "", None, "closest_margins"),
            )
        )
    return Table(
        "recommendation",
        "Recommendation",
        (
            "Device",
            "Recommended (fastest READY)",
            "p99 ms",
            "Margins to the budgets",
            "Closest (no trial READY)",
            "Its margins",
        ),
        tuple(rows),
        note=" ".join(recommendation_line(record, dev) + "." for dev in record.pareto),
    )


def search_section(results: Results) -> Section | None:
    """The section, or ``None`` for a run that was not a search."""
    record = results.search
    if record is None:
        return None
    tables = [recommendation_table(record)]
    for dev, front in record.pareto.items():
        recommended = record.recommended.get(dev)
        rec = None if recommended is None else recommended.candidate
        rows = tuple(
            (
                _c(p.candidate + (" (recommended)" if p.candidate == rec else ""), p.candidate, "candidate"),
                _c(fmt.ms(p.p99_ms), p.p99_ms, "p99"),
                _c(fmt.pct(p.clean_accuracy), p.clean_accuracy, "clean_accuracy"),
                _c(fmt.pct(p.robust_accuracy), p.robust_accuracy, "robust_accuracy"),
                _c(fmt.mb(p.peak_memory_mb), p.peak_memory_mb, "peak_memory_mb"),
                _c(fmt.text(p.status), p.status, "verdict", (p.status or "").lower().replace(" ", "-")),
            )
            for p in front
        )
        tables.append(
            Table(
                f"pareto-{dev}",
                f"Pareto front on {dev}",
                ("Candidate", "p99 ms", "Clean accuracy", "Robust accuracy", "Peak memory MB", "Verdict"),
                rows,
            )
        )
    trials = record.trials
    survivors = set(record.survivors)
    tables.append(
        Table(
            "trials",
            "Trials (screened on the host; the best measured on the devices)",
            (
                "Trial",
                "Candidate",
                "Parameters",
                "Host accuracy",
                "Host robust accuracy",
                "MACs",
                "Feasible",
                "Measured",
            ),
            tuple(
                (
                    _c(str(t.number), t.number, "trial"),
                    _c(t.name, t.name, "candidate"),
                    _c(fmt.text(t.params), None, "params"),
                    _c(fmt.pct(t.screen.clean_accuracy), t.screen.clean_accuracy, "screen_accuracy"),
                    _c(fmt.pct(t.screen.robust_accuracy), t.screen.robust_accuracy, "screen_robust"),
                    _c(fmt.count(t.screen.macs), t.screen.macs, "macs"),
                    _c("yes" if t.feasible else "no", t.feasible, "feasible"),
                    _c(
                        "yes" if t.measured else ("selected" if t.name in survivors else "no"),
                        t.measured,
                        "measured",
                    ),
                )
                for t in trials
            ),
        )
    )
    return Section("search", "Search", tuple(tables))
