"""``edgebench profile`` as a library call: one model file, one device, one agent profile job.

Resolves MODEL (ONNX, TorchScript, ``.pt2`` or ``torchvision:NAME``) into the file the chosen
backend opens, prepares inputs (the user's ``.npz`` or uniform [0,1) random data with a fixed
seed, never zeros), sends one profile job to the device's agent and returns the result with
roofline and notes. What each backend can do (per-operator profile, compile, building fp16/int8
engines) is declared by the backend itself (``Backend.capabilities``); the CLI only renders.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgebench.agent.protocol import ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

SCHEMA = "edgebench.profile/1"
PRECISIONS = ("fp32", "fp16", "int8")
RANDOM_SEED = 0
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


def profilable_backends() -> tuple[str, ...]:
    """Backends that open a user's model file (the registry's, less the harness-only ones)."""
    from edgebench.backends.registry import BACKENDS, backend_class

    return tuple(n for n in BACKENDS if backend_class(n).capabilities.user_models)


@dataclass(frozen=True)
class ProfileRequest:
    """Everything ``edgebench profile`` was asked, validated up front by :meth:`validate`."""

    model: str
    device: str = "local"
    backend: str = "onnxruntime"
    batches: tuple[int, ...] | None = None  # None: the batch of --input-shape, else 1
    threads: int | None = None
    input_shape: tuple[int, ...] | None = None
    data: str | None = None
    warmup: int = 10
    iterations: int = 50
    min_duration_s: float = 1.0
    profile_ops: bool = False
    precision: str | None = None
    cuda: bool = False
    compile: bool = False
    modes: tuple[str, ...] = ("end_to_end", "compute")
    provider: str | None = None  # onnxruntime: cpu | cuda | tensorrt execution provider

    def validate(self) -> None:
        from edgebench.backends.registry import backend_class

        names = profilable_backends()
        if self.backend not in names:
            raise EdgebenchError(f"--backend: expected one of {list(names)}, found '{self.backend}'")
        caps = backend_class(self.backend).capabilities
        if self.profile_ops and not caps.profile_ops:
            with_ops = [n for n in names if backend_class(n).capabilities.profile_ops]
            raise EdgebenchError(
                f"--profile-ops: supported with --backend {' or '.join(with_ops)}, found --backend {self.backend}"
            )
        if self.provider is not None:
            if not caps.providers:
                with_eps = [n for n in names if backend_class(n).capabilities.providers]
                raise EdgebenchError(
                    f"--ort-provider: applies to --backend {' or '.join(with_eps)}, found --backend {self.backend}"
                )
            if self.provider not in caps.providers:
                raise EdgebenchError(f"--ort-provider: expected {', '.join(caps.providers)}, found '{self.provider}'")
        if self.compile and not caps.takes("compile"):
            raise EdgebenchError(
                f"--compile: applies to --backend {' or '.join(n for n in names if backend_class(n).capabilities.takes('compile'))}, "
                f"found --backend {self.backend}"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise EdgebenchError(f"--precision: expected one of {list(PRECISIONS)}, found '{self.precision}'")
        builds = caps.builds_precisions + (("fp16", "int8") if self.provider == "tensorrt" else ())
        if self.precision in ("fp16", "int8") and self.precision not in builds:
            builders = [n for n in names if self.precision in backend_class(n).capabilities.builds_precisions]
            raise EdgebenchError(
                f"--precision {self.precision}: builds a reduced-precision engine with --backend {' or '.join(builders)} only; "
                f"for {self.backend}, give an int8 model file (precision is read from the model)"
            )
        if self.threads is not None and self.threads < 1:
            raise EdgebenchError(f"--threads: expected a positive number, found {self.threads}")
        if self.warmup < 0 or self.iterations < 1 or self.min_duration_s < 0:
            raise EdgebenchError(
                f"--warmup/--iterations/--min-duration: expected >= 0, >= 1, >= 0, found "
                f"{self.warmup}, {self.iterations}, {self.min_duration_s}"
            )
        for mode in self.modes:
            if mode not in ("end_to_end", "compute"):
                raise EdgebenchError(f"modes: expected end_to_end or compute, found '{mode}'")

    def effective_batches(self) -> list[int]:
        if self.batches:
            return list(self.batches)
        return [self.input_shape[0]] if self.input_shape else [1]


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    """``"1,8,32"`` -> (1, 8, 32)."""
    if text is None:
        return None
    try:
        values = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise EdgebenchError(f"--batch: expected positive batch sizes like 1,8,32, found '{text}'")
    return tuple(dict.fromkeys(values))


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1x3x224x224"`` -> (1, 3, 224, 224)."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise EdgebenchError(
            f"--input-shape: expected positive dimensions with the batch first, like 1x3x224x224, found '{text}'"
        )
    return shape


def _fmt_declared(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def item_shape_for(
    declared: tuple[Any, ...] | None,
    req: ProfileRequest,
    data_shape: tuple[int, ...] | None,
    default: tuple[int, ...] | None,
    input_name: str,
) -> tuple[int, ...]:
    """The per-item input shape (no batch) to profile, checked against what the model declares."""
    given: tuple[int, ...] | None = None
    origin = ""
    if data_shape is not None:
        given, origin = tuple(data_shape[1:]), f"--data has per-item shape {tuple(data_shape[1:])}"
        if req.input_shape is not None and tuple(req.input_shape[1:]) != given:
            raise EdgebenchError(
                f"--input-shape {'x'.join(map(str, req.input_shape))} does not match --data items of shape {given}"
            )
    elif req.input_shape is not None:
        given, origin = tuple(req.input_shape[1:]), f"--input-shape gives {'x'.join(map(str, req.input_shape))}"
    if declared is not None:
        rest = declared[1:]
        if given is None:
            if all(isinstance(d, int) for d in rest):
                return tuple(rest)
            if default is not None and len(default) == len(declared):
                return tuple(default[1:])
            raise EdgebenchError(
                f"input '{input_name}' has dynamic dimensions {_fmt_declared(declared)}: expected --input-shape "
                f"(e.g. 1x3x224x224) or --data, found neither"
            )
        if len(given) != len(rest) or any(isinstance(d, int) and d != g for d, g in zip(rest, given)):
            raise EdgebenchError(f"input '{input_name}': model expects shape {_fmt_declared(declared)}, {origin}")
        return given
    if given is not None:
        return given
    if default is not None:
        return tuple(default[1:])
    raise EdgebenchError(f"input '{input_name}': the model stores no input shape; expected --input-shape, found none")


def random_inputs(item_shape: tuple[int, ...], batches: list[int], seed: int = RANDOM_SEED) -> Any:
    """Uniform [0,1) float32 images (never zeros), enough for a few distinct batches."""
    import numpy as np

    n = max(8, 2 * max(batches))
    return np.random.default_rng(seed).random((n, *item_shape), dtype=np.float32)


def model_precision(op_types: tuple[str, ...] | list[str] | None, requested: str | None) -> str:
    if requested:
        return requested
    return "int8" if op_types and _QUANT_OPS & set(op_types) else "fp32"


@dataclass
class _Prepared:
    """One model made ready to profile: the file the backend opens, its stats and the job's parts."""

    resolved: Any
    item: tuple[int, ...]
    batches: list[int]
    stats: dict[str, Any]
    op_types: list[str] | None
    precision: str
    options: BackendOptions
    weight_bytes: Any
    activation_bytes: Any
    input_name: str


def _prepare(req: ProfileRequest, data: Any) -> _Prepared:
    """Resolve *req*'s model and everything its jobs need, checking its input against *data*."""
    from edgebench.backends.registry import backend_class
    from edgebench.subject.external import resolve_model

    resolved = resolve_model(req.model, req.backend, req.input_shape)
    input_name = "input"
    stats: dict[str, Any] = {}
    weight_bytes = activation_bytes = None
    op_types: list[str] | None = None
    if resolved.artifact_format == "onnx":
        from edgebench.measure.onnx_stats import graph_inputs, load_onnx

        input_name = graph_inputs(load_onnx(resolved.artifact))[0][0]
    item = item_shape_for(
        resolved.declared_shape,
        req,
        tuple(data.shape) if data is not None else None,
        resolved.default_shape,
        input_name,
    )
    batches = req.effective_batches()
    if resolved.artifact_format == "onnx":
        from edgebench.measure.onnx_stats import onnx_stats

        st = onnx_stats(resolved.artifact, item)
        stats = {
            "params": st.params,
            "macs": st.macs,
            "size_bytes": st.size_bytes,
            "params_source": "ONNX initializers",
        }
        weight_bytes, activation_bytes, op_types = st.weight_bytes, st.activation_bytes, list(st.op_types)
    else:
        from edgebench.subject.external import torch_file_stats

        stats = dict(torch_file_stats(resolved.artifact, (1, *item)), params_source="module parameters")
    precision = model_precision(op_types, req.precision)
    caps = backend_class(req.backend).capabilities
    options = BackendOptions(
        threads=req.threads,
        device="cuda" if req.cuda or caps.devices == ("cuda",) or req.provider in ("cuda", "tensorrt") else "cpu",
        precision=precision,
        profile_ops=req.profile_ops,
        provider=req.provider,
        compile=req.compile,
        # the backends that read a shape or build for fixed batches get them; no other is sent them
        input_shape=(1, *item) if caps.takes("input_shape") else None,
        batches=tuple(batches) if caps.needs_batches else BackendOptions.batches,
    )
    return _Prepared(
        resolved, item, batches, stats, op_types, precision, options, weight_bytes, activation_bytes, input_name
    )


def _budget(req: ProfileRequest) -> TimingBudget:
    return TimingBudget(
        warmup_iters=req.warmup,
        warmup_s=0.2 if req.warmup else 0.0,
        iterations=req.iterations,
        min_duration_s=req.min_duration_s,
        max_iterations=max(100_000, req.iterations),
    )


def _load_data(req: ProfileRequest) -> Any:
    from edgebench.agent.jobs import load_array

    data = load_array(req.data) if req.data else None
    if data is not None and (data.ndim < 2 or data.shape[0] < 1):
        raise EdgebenchError(
            f"--data {req.data}: expected an array x of shape (N, ...) with N >= 1, found {data.shape}"
        )
    return data


def _inputs(req: ProfileRequest, data: Any, item: tuple[int, ...], batches: list[int], tmp: str) -> tuple[str, str]:
    """The .npz the jobs read and how it was made."""
    import numpy as np

    if req.data:
        return str(Path(req.data).resolve()), f"{req.data} (array x, {data.shape[0]} items)"
    x = random_inputs(item, batches)
    path = str(Path(tmp) / "inputs.npz")
    np.savez(path, x=x)
    return path, f"random uniform [0,1) float32, seed {RANDOM_SEED}, {x.shape[0]} items"


def _output(req: ProfileRequest, prep: _Prepared, spec: Any, result: dict, budget: TimingBudget, source: str) -> dict:
    """The result dict ``edgebench profile`` prints for one model, from its job's *result*."""
    from edgebench.devices.describe import device_profile
    from edgebench.measure.roofline import bytes_per_batch, roofline

    dev_profile = device_profile(spec)  # a local device measures its own peak (cached per machine)
    bpb = {b: bytes_per_batch(prep.weight_bytes, prep.activation_bytes, b) for b in prep.batches}
    runs = []
    for run in result.get("runs", []):
        run = dict(run)
        if "latency_ms" in run:
            run["roofline"] = roofline(
                prep.stats.get("macs"),
                run["latency_ms"]["p50"],
                run["batch"],
                prep.precision,
                dev_profile,
                bpb.get(run["batch"]),
            )
        runs.append(run)
    resolved = prep.resolved
    notes = list(resolved.notes)
    if resolved.random_weights:
        notes.insert(0, f"weights are {resolved.weights}")
    if req.profile_ops:
        notes.append(
            "--profile-ops: operator times come from a separate 30-iteration batch-1 pass with ONNX Runtime's "
            "profiler on; the timed runs above had it off"
        )
    if not dev_profile.get("peak_gops"):
        notes.append(f"device '{spec.name}' has no profile.peak_gops: roofline shares are unmeasured")
    environment = dict(result.get("environment") or {})
    environment["runtime"] = result.get("runtime")
    return {
        "schema": SCHEMA,
        "model": {**resolved.to_dict(), **prep.stats, "op_types": prep.op_types},
        "device": spec.name,
        "device_profile": dev_profile or None,
        "backend": req.backend,
        "precision": prep.precision,
        "input": {
            "name": (result.get("input") or {}).get("name", prep.input_name),
            "item_shape": list(prep.item),
            "source": source,
        },
        "request": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(req).items()},
        "budget": asdict(budget),
        "runs": runs,
        "memory_mb": result.get("memory_mb"),
        "load_time_s": result.get("load_time_s"),
        "cold_start": result.get("cold_start"),
        "telemetry": result.get("telemetry"),
        "op_profile": result.get("op_profile"),
        "environment": environment,
        "notes": notes,
    }


def _profile_job(req: ProfileRequest, prep: _Prepared, inputs: str, budget: TimingBudget, timed: bool) -> ProfileJob:
    """The agent job profiling *prep* (``timed=False``: load, memory and cold start only)."""
    return ProfileJob(
        artifact=str(prep.resolved.artifact),
        inputs=inputs,
        backend=req.backend,
        options=prep.options,
        batches=tuple(prep.batches),
        modes=tuple(req.modes),
        budget=budget,
        timed=timed,
    )


def profile(req: ProfileRequest, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Run one profile as ``edgebench profile`` does; returns the result dict it prints as JSON."""
    from edgebench.devices.inventory import get_device
    from edgebench.devices.registry import open_device

    req.validate()
    spec = get_device(req.device)  # unknown device: fail before any export
    data = _load_data(req)
    prep = _prepare(req, data)
    budget = _budget(req)
    with tempfile.TemporaryDirectory(prefix="edgebench-profile-") as tmp:
        inputs, source = _inputs(req, data, prep.item, prep.batches, tmp)
        job = _profile_job(req, prep, inputs, budget, timed=True)
        with open_device(spec) as device:
            result = device.run_job(job, on_progress)
    return _output(req, prep, spec, result, budget, source)


MANY_SCHEMA = "edgebench.profile-many/1"


def profile_many(
    req: ProfileRequest, models: list[str], rounds: int = 6, on_progress: Callable[[dict], None] | None = None
) -> dict:
    """Profile several models on one device as a study does: each model's own process measures
    its load, memory and cold start, then all are timed in *rounds* interleaved rounds in one
    agent session, so they meet the same drift; every run carries its speed-up over the first
    model (the reference) with a 95 % interval from the paired rounds."""
    from edgebench.agent.protocol import RoundsEntry, RoundsJob
    from edgebench.devices.inventory import get_device
    from edgebench.devices.registry import open_device
    from edgebench.measure.speedup import pass_drift, with_speedups

    if len(models) < 2:
        raise EdgebenchError(f"profile: expected two or more models to time together, found {len(models)}")
    if rounds < 2:
        raise EdgebenchError(f"--rounds: expected 2 or more, found {rounds}")
    reqs = [dataclasses.replace(req, model=m) for m in models]
    for r in reqs:
        r.validate()
    spec = get_device(req.device)
    data = _load_data(req)
    preps = [_prepare(r, data) for r in reqs]
    shapes = {tuple(p.item) for p in preps}
    if len(shapes) > 1:
        found = ", ".join(f"{m}: {p.item}" for m, p in zip(models, preps))
        raise EdgebenchError(f"profile: expected models with one input shape to time on the same inputs, found {found}")
    names = _model_names(models)
    budget = _budget(req)
    with tempfile.TemporaryDirectory(prefix="edgebench-profile-") as tmp:
        inputs, source = _inputs(req, data, preps[0].item, preps[0].batches, tmp)
        with open_device(spec) as device:
            solos = []
            for prep in preps:
                job = _profile_job(req, prep, inputs, budget, timed=False)
                solos.append(device.run_job(job, on_progress))
            entries = tuple(
                RoundsEntry(
                    n,
                    str(p.resolved.artifact),
                    req.backend,
                    dataclasses.replace(p.options, profile_ops=False),
                    tuple(p.batches),
                )
                for n, p in zip(names, preps)
            )
            rounds_job = RoundsJob(entries=entries, inputs=inputs, modes=tuple(req.modes), budget=budget, rounds=rounds)
            timed = device.run_job(rounds_job, on_progress)
    ref_runs = timed["models"][names[0]]["runs"]
    outs = []
    for k, (name, r, prep, solo) in enumerate(zip(names, reqs, preps, solos)):
        merged = dict(solo, runs=with_speedups(timed["models"][name]["runs"], ref_runs if k else None))
        merged["telemetry"] = timed.get("telemetry")
        outs.append(dict(_output(r, prep, spec, merged, budget, source), name=name))
    return {
        "schema": MANY_SCHEMA,
        "device": spec.name,
        "reference": names[0],
        "models": outs,
        "timing_pass": {
            "rounds": rounds,
            "models": names,
            "sessions": timed.get("sessions"),
            "segment_budget": timed.get("segment_budget"),
            "round_meta": timed.get("rounds"),
            "drift": pass_drift(ref_runs, timed.get("rounds") or []),
        },
    }


def profile_models(
    req: ProfileRequest, models: list[str], rounds: int = 6, on_progress: Callable[[dict], None] | None = None
) -> dict:
    """``edgebench profile MODEL [MODEL ...]``: one model profiled alone (:func:`profile`), several
    timed together in interleaved rounds (:func:`profile_many`)."""
    if len(models) == 1:
        return profile(dataclasses.replace(req, model=models[0]), on_progress)
    return profile_many(req, models, rounds, on_progress)


def _model_names(models: list[str]) -> list[str]:
    """Short distinct names for the models: file stems, with their position where stems repeat."""
    stems = [Path(m).stem if not m.startswith("torchvision:") else m.split(":", 1)[1] for m in models]
    return [s if stems.count(s) == 1 else f"{s}#{i + 1}" for i, s in enumerate(stems)]
