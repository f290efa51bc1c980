"""``edgebench report RUN_DIR`` and ``edgebench compare RUN_A RUN_B``.

Two top-level commands rather than a ``report`` group with a default action: a Typer group
whose callback takes a positional RUN_DIR would swallow the word ``compare`` as a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

REPORT_HELP = """Judge a run against its budgets and write report.md + report.html beside results.json.

Each candidate x device gets a verdict: READY (every gate passes), NOT READY (a gate fails) or UNMEASURED (nothing fails, but a gate was never measured, or its value cannot prove a pass, e.g. a latency measured unstably). Caveats (unstable latency, failed robustness sanity checks, accuracy at chance) are listed beside each verdict.

Exit codes: 0 ok, 1 a verdict is NOT READY, 2 bad input, 3 every verdict is UNMEASURED (the run judged nothing), or with --fail-on unmeasured any is, 4 with --fail-on inconclusive (or unmeasured) a verdict is INCONCLUSIVE: an accuracy or robustness interval straddles its budget.

Examples:

  edgebench report reports/demo-resnet8-wide-mnist

  edgebench report reports/demo-resnet8-wide-mnist --fail-on unmeasured    # strict CI gate

  edgebench report reports/demo-resnet8-wide-mnist/results.json --json --fail-on never
"""

COMPARE_HELP = """Compare two runs and show what regressed: latency p50/p99 up, throughput down, memory up, clean or robust accuracy down, verdicts that got worse.

A metric regresses only when it got worse by more than its minimum effect size (the --*-tolerance options) and, for a latency percentile with 95 % confidence intervals in both runs, the intervals are also disjoint (else "within noise"). Both are needed: an interval says how precisely one run measured, not how far a second run on the same host drifts, so two runs of one study often differ by a few percent with disjoint intervals.

A candidate whose recipe (pruning, quantization, parent, engine options) changed between the runs is noted beside its rows, as differing budgets are.

Exit code 1 when something regressed, 0 otherwise, 2 on bad input.

Examples:

  edgebench compare reports/main reports/my-branch

  edgebench compare reports/main reports/my-branch --latency-tolerance 0.25 --robustness-tolerance 0.1

  edgebench compare old/results.json new/results.json --json

  edgebench compare reports/main reports/my-branch --markdown >> "$GITHUB_STEP_SUMMARY"
"""


def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder holding results.json (or the results.json file)."),
    fail_on: str = typer.Option(
        "not-ready",
        "--fail-on",
        help="When to exit non-zero: not-ready (1; 3 when every verdict is UNMEASURED), inconclusive (1, 3 or 4), "
        "unmeasured (1, 3 or 4), never.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of a table."),
) -> None:
    from edgebench.errors import EdgebenchError
    from edgebench.report.gates import FAIL_ON_CHOICES, gate_outcome, verdicts
    from edgebench.report.render import load_results, render_results

    if fail_on not in FAIL_ON_CHOICES:
        raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
    results, folder = load_results(run_dir)
    md, html = render_results(results, folder)
    code, why = gate_outcome(results, fail_on)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "run_id": results.run_id,
                    "report_md": str(md),
                    "report_html": str(html),
                    "fail_on": fail_on,
                    "exit_code": code,
                    "exit_reason": why,
                    "verdicts": verdicts(results),
                },
                indent=2,
            )
        )
    else:
        from edgebench.cli.ui import out_console, show
        from edgebench.report.report_view import report_view

        show(out_console, report_view(results, md, html, code, why))
    if code:
        raise typer.Exit(code)


def compare_command(
    run_a: Path = typer.Argument(..., help="The reference run (folder or results.json)."),
    run_b: Path = typer.Argument(..., help="The run to check against it."),
    latency_tolerance: float = typer.Option(
        0.10,
        "--latency-tolerance",
        help="Smallest relative slowdown of a latency percentile (p50, p99; end-to-end and compute), or drop of a "
        "speed-up over base, that counts, with or without intervals. Default 0.10 = 10 %: on one quiet host two runs of the same artifact drift a few "
        "percent; raise it on shared or throttling runners.",
    ),
    throughput_tolerance: float = typer.Option(
        0.10,
        "--throughput-tolerance",
        help="Smallest relative throughput decrease that counts (default 10 %). Throughput is batch / mean "
        "latency: scheduling stalls move it more than the median.",
    ),
    memory_tolerance: float = typer.Option(
        0.10, "--memory-tolerance", help="Smallest relative peak-memory increase that counts (default 10 %)."
    ),
    accuracy_tolerance: float = typer.Option(
        0.02,
        "--accuracy-tolerance",
        help="Smallest absolute clean-accuracy drop that counts. Default 0.02 = 2 pp: a rebuilt candidate "
        "(fine-tuning, calibration) flips a few evaluation images; never less than one image of the set.",
    ),
    robustness_tolerance: float = typer.Option(
        0.05,
        "--robustness-tolerance",
        help="Smallest absolute robust-accuracy drop (per adversarial set) that counts. Default 0.05 = 5 pp: "
        "adversarial sets are small (32 white-box images a candidate by default: one image is 3 pp) and crafted "
        "anew each run; never less than one image of the set.",
    ),
    show_all: bool = typer.Option(False, "--all", help="Show every compared metric, not only regressions."),
    json_out: bool = typer.Option(False, "--json", help="Print the full diff as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the diff as Markdown (CI summaries, PR comments)."),
) -> None:
    from edgebench.errors import EdgebenchError
    from edgebench.report.compare import Tolerance, compare_exit_code, compare_runs

    if json_out and markdown:
        raise EdgebenchError("compare: expected one of --json or --markdown, found both")
    tol = Tolerance(
        latency_rel=latency_tolerance,
        throughput_rel=throughput_tolerance,
        memory_rel=memory_tolerance,
        accuracy_abs=accuracy_tolerance,
        robustness_abs=robustness_tolerance,
    )
    diff = compare_runs(run_a, run_b, tol)
    if json_out:
        typer.echo(json.dumps(diff, indent=2))
    elif markdown:
        from edgebench.report.compare_view import compare_markdown

        typer.echo(compare_markdown(diff, show_all))
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
