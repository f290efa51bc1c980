"""Cold start: the first inferences after open(), reported apart from the steady state."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from edgebench.backends.null import NullBackend
from edgebench.backends.onnxruntime import OnnxRuntimeBackend
from edgebench.backends.options import TimingBudget
from edgebench.errors import EdgebenchError

LAZY_S = 0.02


class LazyBackend(NullBackend):
    """The null backend with a lazy first call, as runtimes that pick kernels on first use do."""

    name = "lazy"

    def _open(self) -> None:
        super()._open()
        self.executes = 0

    def _execute(self, prepared: Any) -> Any:
        self.executes += 1
        if self.executes == 1:
            time.sleep(LAZY_S)
        return super()._execute(prepared)


def _feed(batch: int = 2) -> dict[str, np.ndarray]:
    return {"input": np.zeros((batch, 1, 28, 28), dtype=np.float32)}


def test_cold_start_captures_the_first_inference_and_not_the_steady_state() -> None:
    with LazyBackend(None) as be:
        cold = be.cold_start(_feed(), iterations=10)
        steady = be.time([_feed()], TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=20, min_duration_s=0.0))
        assert len(steady.samples_ms) == 20 and steady.warmup_iters == 0
        assert be.executes == 30
    assert cold["iterations"] == 10 and len(cold["first_n_ms"]) == 10 and cold["batch"] == 2
    assert cold["first_inference_ms"] == cold["first_n_ms"][0] >= LAZY_S * 1000  # sleep never returns early
    assert cold["first_n_mean_ms"] == pytest.approx(sum(cold["first_n_ms"]) / 10)
    assert cold["load_time_s"] == be.load_time_s is not None


def test_cold_start_must_be_first() -> None:
    with LazyBackend(None) as be:
        be.infer(_feed())
        with pytest.raises(RuntimeError, match="before any other inference"):
            be.cold_start(_feed())
    with LazyBackend(None) as be:
        be.time([_feed()], TimingBudget(0, 0.0, 1, 0.0))
        with pytest.raises(RuntimeError, match="before any other inference"):
            be.cold_start(_feed())
    with LazyBackend(None) as be, pytest.raises(EdgebenchError, match="at least 1"):
        be.cold_start(_feed(), iterations=0)


def test_cold_start_on_onnxruntime(tiny_onnx) -> None:
    with OnnxRuntimeBackend(str(tiny_onnx)) as be:
        spec = be.input_specs()[0]
        x = np.zeros((1, *[int(d) for d in spec.shape[1:]]), dtype=spec.dtype)
        cold = be.cold_start({spec.name: x}, iterations=5)
    assert cold["load_time_s"] > 0 and len(cold["first_n_ms"]) == 5 and all(v > 0 for v in cold["first_n_ms"])
