"""trtexec output from TensorRT 7, 8.4 and 10 (the shared fixture of real lines) into edgebench keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.backends.tensorrt.trtexec import parse_line, parse_trtexec
from edgebench.measure.stats import summarize_latency

FIXTURE = Path(__file__).with_name("trtexec.txt")  # a copy of ../shared/fixtures/trtexec.txt
LATENCY_KEYS = set(summarize_latency([1.0, 2.0]))


@pytest.fixture(scope="module")
def lines() -> list[str]:
    if not FIXTURE.is_file():
        pytest.skip(f"the shared trtexec fixture is not at {FIXTURE}")
    return [line for line in FIXTURE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _find(lines: list[str], needle: str) -> str:
    return next(line for line in lines if needle in line)


def test_every_performance_line_is_understood(lines: list[str]) -> None:
    parsed = [parse_line(line) for line in lines]
    # only the "=== Performance summary ===" banner carries no number
    unparsed = [line for line, p in zip(lines, parsed) if p is None]
    assert len(unparsed) == 1 and "Performance summary" in unparsed[0]


def test_tensorrt10_summary_has_all_percentiles(lines: list[str]) -> None:
    kind, lat = parse_line(_find(lines, "Latency: min = 5.38672"))
    assert kind == "latency_ms"
    assert set(lat) == LATENCY_KEYS
    assert lat["min"] == 5.38672 and lat["max"] == 13.3664 and lat["mean"] == 7.60628
    assert lat["p50"] == 7.16092 and lat["p90"] == 10.2996 and lat["p95"] == 10.8698 and lat["p99"] == 12.9675
    assert lat["std"] is None and lat["samples"] is None  # not printed: None, never 0
    kind, gpu = parse_line(_find(lines, "GPU Compute Time"))
    assert kind == "gpu_compute_ms" and gpu["p50"] == 7.14139 and gpu["p99"] == 12.9485
    assert parse_line(_find(lines, "Throughput:")) == ("throughput", {"qps": 130.298})
    assert parse_line(_find(lines, "Total Host Walltime")) == ("walltime", {"seconds": 3.00082})


def test_tensorrt84_summary_has_only_p99(lines: list[str]) -> None:
    kind, lat = parse_line(_find(lines, "min = 0.387207"))
    assert kind == "latency_ms"
    assert lat["p99"] == 0.420288 and lat["p50"] == 0.401947 and lat["min"] == 0.387207
    assert lat["p90"] is None and lat["p95"] is None


def test_tensorrt7_mean_end_to_end(lines: list[str]) -> None:
    kind, values = parse_line(_find(lines, "end to end"))
    assert kind == "trt7_mean"
    assert values["latency_ms"]["mean"] == 643.169 and values["end_to_end_ms"] == 643.169
    assert set(values["latency_ms"]) == LATENCY_KEYS and values["latency_ms"]["p50"] is None


def test_average_trace_line(lines: list[str]) -> None:
    kind, values = parse_line(_find(lines, "Average on 10 runs"))
    assert kind == "average"
    assert values == {"runs": 10, "gpu_ms": 1.8825, "host_ms": 1.8825, "enqueue_ms": 0.00217285}


def test_warnings(lines: list[str]) -> None:
    kind, values = parse_line(_find(lines, "coefficient of variance"))
    assert kind == "unstable" and values["cv"] == pytest.approx(0.0210486)
    assert values["what"] == "GPU compute time"
    kind, _ = parse_line(_find(lines, "Enqueue Time rather"))
    assert kind == "enqueue_bound"


def test_a_tensorrt10_log_as_a_whole(lines: list[str]) -> None:
    text = "\n".join(lines[:5] + [_find(lines, "coefficient of variance"), _find(lines, "Enqueue Time rather")])
    out = parse_trtexec(text, batch=4)
    assert out["latency_ms"]["p99"] == 12.9675
    assert out["latency_ms"]["throughput_ips"] == pytest.approx(130.298 * 4)
    assert out["gpu_compute_ms"]["cv"] == pytest.approx(0.0210486)
    assert out["gpu_compute_ms"]["unstable"] is False  # 2.1 % is under edgebench's 10 % rule
    assert out["warnings"] == {"unstable_cv": pytest.approx(0.0210486), "enqueue_bound": True}
    assert out["host_walltime_s"] == 3.00082


def test_noise_is_ignored() -> None:
    assert parse_line("[I] Loading ONNX file from path model.onnx") is None
    assert parse_line("") is None
    assert parse_trtexec("nothing useful\n") == {
        "averages": [],
        "warnings": {"unstable_cv": None, "enqueue_bound": False},
    }
