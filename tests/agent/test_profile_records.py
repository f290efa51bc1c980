"""The profile job's cold-start record, through the real agent subprocess on a real model."""

from __future__ import annotations

from pathlib import Path

from edgebench.agent.protocol import ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.inventory import builtin_local
from edgebench.devices.local import LocalDevice

FAST = TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=15, min_duration_s=0.0)


def test_profile_reports_cold_start_apart_from_steady_state(tiny_onnx: Path, digits_npz: Path) -> None:
    result = LocalDevice(builtin_local()).run_job(
        ProfileJob(
            artifact=str(tiny_onnx),
            inputs=str(digits_npz),
            batches=(4, 1),
            modes=("end_to_end",),
            budget=FAST,
            options=BackendOptions(threads=1),
            cold_start_iters=7,
            telemetry="none",
        )
    )
    cold = result["cold_start"]
    assert cold["iterations"] == 7 and len(cold["first_n_ms"]) == 7 and cold["batch"] == 4
    assert cold["load_time_s"] == result["load_time_s"] > 0
    steady = next(r for r in result["runs"] if r["batch"] == 4)["latency_ms"]
    assert cold["steady_p50_ms"] == steady["p50"] and steady["samples"] == 15  # cold iterations not in it
    off = LocalDevice(builtin_local()).run_job(
        ProfileJob(
            artifact=str(tiny_onnx),
            inputs=str(digits_npz),
            budget=FAST,
            modes=("end_to_end",),
            cold_start_iters=0,
            telemetry="none",
        )
    )
    assert off["cold_start"] is None
