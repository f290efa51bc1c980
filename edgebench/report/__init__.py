"""The report stage: budgets -> gates -> verdicts, Markdown and HTML reports, run comparison.

Light to import: matplotlib is only imported when an HTML report with plots is rendered.
"""

from __future__ import annotations

from pathlib import Path

from edgebench.report.gates import exit_code, judged, verdicts, with_verdicts


def render_report(run_dir: Path) -> tuple[Path, Path]:
    """Render ``run_dir/report.md`` and ``run_dir/report.html`` from ``run_dir/results.json``."""
    from edgebench.report.render import render_report as _render

    return _render(Path(run_dir))


def compare_runs(a: Path, b: Path, tolerance=None) -> dict:
    """Diff two runs (folders or results.json files); see :mod:`edgebench.report.compare`."""
    from edgebench.report.compare import compare_runs as _compare

    return _compare(a, b, tolerance)


__all__ = ["with_verdicts", "judged", "exit_code", "verdicts", "render_report", "compare_runs"]
