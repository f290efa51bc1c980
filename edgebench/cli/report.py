"""``edgebench report RUN_DIR`` and ``edgebench compare RUN_A RUN_B``.

Two top-level commands rather than a ``report`` group with a default action: a Typer group
whose callback takes a positional RUN_DIR would swallow the word ``compare`` as a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

REPORT_HELP = """Judge a run against its budgets and write report.md + report.html beside results.json.

Each candidate x device gets a verdict: READY (every gate passes), NOT READY (a gate fails) or UNMEASURED (nothing fails, but a gate was never measured; it never passes).

Exit codes: 0 ok, 1 a verdict is NOT READY, 2 bad input, 3 a verdict is UNMEASURED (only with --fail-on unmeasured).

Examples:

  edgebench report reports/demo-resnet8-wide-mnist

  edgebench report reports/demo-resnet8-wide-mnist --fail-on unmeasured    # strict CI gate

  edgebench report reports/demo-resnet8-wide-mnist/results.json --json --fail-on never
"""

COMPARE_HELP = """Compare two runs and show what regressed: latency p50/p99 up, throughput down, memory up, clean or robust accuracy down, verdicts that got worse. A latency percentile regresses only when the two runs' 95 % confidence intervals are disjoint (else "within noise").

Exit code 1 when something regressed beyond tolerance, 0 otherwise, 2 on bad input.

Examples:

  edgebench compare reports/main reports/my-branch

  edgebench compare reports/main reports/my-branch --latency-tolerance 0.2 --accuracy-tolerance 0.005

  edgebench compare old/results.json new/results.json --json
"""


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
        from edgebench.cli.ui import out_console, show
        from edgebench.report.report_view import report_view

        show(out_console, report_view(results, md, html, code))
    if code:
        raise typer.Exit(code)


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
        from edgebench.cli.ui import out_console, show
        from edgebench.report.compare_view import compare_view

        show(out_console, compare_view(diff, show_all))
    code = compare_exit_code(diff)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("report", help=REPORT_HELP)(report_command)
    app.command("compare", help=COMPARE_HELP)(compare_command)
