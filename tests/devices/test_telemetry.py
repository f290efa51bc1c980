"""Telemetry source selection on this machine (no Jetson, no NVIDIA driver): what is picked,
what is reported unavailable and why, and that unavailable readings are None, never 0."""

from __future__ import annotations

import sys

import pytest
from events import wait_for

from edgebench.agent.telemetry import make_sampler
from edgebench.agent.telemetry.base import KEYS
from edgebench.agent.telemetry.nvml import NvmlSampler, nvml_unavailable_reason
from edgebench.errors import EdgebenchError


def _nvml_present() -> bool:
    return nvml_unavailable_reason() is None


# Both ways NVML can be missing on a host without an NVIDIA driver: the package absent, or the
# package present with no driver library to load. Each must say which, in one line.
NVML_MISSING = {
    "package_absent": "pynvml not importable",
    "driver_absent": "NVML did not load",
}


@pytest.fixture(params=sorted(NVML_MISSING))
def nvml_missing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the host in one NVML-less state for real (no stub of NVML itself)."""
    if _nvml_present():
        pytest.skip("this host has a working NVIDIA driver: NVML cannot be missing here")
    if request.param == "package_absent":
        monkeypatch.setitem(sys.modules, "pynvml", None)  # a real ImportError on `import pynvml`
    else:
        pytest.importorskip("pynvml", reason="nvidia-ml-py (in [dev]) is not installed: the no-driver path needs it")
    return NVML_MISSING[request.param]


def test_nvml_is_detected_unavailable_with_the_reason(nvml_missing: str) -> None:
    reason = nvml_unavailable_reason()
    assert reason is not None and reason.startswith(nvml_missing)
    with pytest.raises(EdgebenchError, match=f"telemetry 'nvml' is unavailable: {nvml_missing}"):
        make_sampler("nvml")
    with pytest.raises(EdgebenchError, match=nvml_missing):
        NvmlSampler()


def test_auto_falls_back_to_psutil_and_says_why(nvml_missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no tegrastats anywhere
    sampler = make_sampler("auto")
    assert sampler.source == "psutil"
    sampler.start()
    wait_for(lambda: sampler.inner._cpu, "psutil sample")  # a sample taken, however busy the machine
    out = sampler.stop()
    assert set(KEYS) <= set(out)
    assert out["source"] == "psutil" and out["samples"] >= 1
    assert out["ram_used_peak_mb"] > 0 and out["cpu_util_mean_pct"] is not None
    # what psutil cannot see is unavailable (None), not zero
    for key in ("power_mean_mw", "gpu_util_mean_pct", "gpu_mem_used_peak_mb", "temp_peak_c", "rails_mean_mw"):
        assert out[key] is None, key
    skipped = {f["source"]: f["reason"] for f in out["fallbacks"]}
    assert list(skipped) == ["jtop", "tegrastats", "nvml"]
    assert "tegrastats not on PATH" in skipped["tegrastats"] and skipped["nvml"].startswith(nvml_missing)


def test_none_samples_nothing_and_reports_every_key_as_unavailable() -> None:
    sampler = make_sampler("none")
    sampler.start()
    out = sampler.stop()
    assert out["source"] == "none" and out["samples"] == 0
    assert all(out[k] is None for k in KEYS if k not in ("source", "samples"))


def test_unknown_source_and_missing_tegrastats_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EdgebenchError, match=r"unknown source 'watts'.*expected one of"):
        make_sampler("watts")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EdgebenchError, match="telemetry 'tegrastats' is unavailable: tegrastats not on PATH"):
        make_sampler("tegrastats")


def test_jtop_without_jetson_stats_is_unavailable() -> None:
    from edgebench.agent.telemetry.jetson_stats import jtop_unavailable_reason

    reason = jtop_unavailable_reason()
    if reason is None:
        pytest.skip("jetson-stats and its service are present here")
    with pytest.raises(EdgebenchError, match="telemetry 'jtop' is unavailable"):
        make_sampler("jtop")
