"""``edgebench``: the entry point. Each command group lives in its own module under
``edgebench.cli`` and exposes ``register(app)``; this file only wires them together and turns
:class:`~edgebench.errors.EdgebenchError` into a one-line message and exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import typer
import typer.main
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
        "Results (tables, --json) go to stdout, progress and errors to stderr.\n\n"
        "Examples:\n\n"
        "  edgebench run                      # the embedded demo study, local CPU\n\n"
        "  edgebench init model.onnx --data images/   # a study for your model -> study.yaml\n\n"
        "  edgebench run study.yaml --json    # your study, JSON summary for scripts\n\n"
        "  edgebench profile model.onnx --batch 1,8,32\n\n"
        "  edgebench report reports/demo-resnet8-wide-mnist --fail-on not-ready"
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


# Commands that keep each finished measurement in a run folder: a re-run resumes them.
RESUMABLE = ("run", "compress", "attack", "search")
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        # standalone_mode=False: Click *returns* a command's typer.Exit code instead of exiting
        rc = _command()(args=args, prog_name="edgebench", standalone_mode=False)
    except EdgebenchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Click's way of reporting Ctrl-C (older Typer)
        return _interrupted(args)
    except TyperException as exc:  # usage errors (unknown option, missing argument, bad value)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"error: {message}{hint}\n")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback kept in a file
        return _internal_error(exc)
    if rc == EXIT_INTERRUPTED:  # Typer's way: Ctrl-C returned as a silent 130 (no command exits 130)
        return _interrupted(args)
    return rc if isinstance(rc, int) else 0


def _command() -> Any:
    """The Click command of :data:`app`, every flag (``--json``, ``--quiet``, ``--help``) shown
    without the ``<bool>`` Typer writes beside it, as if it took a value. Duck-typed: Typer
    carries a Click of its own."""
    command = typer.main.get_command(app)
    stack: list[Any] = [command]
    while stack:
        cmd = stack.pop()
        helper = cmd.get_help_option(typer.Context(cmd))  # made once per command, then reused
        for param in [*cmd.params, helper]:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        stack.extend(getattr(cmd, "commands", {}).values())
    return command


def _interrupted(args: list[str]) -> int:
    """Ctrl-C: one line on stderr, exit 130; for a command that keeps what it measured, that it
    is kept and the command that resumes it."""
    import shlex

    words = [a for a in args if not a.startswith("-")]
    if words and words[0] in RESUMABLE:
        again = shlex.join(["edgebench", *args])
        sys.stderr.write(f"\ninterrupted: the measurements finished so far are kept; to resume, run again: {again}\n")
    else:
        sys.stderr.write("\ninterrupted\n")
    return EXIT_INTERRUPTED


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
