"""What ``edgebench run`` prints after a run: per device the accuracy under attacks crafted on
base (transfer) and on each candidate (white-box), the verdict tables, where the files are."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from edgebench.report.markup import fmt
from edgebench.report.model import build_report
from edgebench.report.robust_tables import worst_case_tables
from edgebench.report.terminal import rich_table, speedup_tables, verdict_tables
from edgebench.robustness.sanity import UNBOUNDED_ID, UNBOUNDED_NOTE


def _count_text(counts: dict[str, int | None]) -> str:
    """A row's image count: one number when every candidate's cell covers the same images,
    else the most common one and the exceptions (``16 (base 32)``)."""
    known = {k: c for k, c in counts.items() if c is not None}
    if not known:
        return "-"
    values = list(known.values())
    common = max(set(values), key=values.count)
    odd = [f"{escape(k)} {c}" for k, c in known.items() if c != common]
    return f"{common} ({', '.join(odd)})" if odd else str(common)


def _clean_rows(table: Table, cands: list[tuple[str, dict]], rows: dict[str, dict[str, dict]]) -> None:
    """Clean accuracy on all evaluation images, then on exactly the attacked images (one row per
    distinct image count): an attack row is read against the clean row with its count."""
    evals = {name: d.get("eval_count") for name, d in cands}
    table.add_row("clean, all images", _count_text(evals), *[fmt(d.get("clean_accuracy"), ".3f") for _, d in cands])
    counts = sorted({r["count"] for per in rows.values() for r in per.values() if r.get("count") is not None})
    for n in counts:
        if all(evals[name] == n for name, _ in cands):
            continue  # the attacked images are all of them: the row above
        at_n = {name: [r for r in rows[name].values() if r.get("count") == n] for name, _ in cands}
        cells = [fmt(at_n[name][0].get("clean_accuracy"), ".3f") if at_n[name] else "-" for name, _ in cands]
        table.add_row(f"clean, the {n} attacked", str(n), *cells)


def _cell(row: dict | None) -> str:
    return "-" if row is None else fmt(row.get("accuracy"), ".3f")


def robustness_table(results: dict, device: str) -> Table | None:
    """Accuracy under each adversarial set (rows) for every candidate (columns), as the
    published studies tabulate it; the examples were crafted on base (transfer setting). Every
    row states its image count, and clean accuracy is also shown on exactly the attacked images."""
    attacks = results.get("attacks", [])
    if not attacks:
        return None
    cands = [(c["name"], c["devices"].get(device) or {}) for c in results["candidates"]]
    table = Table(title=f"robustness on {device}: accuracy under attacks crafted on base", header_style="bold")
    table.add_column("set")
    table.add_column("images", justify="right")
    for name, _ in cands:
        table.add_column(name, justify="right")
    rows = {
        name: {r["id"]: r for r in d.get("robustness") or [] if r.get("setting") in (None, "transfer")}
        for name, d in cands
    }
    _clean_rows(table, cands, rows)
    for a in attacks:
        counts = {name: (rows[name].get(a["id"]) or {}).get("count") for name, _ in cands}
        table.add_row(a["id"], _count_text(counts), *[_cell(rows[name].get(a["id"])) for name, _ in cands])
    if any(d.get("blackbox") for _, d in cands):
        bb = {name: (d.get("blackbox") or {}).get("count") for name, d in cands}
        table.add_row(
            "black-box median L2",
            _count_text(bb),
            *[fmt((d.get("blackbox") or {}).get("median_distance"), ".2f") for _, d in cands],
        )
    return table


def whitebox_table(results: dict, device: str) -> Table | None:
    """Accuracy under each white-box set (crafted on each candidate itself), candidates as
    columns; each row with its image count, clean accuracy on the attacked images, the
    ``pgd-linf-255`` sanity row explained, and what each sanity warning found."""
    cands = [(c["name"], c["devices"].get(device) or {}) for c in results["candidates"]]
    rows = {
        name: {r["set"]: r for r in d.get("robustness") or [] if r.get("setting") == "whitebox"} for name, d in cands
    }
    sets = list(dict.fromkeys(s for per in rows.values() for s in per))
    if not sets:
        return None
    title = f"robustness on {device}: accuracy under white-box attacks crafted on each candidate itself"
    table = Table(title=title, header_style="bold")
    table.add_column("set")
    table.add_column("images", justify="right")
    for name, _ in cands:
        table.add_column(name, justify="right")
    _clean_rows(table, cands, rows)
    for s in sets:
        counts = {name: (rows[name].get(s) or {}).get("count") for name, _ in cands}
        shown = f"{s} (sanity)" if s == UNBOUNDED_ID else s
        table.add_row(shown, _count_text(counts), *[_cell(rows[name].get(s)) for name, _ in cands])
    notes = [UNBOUNDED_NOTE] if UNBOUNDED_ID in sets else []
    warn = [
        f"{name}: {c.get('label') or c['check']} ({c.get('detail')})"
        for name, d in cands
        for c in d.get("sanity") or []
        if c.get("status") == "warn"
    ]
    if warn:
        notes.append("sanity warnings: " + "; ".join(warn))
    if notes:
        table.caption = escape("\n".join(notes))
    return table


def files_line(run_dir: Path) -> str:
    """Where a run's results and reports are (``run`` and ``search`` end with it)."""
    return f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.html'}  {run_dir / 'report.md'}"


def run_view(results: dict, run_dir: Path) -> list[RenderableType]:
    """Everything ``edgebench run`` prints (on stdout) after the run, in order."""
    out: list[RenderableType] = []
    for dev in results.get("devices", {}):
        out += [t for t in (robustness_table(results, dev), whitebox_table(results, dev)) if t is not None]
        out += [rich_table(t) for t in worst_case_tables(results, dev)]  # robust accuracy, divergence
    report = build_report(results)
    out += speedup_tables(report)
    out += verdict_tables(report)
    out += [
        f"note: {c['name']}: {n}" for c in results["candidates"] if (n := (c.get("pruning") or {}).get("finetune_note"))
    ]
    out.append(files_line(run_dir))
    return out
