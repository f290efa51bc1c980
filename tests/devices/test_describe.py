"""The local device describes itself: CPU facts from /proc/cpuinfo text, a measured peak and
bandwidth cached per machine, and rooflines that say the peak was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.devices.describe import cpu_info, describe_local, device_profile
from edgebench.devices.inventory import DeviceSpec, load_inventory
from edgebench.measure.roofline import peak_kind, roofline

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


def test_cpu_info_from_an_x86_cpuinfo() -> None:
    info = cpu_info(str(DATA / "cpuinfo_x86.txt"))  # this development host's first processor block
    assert info["model"] == "AMD EPYC"
    assert info["simd"] == ["sse4_2", "avx", "avx2", "fma", "f16c"]  # in SIMD_FLAGS order
    assert "asimd" not in info["simd"] and info["cores_logical"] >= 1


def test_cpu_info_from_an_arm64_cpuinfo() -> None:
    info = cpu_info(str(DATA / "cpuinfo_arm64.txt"))  # Jetson Orin (Cortex-A78AE) Features line
    assert info["simd"] == ["asimd", "asimdhp", "asimddp"]
    assert info["model"]  # no "model name" on Arm: the platform's processor/machine name instead


def test_measured_once_per_machine_then_cached(tmp_path: Path) -> None:
    first = describe_local(tmp_path)
    cache = Path(first["cache"])
    assert cache.parent == tmp_path and cache.is_file()
    assert first["peak_kind"] == "measured" and first["peak_gops"]["fp32"] > 0 and first["memory_bandwidth_gbs"] > 0
    assert set(first["peak_gops"]) == {"fp32"}  # other precisions are not guessed
    stored = json.loads(cache.read_text())
    stored["sgemm_gops"] = 12345.0  # what the cache says is what is reported: nothing re-measured
    cache.write_text(json.dumps(stored))
    assert describe_local(tmp_path)["peak_gops"]["fp32"] == 12345.0
    assert describe_local(tmp_path, refresh=True)["peak_gops"]["fp32"] != 12345.0


def test_the_local_device_profile_is_measured_a_yaml_peak_is_kept() -> None:
    spec = load_inventory(ROOT / "devices", ROOT / "no-user-file.yaml")["local"]
    assert not spec.profile.get("peak_gops")  # devices/local.yaml carries no fixed numbers
    prof = device_profile(spec)
    assert prof["peak_kind"] == "measured" and prof["peak_gops"]["fp32"] > 0
    r = roofline(1_000_000, 50.0, 1, "fp32", prof, bytes_per_batch=4e6)
    assert r["peak_kind"] == "measured" and r["share_of_peak"] == pytest.approx(r["achieved_gops"] / r["peak_gops"])
    fixed = DeviceSpec(name="local", kind="local", profile={"peak_gops": {"fp32": 100.0}})
    assert device_profile(fixed) == {"peak_gops": {"fp32": 100.0}}
    assert roofline(1_000_000, 1.0, 1, "fp32", device_profile(fixed))["peak_kind"] == "theoretical"
    orin = load_inventory(ROOT / "devices", ROOT / "no-user-file.yaml")["jetson-orin-nano"]
    assert device_profile(orin) == dict(orin.profile)  # an SSH device never runs the host's benchmark


def test_peak_kind_rules() -> None:
    assert peak_kind({}) is None
    assert peak_kind({"peak_gops": {"fp32": 1}, "peak_source": "measured: sgemm"}) == "measured"
    assert peak_kind({"peak_gops": {"fp32": 1}, "peak_source": "theoretical: 2 x 3.7 GHz"}) == "theoretical"
    assert peak_kind({"peak_gops": {"fp32": 1}, "peak_kind": "measured"}) == "measured"


def test_opening_the_local_device_describes_it_before_any_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgebench.devices.registry import open_device

    monkeypatch.setenv("EDGEBENCH_CACHE_DIR", str(tmp_path))
    spec = load_inventory(ROOT / "devices", ROOT / "no-user-file.yaml")["local"]
    with open_device(spec):
        assert list((tmp_path / "devices").glob("local-*.json"))  # measured on open, not mid-run
