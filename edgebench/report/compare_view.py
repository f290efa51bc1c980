"""What ``edgebench compare`` prints for a diff of :func:`edgebench.report.compare.compare_runs`:
the regressions (or, with ``--all``, every compared metric), verdict changes, candidates in one
run only, a note on differing budgets and latency changes within noise, the regression count."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from edgebench.report.markup import line


def _value(v: Any) -> str:
    if v is None:
        return "unmeasured"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _change(r: dict) -> str:
    change = (
        r["note"]
        if r["change"] is None
        else f"{r['change']:+.4g}"
        + (f" ({100 * r['change_rel']:+.1f}%)" if r["change_rel"] is not None else "")
        + (f" {r['note']}" if r["note"] else "")
    )
    if r.get("unstable_in"):
        change += f" unstable in {'+'.join(r['unstable_in'])}"
    return change


def diff_table(diff: dict, rows: list[dict], show_all: bool) -> Table:
    a, b = diff["a"], diff["b"]
    table = Table(
        title=f"{escape(str(a.get('run_id')))} (A) -> {escape(str(b.get('run_id')))} (B): "
        + ("every metric" if show_all else "regressions")
    )
    table.add_column("Candidate", overflow="fold")
    table.add_column("Device", overflow="fold")
    table.add_column("Metric", no_wrap=True)
    for col in ("A", "B", "Change", "Regressed"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            escape(r["candidate"]),
            escape(r["device"]),
            escape(r["metric"]),
            _value(r["a"]),
            _value(r["b"]),
            escape(_change(r)),
            "[red]yes[/]" if r["regressed"] else "no",
        )
    return table


def compare_view(diff: dict, show_all: bool) -> list[RenderableType]:
    rows = diff["rows"] if show_all else [r for r in diff["rows"] if r["regressed"]]
    view: list[RenderableType] = [diff_table(diff, rows, show_all)] if rows else []
    for v in diff["verdict_changes"]:
        style = "red" if v["regressed"] else "green"
        view.append(f"[{style}]verdict {escape(v['candidate'])} on {escape(v['device'])}: {v['a']} -> {v['b']}[/]")
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        view += [f"{label}: {escape(c['candidate'])} on {escape(c['device'])}" for c in diff[key]]
    if diff["budgets_changed"]:
        view.append("[yellow]note: the two runs have different budgets; verdicts use each run's own[/]")
    noise = [r for r in diff["rows"] if not r["regressed"] and str(r.get("note", "")).startswith("within noise")]
    worse = [r for r in noise if (r.get("change") or 0) > 0]
    if worse and not show_all:
        view.append(
            line(f"{len(worse)} latency change(s) slower but within noise (95 % intervals overlap); --all shows them")
        )
    n = diff["regressions"]
    view.append(f"[{'red' if n else 'green'}]{n} regression(s) beyond tolerance[/]")
    return view
