"""What ``edgebench search`` prints: the recommended candidate per device (or the closest one
when none meets the budgets), and where the results and reports are."""

from __future__ import annotations

from pathlib import Path

from edgebench.report.run_view import files_line
from edgebench.report.search_tables import recommendation_line


def search_view(results: dict, run_dir: Path) -> list[str]:
    record = results.get("search") or {}
    return [recommendation_line(record, dev) for dev in record.get("pareto") or {}] + [files_line(run_dir)]
