"""What the commands share to print: the two consoles, progress bars on stderr, a view's
renderables, JSON. The views themselves (tables, lines) live in ``edgebench.report.*_view``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# Progress and status go to stderr so that --json output on stdout stays clean.
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
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: str, payload: dict) -> None:
        if event == "status":
            if not self.quiet:
                self.progress.console.print(f"[dim]·[/dim] {payload.get('text', '')}", highlight=False)
        elif event == "task":
            self.tasks[payload["id"]] = self.progress.add_task(payload["text"], total=payload.get("total"))
        elif event == "advance" and payload["id"] in self.tasks:
            self.progress.advance(self.tasks[payload["id"]], payload.get("by", 1))
        elif event == "done" and payload["id"] in self.tasks:
            task = self.tasks[payload["id"]]
            self.progress.update(task, completed=self.progress.tasks[task].total)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def show(console: Console, view: Iterable[RenderableType]) -> None:
    """Print a view's renderables one by one: a ``str`` as Rich markup (highlighted), a table or
    text as it is; a soft line (:func:`edgebench.report.markup.soft_line`) whole, uncropped."""
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
        desc = f"profiling batch {event.get('batch', '')} {event.get('mode', '')}".strip()
        progress.update(task, completed=event.get("done", 0), total=event.get("total"), description=desc)

    with progress:
        yield on_progress
