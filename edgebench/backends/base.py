"""The base runner: state checks, input validation and *all* timing live here.

A backend implements only ``_open``, ``_prepare``, ``_execute``, ``_fetch`` and ``_close``
(and ``synchronize`` when its work is asynchronous, like CUDA). Two latencies are measured,
and named as such everywhere:

* **compute**: ``_execute`` + ``synchronize`` on inputs already prepared where the engine
  wants them (device memory, OrtValues). What trtexec calls GPU compute time.
* **end-to-end**: host numpy arrays in, host numpy arrays out: ``_prepare`` + ``_execute``
  + ``synchronize`` + ``_fetch``. What an application sees.

:meth:`Backend.cold_start` measures what an application sees at start-up, apart from the
steady state: the load time, the first inference and the first N iterations after ``open()``.
"""

from __future__ import annotations

import gc
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from edgebench.backends.options import COLD_START_ITERS, BackendOptions, TimingBudget, check_options
from edgebench.errors import EdgebenchError
from edgebench.measure.stats import summarize_latency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` or a string for a dynamic dimension) and numpy dtype name."""

    name: str
    shape: tuple[Any, ...]
    dtype: str


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by the backend itself (validation reads it, nothing else
    names backends): per-operator profiling, which reduced precisions it builds from an fp32
    model, where it runs, whether it opens user model files, whether its engines are built for a
    fixed set of batch sizes, and which backend-specific :class:`BackendOptions` it reads."""

    profile_ops: bool = False
    builds_precisions: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    user_models: bool = True
    needs_batches: bool = False
    providers: tuple[str, ...] = ()  # execution providers it can be asked for (ONNX Runtime's)
    options: tuple[str, ...] = ()  # BackendOptions fields it reads beyond the common ones

    def takes(self, option: str) -> bool:
        """Whether the backend reads the backend-specific option *option* (e.g. ``compile``)."""
        return option in self.options


@dataclass
class TimingResult:
    """Raw samples (ms) and their summary for one mode and batch size."""

    mode: str  # "compute" or "end_to_end"
    batch: int
    samples_ms: list[float] = field(repr=False)
    warmup_iters: int = 0
    # time.perf_counter() seconds at the start and end of the timed iterations (warm-up
    # excluded): the window that power samples are matched against for energy per item
    window: tuple[float, float] | None = None
    # compute mode on a backend with a device clock (CUDA events): the device's own time per
    # timed iteration, beside the host clock's
    device_samples_ms: list[float] | None = field(default=None, repr=False)

    def summary(self) -> dict:
        out = summarize_latency(self.samples_ms, self.batch)
        out["warmup_iters"] = self.warmup_iters
        return out


class Backend(ABC):
    """Template for a runtime. Subclasses fill in the underscore methods only."""

    name: ClassVar[str] = "abstract"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, artifact: str | None, options: BackendOptions | None = None) -> None:
        self.artifact = artifact
        self.options = options or BackendOptions()
        check_options(self.name, self.options, self.capabilities.options)
        self._is_open = False
        self.load_time_s: float | None = None
        self._inferences = 0  # since open(): a cold start must be the first

    # ---- lifecycle ---------------------------------------------------------------------
    def open(self) -> Backend:
        if self._is_open:
            raise RuntimeError(f"{self.name}: open() called twice")
        t0 = time.perf_counter()
        self._open()
        self.load_time_s = time.perf_counter() - t0
        self._is_open = True
        self._inferences = 0
        return self

    def close(self) -> None:
        if self._is_open:
            self._close()
            self._is_open = False

    def __enter__(self) -> Backend:
        return self.open() if not self._is_open else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if not self._is_open:
            raise RuntimeError(f"{self.name}: use open() (or a with-block) before running")

    # ---- what a backend provides -----------------------------------------------------------
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    def output_names(self) -> list[str]:
        return []

    def _prepare(self, feed: dict[str, np.ndarray]) -> Any:
        """Move host arrays to where the engine wants them (default: nothing to do)."""
        return feed

    def _prepare_compute(self, feed: dict[str, np.ndarray]) -> Any:
        """Inputs placed once, for the *compute* timing (default: as for end-to-end)."""
        return self._prepare(feed)

    @abstractmethod
    def _execute(self, prepared: Any) -> Any:
        """Run the engine on prepared inputs; may return device-side outputs."""

    def _fetch(self, raw: Any) -> list[np.ndarray]:
        """Bring outputs back to host numpy arrays (default: they already are)."""
        return list(raw)

    def synchronize(self) -> None:
        """Wait for queued work (GPU backends override; CPU work is synchronous)."""
        return None

    def environment(self) -> dict:
        """Runtime name, version, provider and settings, recorded with every number."""
        return {"backend": self.name}

    def device_timer(self) -> Any:
        """A clock on the device's own timeline for *compute* timing (``start()``, ``stop()``
        around ``_execute``, ``elapsed_ms()`` after synchronize), e.g. CUDA events on the
        engine's stream; None (the default): the host clock only."""
        return None

    def op_profile(self) -> list[dict] | None:
        """Per-operator times collected during the run, if the backend supports it."""
        return None

    # ---- what the base owns ----------------------------------------------------------------
    def validate_feed(self, feed: dict[str, np.ndarray]) -> None:
        specs = {s.name: s for s in self.input_specs()}
        missing = sorted(set(specs) - set(feed))
        unknown = sorted(set(feed) - set(specs))
        if missing or unknown:
            raise EdgebenchError(f"inputs: model expects {sorted(specs)}, found {sorted(feed)}")
        for name, arr in feed.items():
            spec = specs[name]
            if len(spec.shape) != arr.ndim or any(
                isinstance(d, int) and d >= 0 and d != a for d, a in zip(spec.shape, arr.shape)
            ):
                raise EdgebenchError(
                    f"input '{name}': model expects shape {fmt_shape(spec.shape)}, found {tuple(arr.shape)}"
                )
            if spec.dtype and np.dtype(spec.dtype) != arr.dtype:
                raise EdgebenchError(f"input '{name}': model expects dtype {spec.dtype}, found {arr.dtype}")

    def infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One end-to-end inference: host arrays in, host arrays out."""
        self._check_open()
        self.validate_feed(feed)
        self._inferences += 1
        raw = self._execute(self._prepare(feed))
        self.synchronize()
        return self._fetch(raw)

    def cold_start(self, feed: dict[str, np.ndarray], iterations: int = COLD_START_ITERS) -> dict:
        """End-to-end latency of the first *iterations* inferences after ``open()``, with the
        load time: what an application sees at start-up (lazy allocation, kernel selection,
        caches still cold), kept apart from the steady state that :meth:`time` measures after
        warm-up. Must run before any other inference on this session, or it would not be cold.
        """
        self._check_open()
        if iterations < 1:
            raise EdgebenchError(f"cold start: expected at least 1 iteration, found {iterations}")
        if self._inferences:
            raise RuntimeError(f"{self.name}: cold_start() must come before any other inference after open()")
        self.validate_feed(feed)
        batch = int(next(iter(feed.values())).shape[0])
        clock = time.perf_counter_ns
        prepare, execute, sync, fetch = self._prepare, self._execute, self.synchronize, self._fetch
        samples: list[int] = []
        self._inferences += iterations
        for _ in range(iterations):
            t0 = clock()
            fetch(execute(prepare(feed)))
            sync()
            samples.append(clock() - t0)
        first_n = [s / 1e6 for s in samples]
        return {
            "load_time_s": self.load_time_s,
            "first_inference_ms": first_n[0],
            "first_n_ms": first_n,
            "first_n_mean_ms": sum(first_n) / len(first_n),
            "iterations": iterations,
            "batch": batch,
            "mode": "end_to_end",
        }

    def time(
        self,
        feeds: Sequence[dict[str, np.ndarray]],
        budget: TimingBudget,
        mode: str = "end_to_end",
        on_progress: Callable[[int], None] | None = None,
    ) -> TimingResult:
        """Time repeated inference cycling through *feeds* (real inputs), after warm-up.

        ``mode="compute"`` prepares every feed once and times ``_execute`` + ``synchronize``;
        ``mode="end_to_end"`` times ``_prepare`` + ``_execute`` + ``synchronize`` + ``_fetch``.
        """
        self._check_open()
        if not feeds:
            raise EdgebenchError("timing: expected at least one input batch, found none")
        if mode not in ("compute", "end_to_end"):
            raise ValueError(f"unknown timing mode {mode!r}")
        for feed in feeds:
            self.validate_feed(feed)
        self._inferences += 1
        batch = int(next(iter(feeds[0].values())).shape[0])
        clock = time.perf_counter_ns
        prepare, execute, sync, fetch = self._prepare, self._execute, self.synchronize, self._fetch
        n_feeds = len(feeds)

        device_ms: list[float] = []
        timer = self.device_timer() if mode == "compute" else None
        if mode == "compute":
            prepared = [self._prepare_compute(f) for f in feeds]
            sync()

            if timer is None:

                def once(i: int) -> int:
                    t0 = clock()
                    execute(prepared[i % n_feeds])
                    sync()
                    return clock() - t0

            else:

                def once(i: int) -> int:
                    t0 = clock()
                    timer.start()
                    execute(prepared[i % n_feeds])
                    timer.stop()
                    sync()
                    elapsed = clock() - t0
                    device_ms.append(float(timer.elapsed_ms()))  # read after the host clock stopped
                    return elapsed

        else:

            def once(i: int) -> int:
                t0 = clock()
                fetch(execute(prepare(feeds[i % n_feeds])))
                sync()
                return clock() - t0

        gc_was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()  # as timeit does: no collector pauses inside timed iterations
        try:
            warm, samples, window = self._loop(once, budget, on_progress)
        finally:
            if gc_was_enabled:
                gc.enable()
        log.debug("%s %s batch %d: %d warm-up, %d timed", self.name, mode, batch, warm, len(samples))
        return TimingResult(
            mode=mode,
            batch=batch,
            samples_ms=[s / 1e6 for s in samples],
            warmup_iters=warm,
            window=window,
            device_samples_ms=device_ms[len(device_ms) - len(samples) :] if timer is not None else None,
        )

    @staticmethod
    def _loop(
        once: Callable[[int], int], budget: TimingBudget, on_progress: Callable[[int], None] | None
    ) -> tuple[int, list[int], tuple[float, float]]:
        """Warm-up until both its count and time are reached, then timed iterations until both
        the count and the minimum duration are reached (or max_iterations). Returns the warm-up
        count, the samples (ns) and the timed phase's (start, end) in perf_counter seconds."""
        clock = time.perf_counter_ns
        warm = 0
        w_end = clock() + int(budget.warmup_s * 1e9)
        while warm < budget.warmup_iters or clock() < w_end:
            once(warm)
            warm += 1
            if warm >= budget.max_iterations:
                break

        samples: list[int] = []
        t_start = time.perf_counter()
        end = clock() + int(budget.min_duration_s * 1e9)
        i = 0
        while (i < budget.iterations or clock() < end) and i < budget.max_iterations:
            samples.append(once(i))
            i += 1
            if on_progress is not None and i % 16 == 0:
                on_progress(i)
        return warm, samples, (t_start, time.perf_counter())


def fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in shape) + ")"
