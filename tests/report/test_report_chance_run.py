"""A real run whose base has random weights (``train_epochs: 0``): its accuracy is chance, and
the verdicts must say so on the terminal, in --json and in both reports; with
``budgets.min_accuracy`` above it, it is NOT READY (issue 23: it was READY, with no warning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from report_helpers import find_cell, html_cells
from tiny_study import TINY_PROFILE
from typer.testing import CliRunner

from edgebench.cli.main import app
from edgebench.study.config import load_study
from edgebench.study.pipeline import Pipeline

STUDY = {
    "name": "chance",
    "model": {"arch": "resnet8", "train_epochs": 0},  # random weights
    "data": {"name": "digits", "eval_count": 100, "calib_count": 32, "train_count": 400},
    "candidates": ["base", {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}}],
    "attacks": {"samples": 8, "suite": [{"name": "fgsm", "eps_255": [8]}], "settings": ["transfer"]},
    "profile": {**TINY_PROFILE, "profile_ops": False},
    "budgets": {
        "max_p99_latency_ms": 1000.0,
        "max_peak_memory_mb": 4096,
        "max_accuracy_drop": 0.5,
        "max_robustness_drop": 0.5,
        "min_accuracy": 0.5,
    },
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chance")
    (folder / "study.yaml").write_text(yaml.safe_dump(STUDY))
    out = folder / "out"
    Pipeline(load_study(folder / "study.yaml"), out).run()
    return out


def test_a_random_base_is_flagged_and_not_ready(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    entries = {c["name"]: c["devices"]["local"] for c in results["candidates"]}
    assert entries["base"]["clean_accuracy"] < 0.3  # the premise: 10 classes, weights never trained
    for name, e in entries.items():
        verdict = e["verdict"]
        gate = next(g for g in verdict["gates"] if g["name"] == "clean_accuracy")
        assert (gate["value"], gate["threshold"], gate["status"]) == (e["clean_accuracy"], 0.5, "fail")
        assert verdict["status"] == "NOT READY", name
        assert "base at chance" in [c["label"] for c in verdict["caveats"]]

    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 1, res.output
    terminal = " ".join(res.output.split())
    assert "Caveats on local" in terminal and "base at chance" in terminal and "(10 classes)" in terminal
    data = json.loads(runner.invoke(app, ["report", str(run_dir), "--json"]).stdout)
    assert all("base at chance" in [c["label"] for c in v["caveats"]] for v in data["verdicts"])
    assert "base at chance" in (run_dir / "report.md").read_text()
    cells = html_cells((run_dir / "report.html").read_text())
    assert "base at chance" in find_cell(cells, "t-verdict-local", "base", "caveats")["text"]


def test_without_a_floor_the_caveat_still_warns(run_dir: Path, tmp_path: Path) -> None:
    """The same results with min_accuracy removed (budgets edited: the report judges them again):
    no gate catches the random base, so the caveat is the warning."""
    results = json.loads((run_dir / "results.json").read_text())
    results["budgets"]["min_accuracy"] = None
    (tmp_path / "results.json").write_text(json.dumps(results))
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--json", "--fail-on", "never"])
    for v in json.loads(res.stdout)["verdicts"]:
        assert "clean_accuracy" not in [g["name"] for g in v["gates"]]
        assert "base at chance" in [c["label"] for c in v["caveats"]]
