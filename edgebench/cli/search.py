"""``edgebench search``: the study's search space explored with Optuna; the answer per device."""

from __future__ import annotations

from pathlib import Path

import typer

ENGINE_HELP = "Where the tasks run: local (this process) | ray (a Ray cluster; pip install 'edgebench\\[ray]')."
RAY_ADDRESS_HELP = "Ray cluster address (host:port of the head); default: start a Ray on this machine."


def register(app: typer.Typer) -> None:
    @app.command(
        "search",
        help=(
            "Search compression settings for the study's devices: Optuna (multi-objective on the host: MACs, "
            "clean accuracy, robust accuracy, artifact size; the accuracy and robustness budgets as constraints) "
            "proposes trials from the study's 'search:' section; each trial is built and screened on the host, "
            "the best share (feasible first, then the least violating) measured on the devices. Prints the "
            "recommended candidate per device (the fastest READY one; when no trial is READY, the closest).\n\n"
            "A re-run with the same --out resumes the search (more trials: raise search.trials).\n\n"
            "Examples:\n\n"
            "  edgebench search study.yaml --out reports/search\n\n"
            "  edgebench search study.yaml --engine ray --ray-address 10.0.0.5:6379 --json"
        ),
    )
    def search(
        config: Path = typer.Argument(..., help="Study YAML with a 'search:' section."),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Run folder (default: reports/<name>-<model>-<data>)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print results.json to stdout (progress goes to stderr)."),
        engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
        ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        from edgebench.cli.ui import PipelineUi, out_console, print_json, show
        from edgebench.report.search_view import search_view
        from edgebench.scale.engine import make_engine
        from edgebench.search.run import Search
        from edgebench.study.config import load_study
        from edgebench.study.pipeline import default_run_dir

        cfg = load_study(config)
        if cfg.search is None:
            from edgebench.errors import EdgebenchError

            raise EdgebenchError(f"{config}: expected a 'search:' section (space, trials), found none")
        run_dir = out or default_run_dir(cfg)
        eng = make_engine(engine, ray_address, cfg.devices)
        try:
            with PipelineUi(quiet=quiet) as ui:
                results = Search(cfg, run_dir, eng, ui).run()
        finally:
            eng.close()
        if json_out:
            print_json(results)
            return
        show(out_console, search_view(results, run_dir))
