"""``--engine ray`` without an address: a fresh local Ray started by the command, same run folder
layout and numbers as the default engine would write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from events import HANG_S
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE, run_study

from edgebench.scale.engine_ray import TASKS

STUDY = {
    "name": "localray",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": ["base", {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}}],
    "attacks": {"samples": 16, "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": TINY_PROFILE,
    "devices": ["local"],
}


@pytest.mark.slow
@pytest.mark.timeout(int(2 * HANG_S))
def test_run_on_a_local_ray(tmp_path: Path) -> None:
    res, out = run_study(STUDY, tmp_path, "--engine", "ray", timeout=HANG_S)
    assert res.returncode == 0, res.stderr[-3000:]
    tasks = json.loads((out / TASKS).read_text())["tasks"]
    assert sorted((t["candidate"], t["device"], tuple(t["measured"])) for t in tasks) == [
        ("base", "local", ("profile-solo", "replay", "replay-whitebox")),
        ("int8", "local", ("profile-solo", "replay", "replay-whitebox")),
    ]
    # then each device's actor timed both candidates together (profile.json: the interleaved pass)
    for name in ("base", "int8"):
        timed = json.loads((out / "measurements" / name / "local" / "profile.json").read_text())
        assert timed["interleaved"]["models"] == ["base", "int8"]
    results = json.loads((out / "results.json").read_text())
    for cand in results["candidates"]:
        local = cand["devices"]["local"]
        assert local["latency_ms"]["p50"] > 0 and local["clean_accuracy"] is not None
        # the white-box setting is measured on the Ray engine too, not only the transfer one
        assert {r["setting"] for r in local["robustness"]} == {"transfer", "whitebox"}
        assert local["verdict"]["status"] in ("READY", "NOT READY", "INCONCLUSIVE")  # 100 images decide little
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
