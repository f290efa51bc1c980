"""The commands' views (``edgebench/report/*_view.py``) printed the way the CLI prints them."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgebench.cli.ui import show
from edgebench.report.profile_view import profile_view
from edgebench.report.run_view import run_view

FIXTURE = Path(__file__).resolve().parents[1] / "report" / "data" / "results.json"


def _printed(view: list, width: int) -> str:
    console = Console(file=io.StringIO(), width=width)
    show(console, view)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _profile(env: dict) -> dict:
    lat = {"p50": 1.0, "p90": 1.1, "p99": 1.2, "mean": 1.05, "cv": 0.02, "unstable": False, "throughput_ips": 950.0}
    return {
        "model": {
            "source": "m.onnx",
            "params": 1000,
            "params_source": "ONNX initializers",
            "macs": None,
            "weights": "w",
        },
        "device": "local",
        "backend": "onnxruntime",
        "precision": "fp32",
        "input": {"name": "x", "item_shape": [3, 8, 8], "source": "random"},
        "runs": [{"batch": 1, "mode": "compute", "latency_ms": lat}],
        "environment": env,
        "notes": ["a note"],
    }


def test_the_environment_line_is_printed_whole_and_the_rest_wraps() -> None:
    env = {"cpu_model": "a very long CPU name " * 5, "os": "Linux"}
    out = _printed(profile_view(_profile(env)), width=60)
    env_line = next(ln for ln in out.splitlines() if ln.startswith("environment: "))
    assert env_line == f"environment: cpu_model={env['cpu_model']}, os=Linux"  # one line, longer than 60
    assert "unmeasured" in out and "note: a note" in out
    assert all(len(ln) <= 60 for ln in out.splitlines() if not ln.startswith("environment: "))


def test_run_view_has_the_robustness_and_verdict_tables_then_the_files(tmp_path: Path) -> None:
    results = json.loads(FIXTURE.read_text())
    view = run_view(results, tmp_path)
    titles = [str(t.title) for t in view if isinstance(t, Table)]
    assert titles[0] == "robustness on local: accuracy under attacks crafted on base"
    assert any(t.startswith("Verdict on local") for t in titles)
    assert (
        view[-1]
        == f"results: {tmp_path / 'results.json'}\nreport:  {tmp_path / 'report.html'}  {tmp_path / 'report.md'}"
    )
    out = _printed(view, width=200)
    assert "fgsm-linf-8" in out and "NOT READY" in out
