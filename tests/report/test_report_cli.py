"""edgebench report / edgebench compare: exit codes for --fail-on, JSON output, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_helpers import EVIL_NAME, entry, load_fixture, write_run
from typer.testing import CliRunner

from edgebench.cli.main import app, main

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def ready_run(tmp_path: Path) -> Path:
    """Only READY candidates."""
    r = load_fixture()
    r["candidates"] = [c for c in r["candidates"] if c["name"] in ("base", "pruned-50")]
    return write_run(tmp_path / "ready", r)


@pytest.fixture
def unmeasured_run(tmp_path: Path) -> Path:
    """READY and UNMEASURED candidates, none NOT READY."""
    r = load_fixture()
    r["candidates"] = [c for c in r["candidates"] if c["name"] != EVIL_NAME]
    return write_run(tmp_path / "unmeasured", r)


@pytest.mark.parametrize("fail_on, expected", [("not-ready", 1), ("unmeasured", 1), ("never", 0)])
def test_fail_on_with_not_ready(run_dir: Path, fail_on, expected):
    res = invoke("report", str(run_dir), "--fail-on", fail_on)
    assert res.exit_code == expected, res.output
    assert "NOT READY" in res.output and "UNMEASURED" in res.output
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()


@pytest.mark.parametrize("fail_on, expected", [("not-ready", 0), ("unmeasured", 3), ("never", 0)])
def test_fail_on_with_unmeasured(unmeasured_run: Path, fail_on, expected):
    assert invoke("report", str(unmeasured_run), "--fail-on", fail_on).exit_code == expected


def test_all_ready_exits_zero_even_when_strict(ready_run: Path):
    res = invoke("report", str(ready_run), "--fail-on", "unmeasured")
    assert res.exit_code == 0, res.output
    assert "READY" in res.output


def test_default_fail_on_is_not_ready(run_dir: Path, unmeasured_run: Path):
    assert invoke("report", str(run_dir)).exit_code == 1
    assert invoke("report", str(unmeasured_run)).exit_code == 0


def test_json_output(run_dir: Path):
    res = invoke("report", str(run_dir / "results.json"), "--json", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["report_html"] == str(run_dir / "report.html")
    assert data["exit_code"] == 0
    statuses = {v["candidate"]: v["status"] for v in data["verdicts"]}
    assert statuses == {"base": "READY", "pruned-50": "READY", "int8": "UNMEASURED", EVIL_NAME: "NOT READY"}


def test_bad_fail_on_and_missing_run_are_user_errors(tmp_path: Path, run_dir: Path, capsys):
    # Through the real entry point: one line on stderr, exit code 2.
    assert main(["report", str(run_dir), "--fail-on", "sometimes"]) == 2
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "error: --fail-on: expected one of not-ready, unmeasured, never, found 'sometimes'" in err
    assert "error: run not found" in err and "Traceback" not in err


def test_compare_finds_injected_regression(tmp_path: Path):
    a = write_run(tmp_path / "a", load_fixture())
    r = load_fixture()
    entry(r, "pruned-50")["latency_ms"]["p99"] *= 2
    entry(r, "base")["clean_accuracy"] -= 0.05
    b = write_run(tmp_path / "b", r)
    res = invoke("compare", str(a), str(b))
    assert res.exit_code == 1, res.output
    assert "latency_ms.p99" in res.output and "clean_accuracy" in res.output
    res = invoke("compare", str(a), str(b), "--json")
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and data["regressed"]
    assert {(x["candidate"], x["metric"]) for x in data["rows"] if x["regressed"]} >= {
        ("pruned-50", "latency_ms.p99"),
        ("base", "clean_accuracy"),
    }


def test_compare_same_run_is_clean(run_dir: Path):
    res = invoke("compare", str(run_dir), str(run_dir / "results.json"), "--all")
    assert res.exit_code == 0, res.output
    assert "0 regression(s)" in res.output and "every metric" in res.output


def test_compare_tolerance_options(tmp_path: Path):
    a = write_run(tmp_path / "a", load_fixture())
    r = load_fixture()
    entry(r, "pruned-50")["latency_ms"]["p50"] *= 1.15
    b = write_run(tmp_path / "b", r)
    assert invoke("compare", str(a), str(b)).exit_code == 1
    assert invoke("compare", str(a), str(b), "--latency-tolerance", "0.2").exit_code == 0
    assert main(["compare", str(a), str(b), "--latency-tolerance", "-1"]) == 2


def test_help_has_examples():
    for cmd in ("report", "compare"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0 and "Examples" in res.output and f"edgebench {cmd} " in res.output
