"""What the commands share to print: the two consoles, progress bars on stderr, a view's
renderables, JSON. The views themselves (tables, lines) live in ``edgebench.report.*_view``.

Where output goes, for every command: what the user asked for (the result tables, the line
saying what was written, ``--json``) on stdout, so ``edgebench run > log`` keeps it; progress
and status on stderr, so ``--json`` stays parseable while the run still shows it is alive;
``--quiet`` silences only the progress (errors still reach stderr, results stdout).
Only this module names ``err_console`` (``tests/cli/test_thin.py``): a command prints its
result with :func:`show` or :func:`print_json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

# Progress and status go to stderr so that results (and --json) on stdout stay clean.
# Piped output (CI logs) gets a wide console so tables are not squeezed to 80 columns.
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out_console = Console(width=None if sys.stdout.isatty() else 160)


class PipelineUi:
    """Turns pipeline events into Rich progress bars and status lines (on stderr)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
            disable=quiet,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> PipelineUi:
        return self  # the bars start with the first task: a run that stops before prints none

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.progress.stop()

    def __call__(self, event: str, payload: dict) -> None:
        if event == "status":
            if not self.quiet:  # whole, never wrapped: a log keeps one line per status
                self.progress.console.print(status_line(payload.get("text", "")), soft_wrap=True)
        elif event == "task":
            if not self.tasks:
                self.progress.start()
            self.tasks[payload["id"]] = self.progress.add_task(payload["text"], total=payload.get("total"))
        elif event == "advance" and payload["id"] in self.tasks:
            self.progress.advance(self.tasks[payload["id"]], payload.get("by", 1))
        elif event == "done" and payload["id"] in self.tasks:
            task = self.tasks[payload["id"]]
            self.progress.update(task, completed=self.progress.tasks[task].total)


def status_line(text: str) -> Text:
    """A progress line as printed on stderr: a dim dot, then *text* as it is (not markup: a
    path or a reason holding ``[...]`` is printed whole)."""
    line = Text("· ", style="dim")
    line.append(text)
    return line


def progress_line(msg: str) -> None:
    """One plain progress line on stderr (no markup: device output and paths are data)."""
    err_console.print(msg, markup=False, highlight=False)


def print_json(obj: Any) -> None:
    """A command's ``--json`` result on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def show(console: Console, view: Iterable[RenderableType]) -> None:
    """Print a view's renderables one by one: a ``str`` as Rich markup (highlighted), a table or
    text as it is; a soft line (:func:`edgebench.report.markup.soft_line`) whole, uncropped.
    *console* is :data:`out_console`: a view is a command's result."""
    from edgebench.report.markup import is_soft

    for item in view:
        console.print(item, soft_wrap=is_soft(item))


@contextmanager
def profile_progress() -> Iterator[Callable[[dict], None] | None]:
    """A transient progress bar for ``edgebench profile`` on a terminal stderr; yields the
    callback for the agent's progress events (``None`` when there is no bar)."""
    if not err_console.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("profiling", total=None)

    def on_progress(event: dict) -> None:
        from edgebench.report.format import mode

        desc = (
            f"profiling batch {event.get('batch', '')} {mode(event.get('mode')) if event.get('mode') else ''}".strip()
        )
        progress.update(task, completed=event.get("done", 0), total=event.get("total"), description=desc)

    with progress:
        yield on_progress
