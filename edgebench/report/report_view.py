"""What ``edgebench report`` prints: the verdict table of every device and the caveats beside
the verdicts (the same tables as the Markdown and HTML reports), where those files are, and the
exit code with its reason when it is not 0."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.markup import escape

from edgebench.report.model import build_report
from edgebench.report.terminal import verdict_tables
from edgebench.results import Results


def report_view(results: Results | dict, md: Path, html: Path, code: int, why: str = "") -> list[RenderableType]:
    view: list[RenderableType] = list(verdict_tables(build_report(results)))
    view.append(f"report: {escape(str(md))}\n        {escape(str(html))}")
    if code:
        view.append(f"exit code {code}" + (f": {escape(why)}" if why else ""))
    return view
