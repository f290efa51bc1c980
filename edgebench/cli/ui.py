"""Rich rendering shared by the commands: progress bars for pipeline events, tables, JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
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


def fmt(value: Any, spec: str = ".3g", unit: str = "") -> str:
    """A number for a table, or 'unmeasured' when nobody measured it."""
    if value is None:
        return "[dim]unmeasured[/dim]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:{spec}}{unit}"
    return str(value)
