"""What ``edgebench run`` prints after a run: per device the accuracy under attacks crafted on
base (transfer) and on each candidate (white-box), the verdict tables, where the files are."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table

from edgebench.report.markup import fmt
from edgebench.report.model import build_report
from edgebench.report.terminal import verdict_tables


def robustness_table(results: dict, device: str) -> Table | None:
    """Accuracy under each adversarial set (rows) for every candidate (columns), as the
    published studies tabulate it; the examples were crafted on base (transfer setting)."""
    attacks = results.get("attacks", [])
    if not attacks:
        return None
    cands = [(c["name"], c["devices"].get(device) or {}) for c in results["candidates"]]
    table = Table(title=f"robustness on {device}: accuracy under attacks crafted on base", header_style="bold")
    table.add_column("set")
    for name, _ in cands:
        table.add_column(name, justify="right")
    table.add_row("clean", *[fmt(d.get("clean_accuracy"), ".3f") for _, d in cands])
    acc = {name: {r["id"]: r["accuracy"] for r in d.get("robustness") or []} for name, d in cands}
    for a in attacks:
        table.add_row(a["id"], *[fmt(acc[name].get(a["id"]), ".3f") for name, _ in cands])
    if any(d.get("blackbox") for _, d in cands):
        table.add_row(
            "black-box median L2", *[fmt((d.get("blackbox") or {}).get("median_distance"), ".2f") for _, d in cands]
        )
    return table


def whitebox_table(results: dict, device: str) -> Table | None:
    """Accuracy under each white-box set (crafted on each candidate itself), candidates as columns."""
    cands = [(c["name"], c["devices"].get(device) or {}) for c in results["candidates"]]
    acc = {
        name: {r["set"]: r for r in d.get("robustness") or [] if r.get("setting") == "whitebox"} for name, d in cands
    }
    sets = list(dict.fromkeys(s for rows in acc.values() for s in rows))
    if not sets:
        return None
    title = f"robustness on {device}: accuracy under white-box attacks crafted on each candidate itself"
    table = Table(title=title, header_style="bold")
    table.add_column("set")
    for name, _ in cands:
        table.add_column(name, justify="right")
    counts = [next((r["count"] for r in acc[name].values() if not r.get("sanity_only")), None) for name, _ in cands]
    table.add_row("images", *[str(c) if c is not None else "-" for c in counts])
    for s in sets:
        table.add_row(s, *[fmt((acc[name].get(s) or {}).get("accuracy"), ".3f") for name, _ in cands])
    warn = [f"{name}: {c['check']}" for name, d in cands for c in d.get("sanity") or [] if c.get("status") == "warn"]
    if warn:
        table.caption = "sanity warnings (possible gradient masking): " + "; ".join(warn)
    return table


def files_line(run_dir: Path) -> str:
    """Where a run's results and reports are (``run`` and ``search`` end with it)."""
    return f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.html'}  {run_dir / 'report.md'}"


def run_view(results: dict, run_dir: Path) -> list[RenderableType]:
    """Everything ``edgebench run`` prints (on stderr) after the run, in order."""
    out: list[RenderableType] = []
    for dev in results.get("devices", {}):
        out += [t for t in (robustness_table(results, dev), whitebox_table(results, dev)) if t is not None]
    out += verdict_tables(build_report(results))
    out += [
        f"note: {c['name']}: {n}" for c in results["candidates"] if (n := (c.get("pruning") or {}).get("finetune_note"))
    ]
    out.append(files_line(run_dir))
    return out
