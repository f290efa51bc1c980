"""The render entry point: ``results.json`` in, ``report.md`` and ``report.html`` out."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.report.gates import judged
from edgebench.results import Results
from edgebench.util.io import atomic_write_text, read_json

log = logging.getLogger(__name__)


def load_results(path: str | Path) -> tuple[Results, Path]:
    """Read a run's results: *path* is a run folder holding ``results.json`` or the file itself.

    Returns ``(results, run_dir)``: the typed :class:`edgebench.results.Results`, verdicts
    included (as assembled; evaluated here only for a file that has none, or whose budgets were
    edited since: :func:`edgebench.report.gates.judged`). Raises :class:`EdgebenchError` for a
    missing or corrupt file, a schema this version cannot read, or a file that does not match it
    (one line naming the field path, what was expected and what was found).
    """
    p = Path(path)
    file = p / "results.json" if p.is_dir() else p
    if not p.exists():
        raise EdgebenchError(f"run not found: expected a run folder with results.json or a results.json file at {p}")
    return judged(read_json(file, "results.json"), str(file)), file.parent


def render_results(results: Results | dict, out_dir: Path, with_plots: bool = True) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into *out_dir* from *results* (typed, or the
    assembled results.json object, validated here once)."""
    from edgebench.report.html import render_html
    from edgebench.report.markdown import render_markdown
    from edgebench.report.model import build_report

    started = time.perf_counter()
    typed = judged(results)
    report = build_report(typed)
    md_path = atomic_write_text(Path(out_dir) / "report.md", render_markdown(typed, report))
    html_path = atomic_write_text(Path(out_dir) / "report.html", render_html(typed, report, with_plots))
    log.info("rendered %s and %s in %.2f s", md_path, html_path, time.perf_counter() - started)
    return md_path, html_path


def render_report(run_dir: Path) -> tuple[Path, Path]:
    """Read ``run_dir/results.json``; write ``run_dir/report.md`` and ``run_dir/report.html``
    atomically (results.json is not written)."""
    results, folder = load_results(run_dir)
    return render_results(results, folder)
