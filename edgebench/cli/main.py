"""``edgebench``: the entry point. Each command group lives in its own module under
``edgebench.cli`` and exposes ``register(app)``; this file only wires them together and turns
:class:`~edgebench.errors.EdgebenchError` into a one-line message and exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from typer.exceptions import TyperException

from edgebench import __version__
from edgebench.errors import EXIT_USAGE, EdgebenchError
from edgebench.settings import log_level

# Each module defines register(app: typer.Typer) -> None.
COMMAND_MODULES = [
    "edgebench.cli.init",
    "edgebench.cli.devices",
    "edgebench.cli.run",
    "edgebench.cli.stages",
    "edgebench.cli.profile",
    "edgebench.cli.report",
    "edgebench.cli.search",
]

app = typer.Typer(
    name="edgebench",
    help=(
        "Take a vision model to an edge device and prove it is ready to ship.\n\n"
        "Examples:\n\n"
        "  edgebench run                      # the embedded demo study, local CPU\n\n"
        "  edgebench init model.onnx --data images/   # a study for your model -> study.yaml\n\n"
        "  edgebench run study.yaml --json    # your study, JSON summary for scripts\n\n"
        "  edgebench profile model.onnx --batch 1,8,32\n\n"
        "  edgebench report reports/demo --fail-on not-ready"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgebench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what edgebench does (INFO)."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else log_level(), format="%(levelname)s %(name)s: %(message)s")


for _mod in COMMAND_MODULES:
    importlib.import_module(_mod).register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        # standalone_mode=False: Click *returns* a command's typer.Exit code instead of exiting
        rc = app(args=argv, standalone_mode=False)
    except EdgebenchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: measurements finished so far are kept; re-run to resume\n")
        return 130
    except TyperException as exc:  # usage errors (unknown option, missing argument, bad value)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"error: {message}{hint}\n")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback kept in a file
        return _internal_error(exc)
    return rc if isinstance(rc, int) else 0


def _internal_error(exc: Exception) -> int:
    """Not the user's mistake: one line naming it and where its traceback was written, exit 1
    (what measurements finished are on disk already; a re-run resumes)."""
    import traceback

    from edgebench.errors import first_line
    from edgebench.settings import cache_dir

    where = cache_dir() / "last-error.txt"
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("".join(traceback.format_exception(exc)))
        kept = f"; traceback in {where}"
    except OSError:
        kept = ""
    sys.stderr.write(
        f"internal error: {type(exc).__name__}: {first_line(exc, 200)}{kept} (a bug in edgebench or a library it calls; "
        "measurements finished so far are kept)\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
