"""edgebench report / edgebench compare: exit codes for --fail-on, JSON output, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from caveat_helpers import add_masked_whitebox, set_accuracy
from report_helpers import EVIL_NAME, entry, find_cell, html_cells, load_fixture, write_run
from typer.testing import CliRunner

from edgebench.cli.main import app, main
from edgebench.report.markdown import md_escape

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
    assert "error: --fail-on: expected one of not-ready, inconclusive, unmeasured, never, found 'sometimes'" in err
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


def test_nothing_measured_fails_the_readme_ci_gate(tmp_path: Path):
    """The README's CI recipe, ``edgebench report reports/nightly`` with the default --fail-on,
    on a run where no candidate was measured on its device: every verdict is UNMEASURED."""
    r = load_fixture()
    for c in r["candidates"]:
        c["devices"] = {}
    run = write_run(tmp_path / "nightly", r)
    res = invoke("report", str(run))
    assert res.exit_code == 3, res.output
    assert "exit code 3: every verdict is UNMEASURED" in res.output
    data = json.loads(invoke("report", str(run), "--json").stdout)
    assert data["exit_code"] == 3 and data["exit_reason"].startswith("every verdict is UNMEASURED")
    assert invoke("report", str(run), "--fail-on", "never").exit_code == 0


def md_row(md: str, table: str, candidate: str) -> list[str]:
    section = md.split(f"### {table}", 1)[1].split("\n### ", 1)[0]
    line = next(x for x in section.splitlines() if x.startswith(f"| {candidate} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_caveats_beside_the_verdict_in_terminal_json_and_reports(tmp_path: Path):
    """A base at chance, an unstable latency and a failed sanity check: each shown beside its
    verdict on the terminal, in --json, report.md and report.html."""
    r = load_fixture()
    set_accuracy(r, "base", 0.113)
    add_masked_whitebox(r, "pruned-50")
    run = write_run(tmp_path / "run", r)
    expected = {
        "base": ["base at chance"],
        "pruned-50": ["accuracy above 5% at eps 255/255: possible gradient masking (unbounded_eps)", "base at chance"],
        EVIL_NAME: ["unstable latency", "base at chance"],
    }
    res = invoke("report", str(run), "--fail-on", "never")
    assert res.exit_code == 0, res.output
    terminal = " ".join(res.output.split())
    for label in ("base at chance", "possible gradient masking", "unstable latency", "Caveats on local"):
        assert label in terminal
    assert "11.3%" in terminal and "chance 10.0% (10 classes)" in terminal  # the numbers, not just the label
    verdicts = {v["candidate"]: v for v in json.loads(invoke("report", str(run), "--json").stdout)["verdicts"]}
    md = (run / "report.md").read_text()
    cells = html_cells((run / "report.html").read_text())
    for name, labels in expected.items():
        assert [c["label"] for c in verdicts[name]["caveats"]] == labels
        assert md_row(md, "Verdict on local", md_escape(name))[2] == "⚠️ " + md_escape("; ".join(labels))
        cell = find_cell(cells, "t-verdict-local", name, "caveats")
        assert cell["text"] == "; ".join(labels) and "warn" in cell["cls"].split()
        details = [c["text"] for c in cells if c["table"] == "t-caveats-local" and c["candidate"] == name]
        assert all(c["detail"] in details for c in verdicts[name]["caveats"])
    assert "- **Caveats**: base at chance: base on local, pruned-50 on local" in md
