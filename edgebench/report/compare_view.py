"""What ``edgebench compare`` prints for a diff of :func:`edgebench.report.compare.compare_runs`:
the regressions (or, with ``--all``, every compared metric), verdict changes, candidates in one
run only, notes on differing budgets and changed recipes, changes within noise or tolerance, the
minimum effect sizes used and the regression count. Two renderings of the same text: Rich for
the terminal (:func:`compare_view`) and GitHub-flavoured Markdown (:func:`compare_markdown`, for
a CI job summary or a pull-request comment); the texts are built once, here, as plain strings."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from edgebench.report import format as fmt
from edgebench.report.compare import EFFECT_SIZES
from edgebench.report.markdown import md_escape
from edgebench.report.markup import line

COLUMNS = ("Candidate", "Device", "Metric", "A", "B", "Change", "Regressed")
RECIPE_CHANGED = "recipe changed"


def _value(v: Any, metric: str = "") -> str:
    if v is None:
        return "unmeasured"
    if metric == "throughput_ips":
        return fmt.ips(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _change(r: dict) -> str:
    change = (
        r["note"]
        if r["change"] is None
        else (f"{r['change']:+,.0f}" if r.get("metric") == "throughput_ips" else f"{r['change']:+.4g}")
        + (f" ({100 * r['change_rel']:+.1f}%)" if r["change_rel"] is not None else "")
        + (f" {r['note']}" if r["note"] else "")
    )
    if r.get("unstable_in"):
        change += f" unstable in {'+'.join(r['unstable_in'])}"
    if r.get("recipe_changed"):
        change += f"; {RECIPE_CHANGED}"
    return change


def _title(diff: dict, show_all: bool) -> str:
    a, b = diff["a"], diff["b"]
    return f"{a.get('run_id')} (A) -> {b.get('run_id')} (B): " + ("every metric" if show_all else "regressions")


def _cells(r: dict) -> tuple[str, ...]:
    """One row's plain texts, in :data:`COLUMNS` order."""
    return (
        r["candidate"],
        r["device"],
        r["metric"],
        _value(r["a"], r["metric"]),
        _value(r["b"], r["metric"]),
        _change(r),
    )


def _recipe_value(key: str, v: Any) -> str:
    if "." not in key:  # a whole step (prune, quantize, engine, parent) present in one run only
        return ("not applied" if key in ("prune", "quantize") else "none") if v is None else "applied"
    return "none" if v is None else _value(v)


def recipe_notes(diff: dict) -> list[str]:
    """One note per candidate whose recipe differs between the runs, listing what changed."""
    return [
        f"note: {r['candidate']}: recipe changed between the runs ("
        + ", ".join(
            f"{c['key']} {_recipe_value(c['key'], c['a'])} -> {_recipe_value(c['key'], c['b'])}" for c in r["changes"]
        )
        + "); its rows compare different recipes, not the same one twice"
        for r in diff.get("recipe_changes", [])
    ]


def tolerance_text(diff: dict) -> str:
    """The minimum effect sizes the diff was judged with, as the user set them."""
    parts = []
    for kind, size in EFFECT_SIZES.items():
        value = 100 * diff["tolerance"][size.field]
        parts.append(f"{kind} {value:g} " + ("%" if size.relative else "pp"))
    return "minimum effect sizes: " + ", ".join(parts) + "; an accuracy drop must also be more than one image"


def _verdict_text(v: dict) -> str:
    text = f"verdict {v['candidate']} on {v['device']}: {v['a']} -> {v['b']}"
    return text + (f" ({RECIPE_CHANGED})" if v.get("recipe_changed") else "")


def _shown(diff: dict, show_all: bool) -> list[dict]:
    return diff["rows"] if show_all else [r for r in diff["rows"] if r["regressed"]]


def summary_lines(diff: dict, show_all: bool) -> list[str]:
    """The plain lines after the table: changes that did not count, and why."""
    out = []
    quiet = [r for r in diff["rows"] if not r["regressed"]]
    noise = [r for r in quiet if str(r["note"]).startswith("within noise") and (r.get("change") or 0) > 0]
    small = [r for r in quiet if str(r["note"]).endswith("within tolerance")]
    if noise and not show_all:
        out.append(f"{len(noise)} latency change(s) slower but within noise (95 % intervals overlap); --all shows them")
    if small and not show_all:
        out.append(f"{len(small)} change(s) worse but within the minimum effect size; --all shows them")
    return out + [tolerance_text(diff)]


def diff_table(diff: dict, rows: list[dict], show_all: bool) -> Table:
    table = Table(title=escape(_title(diff, show_all)))
    table.add_column("Candidate", overflow="fold")
    table.add_column("Device", overflow="fold")
    table.add_column("Metric", no_wrap=True)
    for col in COLUMNS[3:]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(escape(c) for c in _cells(r)), "[red]yes[/]" if r["regressed"] else "no")
    return table


def compare_view(diff: dict, show_all: bool) -> list[RenderableType]:
    rows = _shown(diff, show_all)
    view: list[RenderableType] = [diff_table(diff, rows, show_all)] if rows else []
    for v in diff["verdict_changes"]:
        style = "red" if v["regressed"] else "green"
        view.append(f"[{style}]{escape(_verdict_text(v))}[/]")
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        view += [f"{label}: {escape(c['candidate'])} on {escape(c['device'])}" for c in diff[key]]
    if diff["budgets_changed"]:
        view.append("[yellow]note: the two runs have different budgets; verdicts use each run's own[/]")
    view += [line(f"[yellow]{escape(note)}[/]") for note in recipe_notes(diff)]
    view += [line(escape(text)) for text in summary_lines(diff, show_all)]
    n = diff["regressions"]
    view.append(f"[{'red' if n else 'green'}]{n} regression(s) beyond tolerance[/]")
    return view


def compare_markdown(diff: dict, show_all: bool) -> str:
    """The same diff as Markdown: every value escaped (``md_escape``), so a candidate name cannot
    inject markup into a pull-request comment."""
    out = [f"## edgebench compare: {md_escape(_title(diff, show_all))}", ""]
    rows = _shown(diff, show_all)
    if rows:
        out += ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        for r in rows:
            mark = "❌ yes" if r["regressed"] else "no"
            out.append("| " + " | ".join(md_escape(c) for c in _cells(r)) + f" | {mark} |")
        out.append("")
    bullets = [("❌ " if v["regressed"] else "✅ ") + _verdict_text(v) for v in diff["verdict_changes"]]
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        bullets += [f"{label}: {c['candidate']} on {c['device']}" for c in diff[key]]
    if diff["budgets_changed"]:
        bullets.append("note: the two runs have different budgets; verdicts use each run's own")
    bullets += recipe_notes(diff) + summary_lines(diff, show_all)
    out += [f"- {md_escape(b)}" for b in bullets]
    out += ["", f"**{diff['regressions']} regression(s) beyond tolerance**", ""]
    return "\n".join(out)
