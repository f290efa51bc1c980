"""Roofline: achieved GOP/s from MACs and latency, share of the device's peak, memory/compute bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.errors import EdgebenchError
from edgebench.measure.roofline import bytes_per_batch, roofline

PROFILE = {"peak_gops": {"fp32": 100.0, "int8": 400.0}, "memory_bandwidth_gbs": 10.0}


def test_achieved_and_share() -> None:
    # 1e9 MACs x batch 2 = 4e9 ops in 100 ms -> 40 GOP/s = 40 % of 100
    r = roofline(1_000_000_000, 100.0, 2, "fp32", PROFILE)
    assert r["achieved_gops"] == pytest.approx(40.0)
    assert r["peak_gops"] == 100.0 and r["share_of_peak"] == pytest.approx(0.40)
    assert r["precision"] == "fp32"
    assert r["bound"] is None  # no byte estimate: bound unknown, never guessed
    r8 = roofline(1_000_000_000, 100.0, 2, "int8", PROFILE)
    assert r8["share_of_peak"] == pytest.approx(0.10)


def test_bound_from_arithmetic_intensity() -> None:
    # ridge = 100 / 10 = 10 ops/byte
    ops = 2 * 1_000_000
    low = roofline(1_000_000, 1.0, 1, "fp32", PROFILE, bytes_per_batch=ops / 2.0)  # AI 2
    high = roofline(1_000_000, 1.0, 1, "fp32", PROFILE, bytes_per_batch=ops / 50.0)  # AI 50
    assert low["bound"] == "memory" and low["attainable_gops"] == pytest.approx(20.0)
    assert high["bound"] == "compute" and high["attainable_gops"] == pytest.approx(100.0)
    assert low["ridge_intensity"] == pytest.approx(10.0)


def test_unknowns_stay_unknown() -> None:
    assert roofline(None, 1.0, 1, "fp32", PROFILE) is None
    assert roofline(1000, None, 1, "fp32", PROFILE) is None
    r = roofline(1000, 1.0, 1, "fp32", {})
    assert r["achieved_gops"] == pytest.approx(2e-3) and r["peak_gops"] is None and r["share_of_peak"] is None
    assert roofline(1000, 1.0, 1, "fp16", PROFILE)["share_of_peak"] is None  # no fp16 peak given


def test_bad_arguments() -> None:
    with pytest.raises(EdgebenchError, match="precision"):
        roofline(1000, 1.0, 1, "fp64", PROFILE)
    with pytest.raises(EdgebenchError, match="batch"):
        roofline(1000, 1.0, 0, "fp32", PROFILE)
    with pytest.raises(EdgebenchError, match="peak_gops"):
        roofline(1000, 1.0, 1, "fp32", {"peak_gops": 100})


def test_bytes_per_batch() -> None:
    assert bytes_per_batch(1000, 200, 4) == 1000 + 2 * 200 * 4
    assert bytes_per_batch(None, 200, 1) is None


def test_the_local_device_profile_is_usable() -> None:
    """The local device's self-description (a measured fp32 peak and bandwidth) feeds the roofline."""
    from edgebench.devices.describe import device_profile
    from edgebench.devices.inventory import load_inventory

    root = Path(__file__).resolve().parents[2]
    spec = load_inventory(root / "devices", root / "no-user-file.yaml")["local"]
    profile = device_profile(spec)
    assert profile["peak_gops"]["fp32"] > 0 and profile["memory_bandwidth_gbs"] > 0
    r = roofline(1_000_000, 50.0, 1, "fp32", profile, bytes_per_batch=50e6)
    assert 0 < r["share_of_peak"] < 1 and r["bound"] in ("memory", "compute") and r["peak_kind"] == "measured"
