"""The base runner's harness, measured through the null backend (after MLPerf's)."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.backends.base import BackendOptions, TimingBudget
from edgebench.backends.null import NullBackend
from edgebench.errors import EdgebenchError


def _feeds(batch: int = 2, n: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"input": rng.random((batch, 1, 28, 28), dtype=np.float32)} for _ in range(n)]


def test_iterations_bounded_by_count_when_duration_is_short() -> None:
    with NullBackend(None) as be:
        res = be.time(_feeds(), TimingBudget(warmup_iters=3, warmup_s=0.0, iterations=37, min_duration_s=0.0))
    assert len(res.samples_ms) == 37
    assert res.warmup_iters == 3
    summary = res.summary()
    assert summary["samples"] == 37 and summary["warmup_iters"] == 3
    assert summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]
    assert summary["throughput_ips"] == pytest.approx(2 * 1000.0 / summary["mean"])


def test_iterations_extend_to_the_minimum_duration() -> None:
    with NullBackend(None) as be:
        res = be.time(_feeds(), TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=5, min_duration_s=0.05))
    assert len(res.samples_ms) > 5  # a null inference is far shorter than 10 ms


def test_max_iterations_caps_the_run() -> None:
    with NullBackend(None) as be:
        res = be.time(
            _feeds(), TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=5, min_duration_s=10.0, max_iterations=50)
        )
    assert len(res.samples_ms) == 50


def test_warmup_runs_until_time_is_reached() -> None:
    with NullBackend(None) as be:
        res = be.time(_feeds(), TimingBudget(warmup_iters=1, warmup_s=0.03, iterations=1, min_duration_s=0.0))
    assert res.warmup_iters > 1


def test_compute_and_end_to_end_modes_are_named() -> None:
    with NullBackend(None) as be:
        c = be.time(_feeds(), TimingBudget(0, 0.0, 5, 0.0), mode="compute")
        e = be.time(_feeds(), TimingBudget(0, 0.0, 5, 0.0), mode="end_to_end")
    assert (c.mode, e.mode) == ("compute", "end_to_end")


def test_state_and_input_checks() -> None:
    be = NullBackend(None)
    with pytest.raises(RuntimeError, match="open"):
        be.infer(_feeds()[0])
    with be:
        with pytest.raises(EdgebenchError, match=r"expects shape \(\?, 1, 28, 28\), found \(2, 3, 28, 28\)"):
            be.infer({"input": np.zeros((2, 3, 28, 28), np.float32)})
        with pytest.raises(EdgebenchError, match="expects dtype float32, found float64"):
            be.infer({"input": np.zeros((2, 1, 28, 28))})
        with pytest.raises(EdgebenchError, match=r"expects \['input'\], found \['x'\]"):
            be.infer({"x": np.zeros((2, 1, 28, 28), np.float32)})
        with pytest.raises(EdgebenchError, match="at least one input batch"):
            be.time([], TimingBudget())


def test_budget_validation() -> None:
    with pytest.raises(EdgebenchError, match="iterations"):
        TimingBudget(iterations=0)
    with pytest.raises(EdgebenchError, match="negative"):
        TimingBudget(warmup_s=-1)


def test_null_backend_options() -> None:
    opts = BackendOptions(extra=(("classes", 7), ("input_shape", ("batch", 3, 4, 4))))
    with NullBackend(None, opts) as be:
        out = be.infer({"input": np.zeros((5, 3, 4, 4), np.float32)})
    assert out[0].shape == (5, 7)
