"""Energy per inference: the arithmetic on known samples, and the whole pipeline with real
tegrastats lines replayed at a known rate by a stand-in ``tegrastats`` process on PATH
(``tegrastats_replay.py``) while real timed windows run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from events import wait_for

from edgebench.agent.protocol import ProfileJob
from edgebench.agent.telemetry import make_sampler
from edgebench.agent.telemetry.energy import PowerSample, PowerTrace, window_energy, window_power
from edgebench.agent.telemetry.tegrastats import input_rail_trace, parse_tegrastats_line
from edgebench.backends.null import NullBackend
from edgebench.backends.options import BackendOptions, TimingBudget

sys.path.insert(0, str(Path(__file__).parent))
import tegrastats_replay  # noqa: E402

FIXTURE = Path(__file__).with_name("tegrastats.txt")  # a copy of ../shared/fixtures/tegrastats.txt
LINES = [ln for ln in FIXTURE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
AGX_ORIN, ORIN_NANO, XAVIER = LINES[0], LINES[1], LINES[2]
IDLE_MW, BUSY_MW = 5704.0, 9120.0  # ORIN_NANO's VDD_IN, and the same line at a busier reading
BUSY = ORIN_NANO.replace("VDD_IN 5704mW/5704mW", "VDD_IN 9120mW/7000mW")


def test_window_arithmetic() -> None:
    samples = [PowerSample(0.1 * k, mw) for k, mw in enumerate([5000, 5000, 8000, 9000, 10000, 5000])]
    # window [0.2, 0.4] holds 8000, 9000, 10000: mean 9000 mW over 0.2 s = 1800 mJ, 100 items
    e = window_energy(samples, 0.2, 0.4, 100, "VDD_IN", 0.1, idle_mw=5000.0)
    assert e["power_mean_mw"] == pytest.approx(9000.0) and e["samples"] == 3
    assert e["gross_mj_per_item"] == pytest.approx(18.0)
    assert e["net_mj_per_item"] == pytest.approx((9000 - 5000) * 0.2 / 100)
    assert (e["rail"], e["interval_ms"], e["idle_power_mw"], e["items"]) == ("VDD_IN", 100.0, 5000.0, 100)
    assert "reason" not in e


def test_a_window_too_short_for_the_interval_is_null_with_a_reason() -> None:
    samples = [PowerSample(0.1 * k, 5000.0) for k in range(10)]
    e = window_energy(samples, 0.2, 0.35, 10, "VDD_IN", 0.1, idle_mw=4000.0)
    assert e["power_mean_mw"] is None and e["gross_mj_per_item"] is None and e["net_mj_per_item"] is None
    assert "shorter than 2 sampler intervals" in e["reason"]
    mean, n, reason = window_power(samples, 0.05, 0.14, None)  # one sample, no interval known
    assert mean is None and n == 1 and "expected at least 2" in reason


def test_without_an_idle_baseline_net_is_null_gross_is_not() -> None:
    samples = [PowerSample(0.1 * k, 6000.0) for k in range(10)]
    e = window_energy(samples, 0.0, 0.5, 5, "VDD_IN", 0.1, idle_mw=None, idle_reason="1 sample")
    assert e["gross_mj_per_item"] == pytest.approx(600.0) and e["net_mj_per_item"] is None
    assert "idle baseline 1 sample" in e["reason"]


def test_only_the_input_rail_counts_never_a_sum_of_module_rails() -> None:
    timed = [(float(k), parse_tegrastats_line(ln)) for k, ln in enumerate([AGX_ORIN, ORIN_NANO, XAVIER, BUSY])]
    rail, samples, reason = input_rail_trace(timed, PowerSample)
    assert rail == "VDD_IN" and reason is None
    assert samples == [PowerSample(1.0, IDLE_MW), PowerSample(3.0, BUSY_MW)]  # the rail sums are left out
    rail, samples, reason = input_rail_trace([(0.0, parse_tegrastats_line(AGX_ORIN))], PowerSample)
    assert rail is None and samples == [] and "no input rail (VDD_IN / POM_5V_IN)" in reason
    jp4 = XAVIER.replace("SYS5V 3306/3306", "POM_5V_IN 4100/4000")  # JetPack 4 Nano/TX2 naming
    rail, samples, _ = input_rail_trace([(0.0, parse_tegrastats_line(jp4))], PowerSample)
    assert rail == "POM_5V_IN" and samples == [PowerSample(0.0, 4100.0)]


def test_psutil_gives_energy_null_with_the_reason() -> None:
    trace = PowerTrace(make_sampler("psutil"))
    e = trace.energy((0.0, 1.0), 10)
    assert e["gross_mj_per_item"] is None and "does not sample the board's input power rail" in e["reason"]


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in tegrastats on PATH; returns the state file (write 'busy' or 'idle')."""
    tegrastats_replay.install(tmp_path / "bin")
    (tmp_path / "idle.txt").write_text(ORIN_NANO + "\n")
    (tmp_path / "busy.txt").write_text(BUSY + "\n")
    state = tmp_path / "state"
    state.write_text("idle")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EDGEBENCH_REPLAY_IDLE", str(tmp_path / "idle.txt"))
    monkeypatch.setenv("EDGEBENCH_REPLAY_BUSY", str(tmp_path / "busy.txt"))
    monkeypatch.setenv("EDGEBENCH_REPLAY_STATE", str(state))
    return state


def test_replayed_tegrastats_through_timed_windows(replay: Path) -> None:
    """Idle baseline, then a real timed window while the board reads busy: the record is the
    replayed powers' arithmetic exactly."""
    sampler = make_sampler("tegrastats", interval_s=0.02)
    trace = PowerTrace(sampler)
    feeds = [{"input": np.zeros((4, 1, 28, 28), dtype=np.float32)}]
    with NullBackend(None) as be:
        sampler.start()
        trace.measure_idle(0.3)
        replay.write_text("busy")
        # the window opens once a busy line has been read: every idle line before it was read
        # earlier, so none can land in the window, however slowly the stand-in is scheduled
        wait_for(lambda: any(p.mw == BUSY_MW for p in sampler.power_trace()[1]), "busy tegrastats line read")
        res = be.time(feeds, TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=1, min_duration_s=0.5))
        replay.write_text("idle")
        telemetry = sampler.stop()
    assert telemetry["unparsed_lines"] == 0
    items = len(res.samples_ms) * 4
    e = trace.energy(res.window, items)
    w = res.window[1] - res.window[0]
    assert e["rail"] == "VDD_IN" and e["interval_ms"] == 20.0 and e["samples"] >= 2
    assert e["power_mean_mw"] == BUSY_MW and e["idle_power_mw"] == IDLE_MW
    assert e["gross_mj_per_item"] == pytest.approx(BUSY_MW * w / items)
    assert e["net_mj_per_item"] == pytest.approx((BUSY_MW - IDLE_MW) * w / items)
    assert e["window_s"] == pytest.approx(w) and e["items"] == items


def test_agent_profile_job_reports_energy_per_run(
    replay: Path, tiny_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    """The agent subprocess: one energy record per batch and mode, each over its own window."""
    from edgebench.devices.inventory import builtin_local
    from edgebench.devices.local import LocalDevice

    job = ProfileJob(
        artifact=str(tiny_onnx),
        inputs=str(digits_npz),
        batches=(1, 4),
        modes=("end_to_end", "compute"),
        budget=TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=5, min_duration_s=0.3),
        telemetry="tegrastats",
        telemetry_interval_s=0.02,
        idle_s=0.2,
        options=BackendOptions(threads=1),
    )
    result = LocalDevice(builtin_local()).run_job(job)
    assert "energy_per_inference_mj" not in result["telemetry"]  # no blended figure any more
    assert len(result["runs"]) == 4
    for run in result["runs"]:
        e = run["energy"]
        assert e["rail"] == "VDD_IN" and e["power_mean_mw"] == IDLE_MW  # the stand-in stays idle here
        items = run["latency_ms"]["samples"] * run["batch"]
        assert e["items"] == items
        assert e["gross_mj_per_item"] == pytest.approx(IDLE_MW * e["window_s"] / items)
        assert e["net_mj_per_item"] == pytest.approx(0.0)


def test_jtop_stats_give_the_input_rail_only() -> None:
    from edgebench.agent.telemetry.jetson_stats import input_rail_reading

    # jetson.stats as jtop 4 delivers it on an Orin Nano: per-rail "Power <name>" and "Power TOT"
    stats = {
        "CPU1": 12,
        "GPU": 0,
        "Power VDD_CPU_GPU_CV": 831,
        "Power VDD_SOC": 1624,
        "Power VDD_IN": 5704,
        "Power TOT": 5704,
    }
    assert input_rail_reading(stats) == ("VDD_IN", 5704.0)
    agx_orin = {"Power VDD_GPU_SOC": 2340, "Power VDD_CPU_CV": 390, "Power TOT": 7056}  # no input rail
    assert input_rail_reading(agx_orin) is None
    assert input_rail_reading({"Power POM_5V_IN": 4100, "Power TOT": 4100}) == ("POM_5V_IN", 4100.0)
