"""``edgebench report RUN_DIR`` and ``edgebench compare RUN_A RUN_B``.

Two top-level commands rather than a ``report`` group with a default action: a Typer group
whose callback takes a positional RUN_DIR would swallow the word ``compare`` as a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from edgebench.results import Results

REPORT_HELP = """Judge a run against its budgets and write report.md + report.html beside results.json.

Each candidate x device gets a verdict: READY (every gate passes), NOT READY (a gate fails) or UNMEASURED (nothing fails, but a gate was never measured; it never passes).

Exit codes: 0 ok, 1 a verdict is NOT READY, 2 bad input, 3 a verdict is UNMEASURED (only with --fail-on unmeasured).

Examples:

  edgebench report reports/demo-lenet5-mnist

  edgebench report reports/demo-lenet5-mnist --fail-on unmeasured    # strict CI gate

  edgebench report reports/demo-lenet5-mnist/results.json --json --fail-on never
"""

COMPARE_HELP = """Compare two runs and show what regressed: latency p50/p99 up, throughput down, memory up, clean or robust accuracy down, verdicts that got worse. A latency percentile regresses only when the two runs' 95 % confidence intervals are disjoint (else "within noise").

Exit code 1 when something regressed beyond tolerance, 0 otherwise, 2 on bad input.

Examples:

  edgebench compare reports/main reports/my-branch

  edgebench compare reports/main reports/my-branch --latency-tolerance 0.2 --accuracy-tolerance 0.005

  edgebench compare old/results.json new/results.json --json
"""


def _print_verdicts(results: Results, md: Path, html: Path, code: int) -> None:
    from rich.markup import escape

    from edgebench.cli.ui import out_console as console
    from edgebench.report.model import build_report
    from edgebench.report.terminal import verdict_tables

    for table in verdict_tables(build_report(results)):
        console.print(table)
    console.print(f"report: {escape(str(md))}\n        {escape(str(html))}")
    if code:
        console.print(f"exit code {code}")


def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder holding results.json (or the results.json file)."),
    fail_on: str = typer.Option(
        "not-ready", "--fail-on", help="When to exit non-zero: not-ready (1), unmeasured (1 or 3), never."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of a table."),
) -> None:
    from edgebench.errors import EdgebenchError
    from edgebench.report.gates import FAIL_ON_CHOICES, exit_code, verdicts
    from edgebench.report.render import load_results, render_results

    if fail_on not in FAIL_ON_CHOICES:
        raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
    results, folder = load_results(run_dir)
    md, html = render_results(results, folder)
    code = exit_code(results, fail_on)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "run_id": results.run_id,
                    "report_md": str(md),
                    "report_html": str(html),
                    "fail_on": fail_on,
                    "exit_code": code,
                    "verdicts": verdicts(results),
                },
                indent=2,
            )
        )
    else:
        _print_verdicts(results, md, html, code)
    if code:
        raise typer.Exit(code)


def _fmt(v: Any) -> str:
    if v is None:
        return "unmeasured"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_diff(diff: dict, show_all: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edgebench.cli.ui import out_console as console

    a, b = diff["a"], diff["b"]
    rows = diff["rows"] if show_all else [r for r in diff["rows"] if r["regressed"]]
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
        change = (
            r["note"]
            if r["change"] is None
            else f"{r['change']:+.4g}"
            + (f" ({100 * r['change_rel']:+.1f}%)" if r["change_rel"] is not None else "")
            + (f" {r['note']}" if r["note"] else "")
        )
        if r.get("unstable_in"):
            change += f" unstable in {'+'.join(r['unstable_in'])}"
        table.add_row(
            escape(r["candidate"]),
            escape(r["device"]),
            escape(r["metric"]),
            _fmt(r["a"]),
            _fmt(r["b"]),
            escape(change),
            "[red]yes[/]" if r["regressed"] else "no",
        )
    if rows:
        console.print(table)
    for v in diff["verdict_changes"]:
        style = "red" if v["regressed"] else "green"
        console.print(f"[{style}]verdict {escape(v['candidate'])} on {escape(v['device'])}: {v['a']} -> {v['b']}[/]")
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        for c in diff[key]:
            console.print(f"{label}: {escape(c['candidate'])} on {escape(c['device'])}")
    if diff["budgets_changed"]:
        console.print("[yellow]note: the two runs have different budgets; verdicts use each run's own[/]")
    noise = [r for r in diff["rows"] if not r["regressed"] and str(r.get("note", "")).startswith("within noise")]
    worse = [r for r in noise if (r.get("change") or 0) > 0]
    if worse and not show_all:
        console.print(
            f"{len(worse)} latency change(s) slower but within noise (95 % intervals overlap); --all shows them",
            highlight=False,
        )
    n = diff["regressions"]
    console.print(f"[{'red' if n else 'green'}]{n} regression(s) beyond tolerance[/]")


def compare_command(
    run_a: Path = typer.Argument(..., help="The reference run (folder or results.json)."),
    run_b: Path = typer.Argument(..., help="The run to check against it."),
    latency_tolerance: float = typer.Option(
        0.10,
        "--latency-tolerance",
        help="Relative latency increase allowed where a run has no confidence intervals (0.10 = 10%); intervals decide otherwise.",
    ),
    throughput_tolerance: float = typer.Option(
        0.10, "--throughput-tolerance", help="Relative throughput decrease allowed."
    ),
    memory_tolerance: float = typer.Option(0.10, "--memory-tolerance", help="Relative peak-memory increase allowed."),
    accuracy_tolerance: float = typer.Option(
        0.01, "--accuracy-tolerance", help="Absolute clean/robust accuracy decrease allowed (0.01 = 1 pp)."
    ),
    show_all: bool = typer.Option(False, "--all", help="Show every compared metric, not only regressions."),
    json_out: bool = typer.Option(False, "--json", help="Print the full diff as JSON."),
) -> None:
    from edgebench.report.compare import Tolerance, compare_exit_code, compare_runs

    tol = Tolerance(
        latency_rel=latency_tolerance,
        throughput_rel=throughput_tolerance,
        memory_rel=memory_tolerance,
        accuracy_abs=accuracy_tolerance,
    )
    diff = compare_runs(run_a, run_b, tol)
    if json_out:
        typer.echo(json.dumps(diff, indent=2))
    else:
        _print_diff(diff, show_all)
    code = compare_exit_code(diff)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("report", help=REPORT_HELP)(report_command)
    app.command("compare", help=COMPARE_HELP)(compare_command)
