"""``seeds:`` on ``--engine ray``: every seed's run goes through the Ray engine (its task log in
each seed's folder), and the top-level results hold the spread of exactly those runs' numbers."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE, run_study

from edgebench.scale.engine_ray import TASKS

STUDY = {
    "name": "seedray",
    "seeds": [0, 1],
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": [
        "base",
        {"name": "sparse-50", "prune": {"ratio": 0.5, "structured": False, "finetune": {"epochs": 0}}},
    ],
    "attacks": {"samples": 16, "settings": ["transfer"], "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": {**TINY_PROFILE, "rounds": 2},
    "devices": ["local"],
}


@pytest.mark.slow
def test_seeds_run_on_a_local_ray(tmp_path: Path) -> None:
    res, out = run_study(STUDY, tmp_path, "--engine", "ray", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    per = {}
    for seed in (0, 1):
        folder = out / f"seed-{seed}"
        tasks = json.loads((folder / TASKS).read_text())["tasks"]  # Ray measured this seed's candidates
        assert sorted(t["candidate"] for t in tasks) == ["base", "sparse-50"]
        per[seed] = json.loads((folder / "results.json").read_text())
    top = json.loads((out / "results.json").read_text())
    st = next(s for s in top["seeds"]["stats"] if s["candidate"] == "sparse-50" and s["key"] == "clean")
    values = [
        next(c for c in per[s]["candidates"] if c["name"] == "sparse-50")["devices"]["local"]["clean_accuracy"]
        for s in (0, 1)
    ]
    assert st["values"] == pytest.approx(values)
    assert st["mean"] == pytest.approx(statistics.mean(values)) and st["std"] == pytest.approx(statistics.stdev(values))
    assert "## Seeds" in (out / "report.md").read_text()
