"""A backend's device clock (CUDA events on a GPU) times compute iterations beside the host
clock: one reading per timed iteration, warm-up excluded, inside the host interval. Here the
device clock is a second real clock (perf_counter) read at the same points CUDA events are."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgebench.backends.null import NullBackend
from edgebench.backends.options import TimingBudget


class _PerfCounterTimer:
    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._t1 = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (self._t1 - self._t0) * 1000.0


class ClockedBackend(NullBackend):
    name = "clocked"

    def device_timer(self) -> Any:
        return _PerfCounterTimer()


def test_device_clock_samples_match_the_timed_iterations() -> None:
    feeds = [{"input": np.zeros((2, 1, 28, 28), dtype=np.float32)}]
    budget = TimingBudget(warmup_iters=7, warmup_s=0.0, iterations=25, min_duration_s=0.0)
    with ClockedBackend(None) as be:
        res = be.time(feeds, budget, mode="compute")
        e2e = be.time(feeds, budget, mode="end_to_end")
    assert res.warmup_iters == 7 and len(res.samples_ms) == 25
    assert res.device_samples_ms is not None and len(res.device_samples_ms) == 25  # warm-up readings dropped
    assert all(0 < d <= h for d, h in zip(res.device_samples_ms, res.samples_ms))  # inside the host interval
    assert e2e.device_samples_ms is None  # end-to-end is the host's view only
    with NullBackend(None) as be:
        assert be.time(feeds, budget, mode="compute").device_samples_ms is None
