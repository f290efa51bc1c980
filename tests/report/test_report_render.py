"""render_report: reads results.json, writes report.md + report.html atomically; light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import EVIL_NAME, write_run

from edgebench.errors import EdgebenchError
from edgebench.report import render_report
from edgebench.report.render import load_results


def test_render_report_writes_both(run_dir: Path):
    before = (run_dir / "results.json").read_text()
    md, html = render_report(run_dir)
    assert (md, html) == (run_dir / "report.md", run_dir / "report.html")
    assert "# edgebench readiness report: demo-lenet5" in md.read_text()
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert (run_dir / "results.json").read_text() == before  # the lead's file is not rewritten
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "report.md", "results.json"]  # no temp files


def test_render_overwrites(run_dir: Path, results):
    render_report(run_dir)
    results["run_id"] = "second-render"
    write_run(run_dir, results)
    md, html = render_report(run_dir)
    assert "second-render" in md.read_text() and "second-render" in html.read_text()


def test_verdicts_follow_the_budgets_in_results(run_dir: Path, results):
    results["budgets"]["max_p99_latency_ms"] = 10.0
    results["budgets"]["max_peak_memory_mb"] = None
    results["budgets"]["max_accuracy_drop"] = 0.1
    results["budgets"]["max_robustness_drop"] = 0.2
    write_run(run_dir, results)
    md, _ = render_report(run_dir)
    line = next(ln for ln in md.read_text().splitlines() if ln.startswith("| pruned-50+int8&lt;script"))
    assert "✅ READY" in line


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "run not found"),
        ("{not json", "is not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"schema": "other/9"}', "expected schema 'edgebench.results/1', found 'other/9'"),
    ],
)
def test_bad_input(tmp_path: Path, content, needle):
    target = tmp_path / "r"
    if content is not None:
        target.mkdir()
        (target / "results.json").write_text(content)
    with pytest.raises(EdgebenchError, match=needle.replace("(", r"\(")):
        render_report(target)


def test_results_file_path_accepted(run_dir: Path):
    results, folder = load_results(run_dir / "results.json")
    assert folder == run_dir and results.candidates[3].name == EVIL_NAME


def test_render_validates_once_and_reads_the_stored_verdicts(tmp_path: Path, monkeypatch):
    """The assembled results.json object (what the pipeline hands over) is validated once and
    its verdicts are read, never evaluated again; so are the verdicts of a loaded run."""
    from report_helpers import judged_fixture

    import edgebench.report.gates as gates
    import edgebench.results as results_module
    from edgebench.report.render import render_results

    assembled = judged_fixture()
    calls: list[str] = []
    real = results_module.validate_results
    monkeypatch.setattr(results_module, "validate_results", lambda *a: calls.append("validate") or real(*a))

    def evaluated(_results):  # noqa: ANN001, ANN202
        raise AssertionError("verdicts evaluated again")

    monkeypatch.setattr(gates, "with_verdicts", evaluated)
    md, _ = render_results(assembled, tmp_path, with_plots=False)
    assert calls == ["validate"]
    assert "NOT READY" in md.read_text()
    write_run(tmp_path / "run", assembled)
    results, _ = load_results(tmp_path / "run")
    assert gates.exit_code(results) == 1 and {v["status"] for v in gates.verdicts(results)} == {
        "READY",
        "UNMEASURED",
        "NOT READY",
    }


def test_import_is_light():
    code = (
        "import sys, edgebench.report, edgebench.report.gates, edgebench.report.compare, edgebench.cli.report;"
        "heavy = [m for m in ('matplotlib', 'torch', 'onnxruntime', 'foolbox') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().replace("'", '"')) == []
