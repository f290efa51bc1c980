"""The tegrastats parser on every real line in the shared fixture, and the sampler pipeline.

The sampler tests put a tiny script named ``tegrastats`` first on PATH that prints the REAL
fixture lines at the requested ``--interval`` (no parsing or invention of its own): real
tegrastats output flowing through the real sampler (subprocess, reader thread, parser,
aggregation), the only way to exercise it without a Jetson.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from pathlib import Path

import pytest
from events import wait_for

from edgebench.agent.protocol import ProfileJob
from edgebench.agent.telemetry import make_sampler
from edgebench.agent.telemetry.tegrastats import TegrastatsSampler, aggregate, parse_tegrastats_line
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError

FIXTURE = Path("/work/shared/fixtures/tegrastats.txt")
if not FIXTURE.is_file():  # the fixture also lives next to these tests when the repo is copied elsewhere
    FIXTURE = Path(__file__).with_name("tegrastats.txt")


def fixture_lines() -> list[str]:
    return [ln.rstrip("\n") for ln in FIXTURE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


LINES = fixture_lines()
AGX_ORIN, ORIN_NANO, XAVIER = LINES[0], LINES[1], LINES[2]


@pytest.mark.parametrize("line", LINES, ids=[f"line{i}" for i in range(len(LINES))])
def test_every_fixture_line_parses_completely(line: str) -> None:
    r = parse_tegrastats_line(line)
    assert r.ram_used_mb and r.ram_total_mb and r.ram_used_mb <= r.ram_total_mb
    assert r.swap_total_mb is not None and r.swap_cached_mb is not None
    assert r.cpus and all(c.load_pct is not None for c in r.cpus if c.online)
    assert r.gpu_util_pct is not None and r.emc_util_pct is not None
    assert r.temps_c and all(v > -256 for v in r.temps_c.values())
    assert r.rails and r.power_total_mw is not None and r.power_total_mw > 0
    assert r.power_source in ("VDD_IN", "sum of rails")


def test_agx_orin_line_timestamp_gpcs_absent_sensors_and_rail_sum() -> None:
    r = parse_tegrastats_line(AGX_ORIN)
    assert r.timestamp == "04-11-2025 10:36:27"
    assert (r.ram_used_mb, r.ram_total_mb, r.lfb_blocks, r.lfb_block_mb) == (4321, 62801, 1759, 4)
    assert (r.swap_used_mb, r.swap_total_mb, r.swap_cached_mb) == (19, 31400, 0)
    assert len(r.cpus) == 12 and all(c.online and c.freq_mhz == 729 for c in r.cpus)
    assert (r.emc_util_pct, r.emc_freq_mhz) == (0.0, 2133)
    assert r.gpu_util_pct == 0.0 and r.gpu_freq_mhz == (0, 0)  # GR3D_FREQ 0%@[0,0]: two GPCs
    assert r.engines == {"VIC_FREQ": "729", "APE": "174"}
    # CV0/CV1/CV2/GPU read -256C: absent sensors, dropped
    assert set(r.temps_c) == {"CPU", "Tboard", "SOC2", "Tdiode", "SOC0", "tj", "SOC1"}
    assert r.temps_c["CPU"] == pytest.approx(44.562)
    # no VDD_IN on this board: total is the sum of the rails (the two NC rails are kept apart)
    assert r.rails_mw == {
        "VDD_GPU_SOC": 2340.0,
        "VDD_CPU_CV": 390.0,
        "VIN_SYS_5V0": 4025.0,
        "NC": 0.0,
        "VDDQ_VDD2_1V8AO": 301.0,
        "NC#2": 0.0,
    }
    assert r.power_total_mw == 2340 + 390 + 4025 + 301
    assert r.power_source == "sum of rails"


def test_orin_nano_line_lowercase_temps_off_engines_and_vdd_in() -> None:
    r = parse_tegrastats_line(ORIN_NANO)
    assert r.timestamp == "11-30-2025 13:26:01"
    assert [c.load_pct for c in r.cpus] == [19, 14, 22, 8, 15, 17]
    assert r.cpu_util_mean_pct == pytest.approx((19 + 14 + 22 + 8 + 15 + 17) / 6)
    assert (r.emc_util_pct, r.emc_freq_mhz) == (4.0, 2133)
    assert r.gpu_util_pct == 0.0 and r.gpu_freq_mhz == (305,)  # GR3D_FREQ 0%@[305]
    assert r.engines["NVDEC"] == "off" and r.engines["NVJPG1"] == "off" and r.engines["APE"] == "200"
    assert r.temps_c == pytest.approx(
        {"cpu": 46.531, "soc2": 47.312, "soc0": 46.593, "gpu": 48.218, "tj": 48.843, "soc1": 48.843}
    )
    assert r.power_total_mw == 5704.0 and r.power_source == "VDD_IN"  # the input rail, not the sum
    assert r.rails[0].average_mw == 5704.0


def test_xavier_jetpack4_line_no_timestamp_unitless_rails() -> None:
    r = parse_tegrastats_line(XAVIER)
    assert r.timestamp is None
    assert (r.ram_used_mb, r.swap_cached_mb) == (14700, 23)
    assert (r.emc_util_pct, r.emc_freq_mhz) == (0.0, None)  # EMC_FREQ 0%: no frequency
    assert r.gpu_util_pct == 0.0 and r.gpu_freq_mhz == ()  # GR3D_FREQ 0%
    assert r.temps_c["PMIC"] == 100.0 and r.temps_c["thermal"] == pytest.approx(30.8)
    assert r.rails_mw == {"GPU": 463.0, "CPU": 618.0, "SOC": 2936.0, "CV": 0.0, "VDDRQ": 309.0, "SYS5V": 3306.0}
    assert r.power_total_mw == 463 + 618 + 2936 + 309 + 3306


@pytest.mark.parametrize(
    ("form", "util", "freqs"),
    [("0%", 0.0, ()), ("37%@305", 37.0, (305,)), ("12%@[305]", 12.0, (305,)), ("99%@[1300,1298]", 99.0, (1300, 1298))],
)
def test_every_gr3d_form_and_gr3d2(form: str, util: float, freqs: tuple) -> None:
    """The four GR3D_FREQ spellings, substituted into a real Orin Nano line, plus GR3D2_FREQ."""
    line = ORIN_NANO.replace("GR3D_FREQ 0%@[305]", f"GR3D_FREQ {form} GR3D2_FREQ 5%@[611]")
    r = parse_tegrastats_line(line)
    assert (r.gpu_util_pct, r.gpu_freq_mhz) == (util, freqs)
    assert (r.gpu2_util_pct, r.gpu2_freq_mhz) == (5.0, (611,))


def test_offline_cores_are_off_not_zero() -> None:
    line = ORIN_NANO.replace("CPU [19%@729,14%@729,", "CPU [19%@729,off,")
    r = parse_tegrastats_line(line)
    assert r.cpus[1].online is False and r.cpus[1].load_pct is None
    assert r.cpu_util_mean_pct == pytest.approx((19 + 22 + 8 + 15 + 17) / 5)


def test_a_line_that_is_not_tegrastats_is_refused() -> None:
    with pytest.raises(EdgebenchError, match="expected a line with 'RAM used/totalMB'"):
        parse_tegrastats_line("NV Power Mode: 15W")


def test_aggregate_peaks_and_means_over_real_lines() -> None:
    readings = [parse_tegrastats_line(ln) for ln in LINES]
    agg = aggregate(readings, 0.5)
    assert agg["samples"] == 3 and agg["source"] == "tegrastats"
    assert agg["ram_used_peak_mb"] == 14700.0
    assert agg["power_mean_mw"] == pytest.approx((7056 + 5704 + 7632) / 3)
    assert agg["power_peak_mw"] == 7632
    assert agg["power_source"] == "VDD_IN, sum of rails"
    assert agg["gpu_util_mean_pct"] == 0.0  # measured zero, not unavailable
    assert agg["temp_peak_c"]["PMIC"] == 100.0 and agg["temp_peak_c"]["CPU"] == pytest.approx(44.562)
    assert agg["gpu_mem_used_peak_mb"] is None  # unified memory: unavailable as a separate number


def test_aggregate_of_nothing_is_unavailable_not_zero() -> None:
    agg = aggregate([], 0.2)
    assert agg["samples"] == 0
    assert agg["power_mean_mw"] is None and agg["ram_used_peak_mb"] is None and agg["gpu_util_mean_pct"] is None


@pytest.fixture
def tegrastats_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``tegrastats`` on PATH that replays the real fixture lines at ``--interval`` ms."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "tegrastats"
    script.write_text(
        f"#!{sys.executable} -S\n"
        "# Replays real tegrastats lines from the shared fixture; prints nothing of its own.\n"
        "import sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1]) if '--interval' in sys.argv else 1000\n"
        f"lines = [l for l in open({str(FIXTURE)!r}).read().splitlines() if l.strip() and not l.startswith('#')]\n"
        "while True:\n"
        "    for line in lines:\n"
        "        print(line, flush=True)\n"
        "        time.sleep(ms / 1000.0)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


def test_auto_picks_tegrastats_when_on_path_and_aggregates_its_output(tegrastats_on_path: Path) -> None:
    sampler = make_sampler("auto")
    assert sampler.source == "tegrastats"
    inner = sampler.inner
    assert isinstance(inner, TegrastatsSampler) and inner.binary == str(tegrastats_on_path)
    inner.interval_s = 0.05
    sampler.start()
    wait_for(lambda: len(inner._readings) >= len(LINES), "reading of every replayed tegrastats line")
    out = sampler.stop()
    assert out["source"] == "tegrastats" and out["samples"] >= 3 and out["unparsed_lines"] == 0
    assert out["ram_used_peak_mb"] == 14700.0  # the Xavier line was among them
    assert 5704 <= out["power_mean_mw"] <= 7632
    assert out["rails_mean_mw"]["VDD_IN"] == 5704.0
    assert [f["source"] for f in out["fallbacks"]] == ["jtop"]
    assert inner._proc is not None and inner._proc.poll() is not None  # the child was stopped


def test_agent_profile_job_reports_power_and_energy_from_tegrastats(
    tegrastats_on_path: Path, small_onnx: Path, digits_inputs: Path, tmp_path: Path, fast_budget: TimingBudget
) -> None:
    """The whole path: agent subprocess -> make_sampler(job telemetry) -> energy per inference."""
    from edgebench.devices.inventory import builtin_local
    from edgebench.devices.local import LocalDevice

    job = ProfileJob(
        artifact=str(small_onnx),
        inputs=str(digits_inputs),
        modes=("end_to_end",),
        budget=dataclasses.replace(fast_budget, min_duration_s=0.5),
        telemetry="tegrastats",
        telemetry_interval_s=0.02,
        options=BackendOptions(threads=1),
        result=str(tmp_path / "r.json"),
    )
    result = LocalDevice(builtin_local()).run_job(job)
    tel = result["telemetry"]
    assert tel["source"] == "tegrastats" and tel["samples"] >= 1
    assert 5704 <= tel["power_mean_mw"] <= 7632
    energy = result["runs"][0]["energy"]  # per timed window; see test_energy.py for the arithmetic
    assert energy["rail"] == "VDD_IN" and energy["power_mean_mw"] == 5704.0 and energy["gross_mj_per_item"] > 0
