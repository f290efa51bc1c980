"""The base runner's harness, measured through the null backend (after MLPerf's)."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.backends.null import NullBackend
from edgebench.backends.options import BackendOptions, TimingBudget
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
    opts = BackendOptions(classes=7, input_shape=(1, 3, 4, 4))
    with NullBackend(None, opts) as be:
        out = be.infer({"input": np.zeros((5, 3, 4, 4), np.float32)})
    assert out[0].shape == (5, 7)


class _CountingBackend(NullBackend):
    """The null backend with every step counted, so a test sees which steps each timing mode
    runs per timed iteration. ``_prepare`` wraps the feed in a tagged tuple so ``_execute`` can
    check it got prepared inputs, and ``_fetch`` sleeps so end-to-end samples must include it."""

    FETCH_S = 0.002

    def _open(self) -> None:
        super()._open()
        self.calls = {"prepare": 0, "execute": 0, "fetch": 0}

    def _prepare(self, feed: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
        self.calls["prepare"] += 1
        return ("prepared", feed)

    def _execute(self, prepared: object) -> list[np.ndarray]:
        assert isinstance(prepared, tuple) and prepared[0] == "prepared", "execute got unprepared inputs"
        self.calls["execute"] += 1
        return super()._execute(prepared[1])

    def _fetch(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        import time

        self.calls["fetch"] += 1
        time.sleep(self.FETCH_S)
        return list(raw)


def test_compute_mode_prepares_once_and_never_fetches() -> None:
    """compute = execute + synchronize on inputs placed once: no _prepare or _fetch per iteration."""
    feeds = _feeds(n=3)
    with _CountingBackend(None) as be:
        res = be.time(feeds, TimingBudget(warmup_iters=4, warmup_s=0.0, iterations=25, min_duration_s=0.0), "compute")
        calls = dict(be.calls)
    assert res.mode == "compute" and res.warmup_iters == 4 and len(res.samples_ms) == 25
    assert calls == {"prepare": len(feeds), "execute": 4 + 25, "fetch": 0}


def test_end_to_end_mode_prepares_and_fetches_inside_every_timed_iteration() -> None:
    """end_to_end = prepare + execute + synchronize + fetch, each inside the timed interval."""
    with _CountingBackend(None) as be:
        res = be.time(_feeds(), TimingBudget(warmup_iters=4, warmup_s=0.0, iterations=25, min_duration_s=0.0))
        calls = dict(be.calls)
    assert res.mode == "end_to_end" and len(res.samples_ms) == 25
    assert calls == {"prepare": 4 + 25, "execute": 4 + 25, "fetch": 4 + 25}
    # _fetch sleeps FETCH_S: a sample that includes it cannot be shorter (a lower bound, not a speed goal)
    assert min(res.samples_ms) >= _CountingBackend.FETCH_S * 1000


def test_a_backend_refuses_an_option_it_does_not_take() -> None:
    """An option meant for another backend is one line naming it, before anything loads (the
    constructor checks: no model file is read)."""
    from edgebench.backends.onnxruntime import OnnxRuntimeBackend

    with pytest.raises(EdgebenchError) as info:
        OnnxRuntimeBackend("model.onnx", BackendOptions(compile=True, workspace_mb=64))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("backend onnxruntime: option compile, workspace_mb is not one it takes")
    assert "provider" in msg  # what it does take
    with pytest.raises(EdgebenchError, match="backend null: option provider"):
        NullBackend(None, BackendOptions(provider="cuda"))
    # the options it declares, and the common ones, pass
    OnnxRuntimeBackend("model.onnx", BackendOptions(threads=1, provider="cpu", graph_optimization="none"))
