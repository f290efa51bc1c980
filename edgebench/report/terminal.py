"""The report model in a terminal: Rich tables from :class:`~edgebench.report.tables.Table`.

The third rendering of the same report (beside Markdown and HTML), so the terminal can never
show a number or verdict the files do not. Every cell's text is escaped (a candidate name is
data, not Rich markup); its status colours it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table as RichTable

if TYPE_CHECKING:
    from edgebench.report.tables import Report, Table

STYLE = {
    "ready": "bold green",
    "not-ready": "bold red",
    "unmeasured": "yellow",
    "pass": "green",
    "fail": "red",
    "warn": "yellow",
    "inconclusive": "bold magenta",
}


def rich_table(table: Table) -> RichTable:
    """One report table as a Rich table (numeric columns right-aligned, text left-aligned)."""
    out = RichTable(title=escape(table.title), header_style="bold", caption=escape(table.note) or None)
    for i, col in enumerate(table.columns):
        values = [row[i].value for row in table.rows if i < len(row) and row[i].value is not None]
        numeric = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out.add_column(escape(col), justify="right" if numeric else "left", overflow="fold")
    for row in table.rows:
        cells = []
        for cell in row:
            text = escape(cell.text)
            style = STYLE.get(cell.status)
            cells.append(f"[{style}]{text}[/]" if style else text)
        out.add_row(*cells)
    return out


def verdict_tables(report: Report) -> list[RichTable]:
    """The verdict table of every device and its caveats, as the Markdown and HTML reports show them."""
    section = next((s for s in report.sections if s.key == "verdicts"), None)
    return [] if section is None else [rich_table(t) for t in section.tables]


def speedup_tables(report: Report) -> list[RichTable]:
    """Every device's speed-up over base (with its interval), as the reports show it."""
    return [rich_table(t) for s in report.sections for t in s.tables if t.key.startswith("speedup-")]
