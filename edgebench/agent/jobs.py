"""The jobs an agent runs. Each takes the parsed job dict and returns the result dict."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent import env as envmod
from edgebench.agent.memory import RssSampler, rss_mb, ru_maxrss_mb
from edgebench.agent.protocol import PROTOCOL, progress
from edgebench.backends.base import COLD_START_ITERS, Backend, BackendOptions, TensorSpec, TimingBudget, fmt_shape
from edgebench.backends.registry import create
from edgebench.errors import EdgebenchError
from edgebench.measure.stats import summarize_latency

log = logging.getLogger(__name__)


def backend_options(job: dict) -> BackendOptions:
    """The job's ``options`` mapping as BackendOptions (``extra`` as sorted pairs)."""
    raw = dict(job.get("options") or {})
    extra = raw.pop("extra", {}) or {}
    known = {k: raw[k] for k in ("threads", "device", "precision", "profile_ops", "graph_optimization") if k in raw}
    return BackendOptions(**known, extra=tuple(sorted(extra.items())))


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


def run_profile(job: dict) -> dict:
    from edgebench.agent.telemetry import make_sampler
    from edgebench.agent.telemetry.energy import IDLE_S, PowerTrace

    rss_before = rss_mb()
    budget = TimingBudget(**(job.get("budget") or {}))
    # the timed session never has the profiler on; see _op_profile_pass
    timing_opts = dataclasses.replace(backend_options(job), profile_ops=False)
    backend = create(job.get("backend", "onnxruntime"), job.get("artifact"), timing_opts)
    batches = [int(b) for b in job.get("batches") or [1]]
    modes = list(job.get("modes") or ["end_to_end", "compute"])
    x = load_array(job["inputs"], job.get("input_key", "x")) if job.get("inputs") else None
    with backend:
        rss_loaded = rss_mb()
        specs = backend.input_specs()
        if len(specs) != 1:
            raise EdgebenchError(f"profile: expected a model with one input, found {[s.name for s in specs]}")
        spec = specs[0]
        if x is None:
            raise EdgebenchError("profile: expected an inputs .npz (real data), found none in the job")
        _check_shape(spec.shape, x, spec.name)
        x = _fit_dtype(x, spec.dtype)
        cold = _cold_start(backend, spec, x, batches, int(job.get("cold_start_iters", COLD_START_ITERS)))
        interval = job.get("telemetry_interval_s")
        sampler = make_sampler(job.get("telemetry", "auto"), float(interval) if interval else None)
        runs: list[dict[str, Any]] = []
        total = len(batches) * len(modes)
        done = 0
        power = PowerTrace(sampler)
        timed: list[tuple[dict, Any, int]] = []  # (run, timed window, items) for energy per item
        with RssSampler() as rss:
            sampler.start()
            power.measure_idle(float(job.get("idle_s", IDLE_S)))  # baseline just before the runs
            t_window = time.perf_counter()
            for b in batches:
                if isinstance(spec.shape[0], int) and spec.shape[0] >= 0 and spec.shape[0] != b:
                    runs.append({"batch": b, "skipped": f"model has a fixed batch of {spec.shape[0]}"})
                    done += len(modes)
                    continue
                feeds = [{spec.name: f} for f in _batches_from(x, b)]
                for mode in modes:
                    res = backend.time(feeds, budget, mode=mode)
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
    if (job.get("options") or {}).get("profile_ops"):
        result["op_profile"] = _op_profile_pass(job, spec.name, x)
    return result


def _cold_start(backend: Backend, spec: TensorSpec, x: np.ndarray, batches: list[int], iterations: int) -> dict | None:
    """The first *iterations* inferences after load, on the first batch size the model accepts
    (None when iterations is 0: the job asked for none)."""
    if iterations <= 0:
        return None
    fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] >= 0 else None
    batch = fixed if fixed is not None else batches[0]
    return backend.cold_start({spec.name: _batches_from(x, batch, 1)[0]}, iterations)


def _op_profile_pass(job: dict, input_name: str, x: np.ndarray, iterations: int = 30) -> list[dict] | None:
    """Per-operator times from a separate, short batch-1 pass with the runtime's profiler on,
    so profiling overhead never touches the timed iterations above."""
    opts = dataclasses.replace(backend_options(job), profile_ops=True)
    backend = create(job.get("backend", "onnxruntime"), job.get("artifact"), opts)
    feeds = [{input_name: f} for f in _batches_from(x, 1)]
    with backend:
        for i in range(iterations):
            backend.infer(feeds[i % len(feeds)])
        backend.close()
        return backend.op_profile()


def run_predict(job: dict) -> dict:
    """Run every set of inputs through the artifact; predictions (and logits) back."""
    backend = create(job.get("backend", "onnxruntime"), job.get("artifact"), backend_options(job))
    bs = int(job.get("batch", 64))
    sets = job.get("sets") or []
    if not sets:
        raise EdgebenchError("predict: expected at least one input set in the job, found none")
    out: dict[str, Any] = {"sets": {}}
    logits_out: dict[str, Any] = {}  # name -> logits array (np.savez's keyword arguments)
    with backend:
        spec = backend.input_specs()[0]
        fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
        for k, s in enumerate(sets):
            x = _fit_dtype(load_array(s["path"], s.get("key", "x")), spec.dtype)
            _check_shape(spec.shape, x, spec.name)
            step = fixed or bs
            chunks = []
            for i in range(0, x.shape[0], step):
                chunk = x[i : i + step]
                if fixed and chunk.shape[0] != fixed:  # pad the last batch of a fixed-batch model
                    pad = np.repeat(chunk[-1:], fixed - chunk.shape[0], axis=0)
                    chunks.append(backend.infer({spec.name: np.concatenate([chunk, pad])})[0][: chunk.shape[0]])
                else:
                    chunks.append(backend.infer({spec.name: np.ascontiguousarray(chunk)})[0])
            logits = np.concatenate(chunks).astype(np.float32)
            out["sets"][s["name"]] = {"predictions": logits.argmax(axis=1).tolist(), "count": int(x.shape[0])}
            logits_out[s["name"]] = logits
            progress("predict", k + 1, len(sets), set=s["name"])
        out["runtime"] = backend.environment()
    if job.get("logits"):
        import io

        from edgebench.util.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **logits_out)
        atomic_write_bytes(job["logits"], buf.getvalue())
        out["logits"] = job["logits"]
    return out


def run_env(job: dict) -> dict:
    from edgebench.backends.registry import availability

    return {"backends": availability()}


JOBS = {"profile": run_profile, "predict": run_predict, "env": run_env}


def run_job(job: dict) -> dict:
    kind = job.get("kind")
    if kind not in JOBS:
        raise EdgebenchError(f"agent: unknown job kind {kind!r}, expected one of {sorted(JOBS)}")
    result = JOBS[kind](job)
    result.update({"protocol": PROTOCOL, "kind": kind, "ok": True, "environment": envmod.collect()})
    return result
