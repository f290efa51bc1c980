"""``report.md``: the report as GitHub-flavoured Markdown tables.

Every value is escaped for Markdown tables (``|``) and for the inline HTML that Markdown
renderers pass through (``<``, ``>``, ``&``), so a candidate name cannot inject markup.
"""

from __future__ import annotations

from edgebench.report.gates import GATES
from edgebench.report.model import build_report
from edgebench.report.tables import Report, Table
from edgebench.results import Results

_STATUS_MARK = {
    "pass": "✅ ",
    "fail": "❌ ",
    "ready": "✅ ",
    "not-ready": "❌ ",
    "unmeasured": "⚠️ ",
    "warn": "⚠️ ",
    "inconclusive": "❔ ",
}
_GATE_KEYS = {"verdict", *(g.name for g in GATES)}


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell and against inline HTML."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("`", "\\`")
    )


def table_md(table: Table, heading: str = "###") -> str:
    lines = [f"{heading} {md_escape(table.title)}", ""]
    if not table.rows:
        lines += ["(nothing measured)", ""]
        return "\n".join(lines)
    lines.append("| " + " | ".join(md_escape(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        cells = []
        for cell in row:
            mark = _STATUS_MARK.get(cell.status, "")
            if cell.status == "unmeasured" and cell.key not in _GATE_KEYS:
                mark = ""
            shown = f"{cell.text} ({cell.detail})" if cell.detail else cell.text
            cells.append(mark + md_escape(shown))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if table.note:
        lines += [f"_{md_escape(table.note)}_", ""]
    return "\n".join(lines)


def render_markdown(results: Results | dict, report: Report | None = None) -> str:
    """The whole Markdown report for *results* (typed, or a results.json object)."""
    report = report or build_report(results)
    out = [f"# edgebench readiness report: {md_escape(report.run_id)}", ""]
    for label, value in report.headline:
        out.append(f"- **{md_escape(label)}**: {md_escape(value)}")
    out.append("- **Verdicts**: " + ", ".join(f"{n} {md_escape(s)}" for s, n in report.counts.items()))
    out.append("")
    for section in report.sections:
        out += [f"## {md_escape(section.title)}", ""]
        if section.note:
            out += [md_escape(section.note), ""]
        for table in section.tables:
            out.append(table_md(table))
    out.append('Values nobody measured are shown as "unmeasured" (never as 0).')
    return "\n".join(out) + "\n"
