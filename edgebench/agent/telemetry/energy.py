"""Energy per inference from timestamped power samples of the board's input rail.

Each timed window (one batch size and mode, warm-up excluded; see
:attr:`edgebench.backends.base.TimingResult.window`) gets its own record: the mean power of
the samples taken inside the window, times the window's length, divided by the items it
processed (gross), and the same above the idle baseline measured just before the runs (net).
Power is the board's input rail only (``VDD_IN``, ``POM_5V_IN`` on JetPack 4 boards), never a
sum of module rails, which misses regulator losses and unmonitored rails. A window holding
fewer than :data:`MIN_SAMPLES` samples, or shorter than that many sampler intervals, gets
``None`` numbers and a ``reason``: a single reading is not an average over the window.

mW x s = mJ. Runs in the agent: standard library only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

MIN_SAMPLES = 2
IDLE_S = 1.0  # default length of the idle baseline before the timed windows


class PowerSample(NamedTuple):
    """One reading of the input rail: ``time.perf_counter()`` seconds at arrival, milliwatts."""

    t: float
    mw: float


def _window_samples(samples: Sequence[PowerSample], t0: float, t1: float) -> list[float]:
    return [s.mw for s in samples if t0 <= s.t <= t1]


def window_power(
    samples: Sequence[PowerSample], t0: float, t1: float, interval_s: float | None
) -> tuple[float | None, int, str | None]:
    """``(mean mW, samples, reason)`` over ``[t0, t1]``; the mean is None (with the reason)
    when the window is too short for the sampler's interval or holds too few samples."""
    inside = _window_samples(samples, t0, t1)
    length = t1 - t0
    if interval_s is not None and length < MIN_SAMPLES * interval_s:
        return (
            None,
            len(inside),
            f"window {length * 1000:.0f} ms is shorter than {MIN_SAMPLES} sampler intervals "
            f"({interval_s * 1000:.0f} ms each); lengthen min_duration_s or shorten the interval",
        )
    if len(inside) < MIN_SAMPLES:
        return None, len(inside), f"{len(inside)} power sample(s) in the window, expected at least {MIN_SAMPLES}"
    return sum(inside) / len(inside), len(inside), None


def unavailable(reason: str, rail: str | None = None, interval_s: float | None = None) -> dict:
    """The energy record when nothing can be computed, with the reason."""
    return {
        "power_mean_mw": None,
        "idle_power_mw": None,
        "gross_mj_per_item": None,
        "net_mj_per_item": None,
        "samples": 0,
        "interval_ms": interval_s * 1000.0 if interval_s is not None else None,
        "rail": rail,
        "reason": reason,
    }


def window_energy(
    samples: Sequence[PowerSample],
    t0: float,
    t1: float,
    items: int,
    rail: str,
    interval_s: float | None,
    idle_mw: float | None,
    idle_reason: str | None = None,
) -> dict:
    """The ``energy`` record of one timed window ``[t0, t1]`` that processed *items* items."""
    mean, n, reason = window_power(samples, t0, t1, interval_s)
    out = unavailable(reason or "", rail, interval_s)
    out.update(samples=n, idle_power_mw=idle_mw, window_s=t1 - t0, items=items)
    if mean is None or items <= 0:
        out["reason"] = reason or "no items processed in the window"
        return out
    out["power_mean_mw"] = mean
    out["gross_mj_per_item"] = mean * (t1 - t0) / items
    if idle_mw is not None:
        out["net_mj_per_item"] = (mean - idle_mw) * (t1 - t0) / items
        del out["reason"]
    else:
        out["reason"] = f"net energy unavailable: idle baseline {idle_reason or 'not measured'}"
    return out


class PowerTrace:
    """Collects input-rail samples from a sampler that offers them (see ``power_trace()`` on
    :class:`~edgebench.agent.telemetry.tegrastats.TegrastatsSampler`) and turns timed windows
    into energy records."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.idle_mw: float | None = None
        self.idle_reason: str | None = None
        self.idle_window: tuple[float, float] | None = None

    def _trace(self) -> tuple[str | None, list[PowerSample], str | None]:
        get = getattr(self.sampler, "power_trace", None)
        if get is None:
            source = getattr(self.sampler, "source", type(self.sampler).__name__)
            return None, [], f"telemetry source '{source}' does not sample the board's input power rail"
        return get()

    @property
    def interval_s(self) -> float | None:
        return getattr(self.sampler, "interval_s", None)

    def supported(self) -> bool:
        """Whether the sampler can give input-rail power at all (decides if idle is measured)."""
        return getattr(self.sampler, "power_trace", None) is not None

    def measure_idle(self, seconds: float = IDLE_S, sleep: Any = time.sleep) -> None:
        """Wait *seconds* with nothing running; remembers the window for :meth:`finish`."""
        if not self.supported() or seconds <= 0:
            return
        interval = self.interval_s or 0.0
        seconds = max(seconds, (MIN_SAMPLES + 1) * interval)
        t0 = time.perf_counter()
        sleep(seconds)
        self.idle_window = (t0, time.perf_counter())

    def energy(self, window: tuple[float, float] | None, items: int) -> dict:
        """The energy record of a timed window (call after the sampler stopped)."""
        rail, samples, reason = self._trace()
        if reason is not None or rail is None:
            return unavailable(reason or "no input rail", rail, self.interval_s)
        if window is None:
            return unavailable("the timed window was not recorded", rail, self.interval_s)
        idle_mw: float | None = None
        idle_reason: str | None = "not measured"
        if self.idle_window is not None:
            idle_mw, _, idle_reason = window_power(samples, *self.idle_window, self.interval_s)
        return window_energy(samples, window[0], window[1], items, rail, self.interval_s, idle_mw, idle_reason)

    def energy_over(self, windows: Sequence[tuple[tuple[float, float] | None, int]]) -> dict:
        """One record for a model timed in several windows (interleaved rounds): the power
        samples inside any of its windows pooled, times the windows' total length, over the
        items they processed; short windows that hold no sample of their own still count."""
        rail, samples, reason = self._trace()
        if reason is not None or rail is None:
            return unavailable(reason or "no input rail", rail, self.interval_s)
        spans = [w for w, _ in windows if w is not None]
        if not spans or len(spans) != len(windows):
            return unavailable("a timed window was not recorded", rail, self.interval_s)
        inside = [s.mw for s in samples if any(t0 <= s.t <= t1 for t0, t1 in spans)]
        length = sum(t1 - t0 for t0, t1 in spans)
        items = sum(n for _, n in windows)
        out = unavailable("", rail, self.interval_s)
        out.update(samples=len(inside), idle_power_mw=None, window_s=length, items=items, windows=len(spans))
        if len(inside) < MIN_SAMPLES or items <= 0:
            out["reason"] = f"{len(inside)} power sample(s) in the timed windows, expected at least {MIN_SAMPLES}"
            return out
        mean = sum(inside) / len(inside)
        out["power_mean_mw"] = mean
        out["gross_mj_per_item"] = mean * length / items
        idle_mw: float | None = None
        idle_reason: str | None = "not measured"
        if self.idle_window is not None:
            idle_mw, _, idle_reason = window_power(samples, *self.idle_window, self.interval_s)
        out["idle_power_mw"] = idle_mw
        if idle_mw is not None:
            out["net_mj_per_item"] = (mean - idle_mw) * length / items
            del out["reason"]
        else:
            out["reason"] = f"net energy unavailable: idle baseline {idle_reason or 'not measured'}"
        return out
