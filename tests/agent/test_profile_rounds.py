"""Interleaved timing rounds (issue 19): on a device whose speed drifts during the pass, the
speed-up of one model over another comes out right only when their rounds are interleaved, and
its interval covers the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent import jobs
from edgebench.agent.protocol import RoundsEntry, RoundsJob, parse_job
from edgebench.backends import registry
from edgebench.backends.options import TimingBudget
from edgebench.measure.speedup import paired_speedup
from tests.agent import drifting_backend

TRUE_SPEEDUP = 2.0  # base costs 0.6 ms, the candidate 0.3 ms, on the same drifting device


@pytest.fixture
def drifting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(registry.BACKENDS, "drifting", ("tests.agent.drifting_backend", "DriftingBackend", None))
    drifting_backend.reset()
    for name, cost in (("base", 0.6), ("fast", 0.3)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"cost_ms": cost}))
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32))
    return tmp_path


def _job(folder: Path, rounds: int) -> RoundsJob:
    # 0.5 s per model in all: the pass spans the 1 s ramp, so the device is 3x slower by its end
    budget = TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=10, min_duration_s=0.5)
    entries = tuple(RoundsEntry(n, str(folder / f"{n}.json"), "drifting") for n in ("base", "fast"))
    return RoundsJob(
        entries=entries, inputs=str(folder / "x.npz"), modes=("compute",), budget=budget,
        rounds=rounds, telemetry="none", idle_s=0.0,
    )  # fmt: skip


def _speedup(result: dict) -> dict:
    base, fast = (result["models"][n]["runs"][0] for n in ("base", "fast"))
    return paired_speedup(base["round_p50_ms"], fast["round_p50_ms"])


def test_interleaved_rounds_recover_the_true_speedup_under_drift(drifting: Path) -> None:
    result = jobs.run_profile_rounds(_job(drifting, rounds=8))
    s = _speedup(result)
    assert s["rounds"] == 8
    assert abs(s["ratio"] / TRUE_SPEEDUP - 1) < 0.15, s
    lo, hi = s["ci95"]
    assert lo <= TRUE_SPEEDUP <= hi, s
    # every round rotated the order, and both models were timed in every round
    orders = [r["order"] for r in result["rounds"]]
    assert orders[:2] == [["base", "fast"], ["fast", "base"]]
    base_rounds = result["models"]["base"]["runs"][0]["round_p50_ms"]
    assert base_rounds[-1] > 1.8 * base_rounds[0]  # the planted drift is real: base itself slowed down


def test_one_round_is_the_old_protocol_and_drift_biases_it(drifting: Path) -> None:
    # one round = base timed fully, then the candidate: the candidate meets the slow device
    result = jobs.run_profile_rounds(_job(drifting, rounds=1))
    s = _speedup(result)
    assert s["ci95"] == [None, None]
    assert s["ratio"] < 0.75 * TRUE_SPEEDUP, s


def test_pooled_statistics_keep_every_round(drifting: Path) -> None:
    job = _job(drifting, rounds=4)
    result = jobs.run_profile_rounds(job)
    run = result["models"]["fast"]["runs"][0]
    seg = jobs.segment_budget(job.budget, 4)
    assert len(run["round_p50_ms"]) == 4
    assert run["latency_ms"]["samples"] >= 4 * seg.iterations
    assert result["sessions"] == "shared"


def test_rounds_job_round_trips_and_refuses_bad_fields(tmp_path: Path) -> None:
    job = RoundsJob(entries=(RoundsEntry("a", "a.onnx"), RoundsEntry("b", "b.onnx")), inputs="x.npz", rounds=3)
    assert parse_job(job.to_json()) == job
    moved = job.relocated({"a.onnx": "/d/a.onnx", "b.onnx": "/d/b.onnx", "x.npz": "/d/x.npz"}, {})
    assert [e.path for e in moved.entries] == ["/d/a.onnx", "/d/b.onnx"] and moved.inputs == "/d/x.npz"
    with pytest.raises(Exception, match="distinct entry names"):
        RoundsJob(entries=(RoundsEntry("a", "a.onnx"), RoundsEntry("a", "b.onnx")), inputs="x.npz")
    with pytest.raises(Exception, match="rounds expected >= 1"):
        RoundsJob(entries=(RoundsEntry("a", "a.onnx"),), inputs="x.npz", rounds=0)
