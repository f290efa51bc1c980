"""The jobs an agent runs. Each takes its typed job (see :mod:`edgebench.agent.protocol`) and
returns the result dict; :data:`JOBS` finds the runner by the job's kind."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent import env as envmod
from edgebench.agent.memory import RssSampler, rss_mb, ru_maxrss_mb
from edgebench.agent.protocol import PROTOCOL, EnvJob, Job, PredictJob, ProfileJob, RoundsEntry, RoundsJob, progress
from edgebench.backends.base import Backend, TensorSpec, fmt_shape
from edgebench.backends.options import TimingBudget
from edgebench.backends.registry import create
from edgebench.errors import EdgebenchError
from edgebench.measure.stats import summarize_latency

log = logging.getLogger(__name__)


def load_array(path: str, key: str = "x") -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise EdgebenchError(f"input data not found: expected an .npz file at {p}")
    try:
        with np.load(p, allow_pickle=False) as data:
            if key not in data.files:
                raise EdgebenchError(f"input data {p}: expected an array named '{key}', found {data.files}")
            return np.asarray(data[key])
    except (ValueError, OSError) as exc:
        raise EdgebenchError(f"input data {p} is not a readable .npz file: {exc}") from None


def _fit_dtype(arr: np.ndarray, dtype: str) -> np.ndarray:
    return arr.astype(dtype, copy=False) if dtype and arr.dtype != np.dtype(dtype) else arr


def _batches_from(x: np.ndarray, batch: int, max_feeds: int = 8) -> list[np.ndarray]:
    """Up to *max_feeds* distinct real batches of size *batch* (wrapping around if needed)."""
    n = x.shape[0]
    feeds = []
    for k in range(max_feeds):
        idx = (np.arange(batch) + k * batch) % n
        feeds.append(np.ascontiguousarray(x[idx]))
        if (k + 1) * batch >= n:
            break
    return feeds


def _check_shape(spec_shape: tuple, x: np.ndarray, name: str) -> None:
    want = spec_shape[1:]
    got = x.shape[1:]
    if len(want) != len(got) or any(isinstance(w, int) and w >= 0 and w != g for w, g in zip(want, got)):
        raise EdgebenchError(
            f"input '{name}': model expects shape {fmt_shape(spec_shape)}, data has per-item shape {tuple(got)}"
        )


def run_profile(job: ProfileJob) -> dict:
    from edgebench.agent.telemetry import make_sampler
    from edgebench.agent.telemetry.energy import PowerTrace

    rss_before = rss_mb()
    # the timed session never has the profiler on; see _op_profile_pass
    timing_opts = dataclasses.replace(job.options, profile_ops=False)
    backend = create(job.backend, job.artifact, timing_opts)
    batches, modes = list(job.batches), list(job.modes)
    x = load_array(job.inputs, job.input_key)
    with backend:
        rss_loaded = rss_mb()
        specs = backend.input_specs()
        if len(specs) != 1:
            raise EdgebenchError(f"profile: expected a model with one input, found {[s.name for s in specs]}")
        spec = specs[0]
        _check_shape(spec.shape, x, spec.name)
        x = _fit_dtype(x, spec.dtype)
        cold = _cold_start(backend, spec, x, batches, job.cold_start_iters)
        sampler = make_sampler(job.telemetry, job.telemetry_interval_s)
        runs: list[dict[str, Any]] = []
        total = len(batches) * len(modes)
        done = 0
        power = PowerTrace(sampler)
        timed: list[tuple[dict, Any, int]] = []  # (run, timed window, items) for energy per item
        with RssSampler() as rss:
            sampler.start()
            if job.timed:
                power.measure_idle(job.idle_s)  # baseline just before the runs
            t_window = time.perf_counter()
            for b in batches:
                if isinstance(spec.shape[0], int) and spec.shape[0] >= 0 and spec.shape[0] != b:
                    runs.append({"batch": b, "skipped": f"model has a fixed batch of {spec.shape[0]}"})
                    done += len(modes)
                    continue
                feeds = [{spec.name: f} for f in _batches_from(x, b)]
                for mode in modes:
                    if not job.timed:  # memory only: the latency comes from interleaved rounds
                        backend.infer(feeds[0])
                        done += 1
                        continue
                    res = backend.time(feeds, job.budget, mode=mode)
                    runs.append({"batch": b, "mode": mode, "latency_ms": res.summary()})
                    if res.device_samples_ms:  # e.g. CUDA events on the engine's stream
                        runs[-1]["latency_device_ms"] = summarize_latency(res.device_samples_ms, b)
                    timed.append((runs[-1], res.window, len(res.samples_ms) * b))
                    done += 1
                    progress("profile", done, total, batch=b, mode=mode)
            window_s = time.perf_counter() - t_window
            telemetry = sampler.stop()
        for run, window, items in timed:  # each batch and mode over its own timed window
            run["energy"] = power.energy(window, items)
        if cold is not None:
            steady = next((r for r in runs if r.get("batch") == cold["batch"] and r.get("mode") == "end_to_end"), None)
            cold["steady_p50_ms"] = steady["latency_ms"]["p50"] if steady else None
        result = {
            "runs": runs,
            "cold_start": cold,
            "memory_mb": {
                "rss_before_load": rss_before,
                "rss_after_load": rss_loaded,
                "peak_rss": rss.peak_mb,
                "ru_maxrss": ru_maxrss_mb(),
            },
            "load_time_s": backend.load_time_s,
            "input": {"name": spec.name, "shape": list(map(str, spec.shape)), "dtype": spec.dtype},
            "runtime": backend.environment(),
            "telemetry": telemetry,
            "window_s": window_s,
        }
    if job.options.profile_ops:
        result["op_profile"] = _op_profile_pass(job, spec.name, x)
    return result


def segment_budget(budget: TimingBudget, rounds: int) -> TimingBudget:
    """One round's share of *budget*: its own short warm-up (a model switched back in finds cold
    caches) and ``1/rounds`` of the iterations and duration, so the rounds add up to *budget*."""
    return TimingBudget(
        warmup_iters=max(2, math.ceil(budget.warmup_iters / rounds)),
        warmup_s=budget.warmup_s / rounds,
        iterations=max(1, math.ceil(budget.iterations / rounds)),
        min_duration_s=budget.min_duration_s / rounds,
        max_iterations=max(1, math.ceil(budget.max_iterations / rounds)),
    )


def rotated(names: list[str], r: int) -> list[str]:
    """Round *r*'s order: A B C, B C A, C A B, ... so no model is always first or last."""
    k = r % len(names)
    return names[k:] + names[:k]


def _fits_together(entries: tuple[RoundsEntry, ...]) -> bool:
    """Whether every model can stay open at once: their files, 4x over (weights, runtime copies,
    arenas), within half the memory available now."""
    try:
        import psutil

        free = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no psutil: assume a board with room, as the old jobs did
        return True
    need = sum(4 * Path(e.path).stat().st_size for e in entries if Path(e.path).is_file())
    return need < free / 2


def run_profile_rounds(job: RoundsJob) -> dict:
    """Every entry timed in ``job.rounds`` interleaved rounds (see :class:`RoundsJob`): per entry,
    per batch and mode, the pooled latency summary, each round's median and energy over its
    windows; per round its order, time span and load average."""
    from edgebench.agent.telemetry import make_sampler
    from edgebench.agent.telemetry.energy import PowerTrace

    x_all = load_array(job.inputs, job.input_key)
    shared = job.sessions == "shared" or (job.sessions == "auto" and _fits_together(job.entries))
    seg = segment_budget(job.budget, job.rounds)
    opened: dict[str, Backend] = {}
    feeds: dict[str, dict[int, list[dict[str, np.ndarray]]]] = {}
    info: dict[str, dict[str, Any]] = {}

    def open_entry(e: RoundsEntry) -> Backend:
        backend = create(e.backend, e.path, dataclasses.replace(e.options, profile_ops=False))
        backend.open()
        if e.name not in feeds:  # first open: check the input once, cut the real batches once
            specs = backend.input_specs()
            if len(specs) != 1:
                backend.close()
                raise EdgebenchError(
                    f"profile {e.name}: expected a model with one input, found {[s.name for s in specs]}"
                )
            spec = specs[0]
            _check_shape(spec.shape, x_all, spec.name)
            x = _fit_dtype(x_all, spec.dtype)
            fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] >= 0 else None
            batches = [b for b in e.batches if fixed is None or b == fixed]
            feeds[e.name] = {b: [{spec.name: f} for f in _batches_from(x, b)] for b in batches}
            info[e.name] = {
                "input": {"name": spec.name, "shape": list(map(str, spec.shape)), "dtype": spec.dtype},
                "runtime": backend.environment(),
                "skipped": [b for b in e.batches if b not in batches],
                "fixed": fixed,
            }
        return backend

    names = [e.name for e in job.entries]
    by_name = {e.name: e for e in job.entries}
    samples: dict[tuple[str, int, str], list[list[float]]] = {}
    windows: dict[tuple[str, int, str], list[tuple[tuple[float, float] | None, int]]] = {}
    rounds: list[dict[str, Any]] = []
    try:
        if shared:
            for e in job.entries:
                opened[e.name] = open_entry(e)
        sampler = make_sampler(job.telemetry, job.telemetry_interval_s)
        power = PowerTrace(sampler)
        total = job.rounds * len(names)
        sampler.start()
        power.measure_idle(job.idle_s)
        t_pass = time.perf_counter()
        for r in range(job.rounds):
            order = rotated(names, r)
            t0 = time.perf_counter()
            for k, name in enumerate(order):
                backend = opened[name] if shared else open_entry(by_name[name])
                try:
                    for b, fs in feeds[name].items():
                        for mode in job.modes:
                            res = backend.time(fs, seg, mode=mode)
                            samples.setdefault((name, b, mode), []).append(res.samples_ms)
                            windows.setdefault((name, b, mode), []).append((res.window, len(res.samples_ms) * b))
                finally:
                    if not shared:
                        backend.close()
                progress("profile-rounds", r * len(names) + k + 1, total, round=r + 1, model=name)
            rounds.append(
                {
                    "round": r + 1,
                    "order": order,
                    "start_s": t0 - t_pass,
                    "end_s": time.perf_counter() - t_pass,
                    "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                }
            )
        window_s = time.perf_counter() - t_pass
        telemetry = sampler.stop()
    finally:
        for backend in opened.values():
            backend.close()
    out: dict[str, Any] = {}
    for name in names:
        runs: list[dict[str, Any]] = [
            {"batch": b, "skipped": f"model has a fixed batch of {info[name]['fixed']}"} for b in info[name]["skipped"]
        ]
        for b in feeds[name]:
            for mode in job.modes:
                per_round = samples[(name, b, mode)]
                pooled = [v for rs in per_round for v in rs]
                summary = summarize_latency(pooled, b)
                summary["warmup_iters"] = seg.warmup_iters * job.rounds
                runs.append(
                    {
                        "batch": b,
                        "mode": mode,
                        "latency_ms": summary,
                        "round_p50_ms": [float(np.median(rs)) for rs in per_round],
                        "energy": power.energy_over(windows[(name, b, mode)]),
                    }
                )
        out[name] = {"runs": runs, **{k: info[name][k] for k in ("input", "runtime")}}
    return {
        "models": out,
        "rounds": rounds,
        "sessions": "shared" if shared else "alternating",
        "segment_budget": dataclasses.asdict(seg),
        "telemetry": telemetry,
        "window_s": window_s,
    }


def _cold_start(backend: Backend, spec: TensorSpec, x: np.ndarray, batches: list[int], iterations: int) -> dict | None:
    """The first *iterations* inferences after load, on the first batch size the model accepts
    (None when iterations is 0: the job asked for none)."""
    if iterations <= 0:
        return None
    fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] >= 0 else None
    batch = fixed if fixed is not None else batches[0]
    return backend.cold_start({spec.name: _batches_from(x, batch, 1)[0]}, iterations)


def _op_profile_pass(job: ProfileJob, input_name: str, x: np.ndarray, iterations: int = 30) -> list[dict] | None:
    """Per-operator times from a separate, short batch-1 pass with the runtime's profiler on,
    so profiling overhead never touches the timed iterations above."""
    backend = create(job.backend, job.artifact, dataclasses.replace(job.options, profile_ops=True))
    feeds = [{input_name: f} for f in _batches_from(x, 1)]
    with backend:
        for i in range(iterations):
            backend.infer(feeds[i % len(feeds)])
        backend.close()
        return backend.op_profile()


def run_predict(job: PredictJob) -> dict:
    """Run every set of inputs through the artifact; predictions (and logits) back."""
    backend = create(job.backend, job.artifact, job.options)
    out: dict[str, Any] = {"sets": {}}
    logits_out: dict[str, Any] = {}  # name -> logits array (np.savez's keyword arguments)
    with backend:
        spec = backend.input_specs()[0]
        fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
        for k, s in enumerate(job.sets):
            x = _fit_dtype(load_array(s.path, s.key), spec.dtype)
            _check_shape(spec.shape, x, spec.name)
            step = fixed or job.batch
            chunks = []
            for i in range(0, x.shape[0], step):
                chunk = x[i : i + step]
                if fixed and chunk.shape[0] != fixed:  # pad the last batch of a fixed-batch model
                    pad = np.repeat(chunk[-1:], fixed - chunk.shape[0], axis=0)
                    chunks.append(backend.infer({spec.name: np.concatenate([chunk, pad])})[0][: chunk.shape[0]])
                else:
                    chunks.append(backend.infer({spec.name: np.ascontiguousarray(chunk)})[0])
            logits = np.concatenate(chunks).astype(np.float32)
            out["sets"][s.name] = {"predictions": logits.argmax(axis=1).tolist(), "count": int(x.shape[0])}
            logits_out[s.name] = logits
            progress("predict", k + 1, len(job.sets), set=s.name)
        out["runtime"] = backend.environment()
    if job.logits:
        import io

        from edgebench.util.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **logits_out)
        atomic_write_bytes(job.logits, buf.getvalue())
        out["logits"] = job.logits
    return out


def run_env(job: EnvJob) -> dict:
    from edgebench.backends.registry import availability

    return {"backends": availability()}


# each runner takes its own job type; the protocol's parse_job picked it by the same kind
JOBS: dict[str, Callable[[Any], dict]] = {
    "profile": run_profile,
    "profile_rounds": run_profile_rounds,
    "predict": run_predict,
    "env": run_env,
}


def run_job(job: Job) -> dict:
    """Run a parsed job; its result dict with the protocol version, kind and environment."""
    result = JOBS[job.kind](job)
    result.update({"protocol": PROTOCOL, "kind": job.kind, "ok": True, "environment": envmod.collect()})
    return result
