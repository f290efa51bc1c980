"""TensorRT backend (TensorRT 10 Python API): build an engine from ONNX on the target, cache it,
run it with ``execute_async_v3`` on a CUDA stream.

Engines are not portable across GPUs or TensorRT versions, so the engine cache key is
(ONNX sha256, GPU name, compute capability, TensorRT version, precision, optimization-profile
shapes, workspace). The key, the builder settings, the profile shapes, the equivalent
``trtexec`` build command (``builder: trtexec`` in the options) and the per-layer profile
aggregation are pure functions (:func:`engine_cache_key`, :func:`build_plan`,
:func:`profile_shapes`, :func:`trtexec_build_command`, :func:`layer_rows`) so they are tested
everywhere; building and running need ``tensorrt`` and a CUDA GPU.

INT8 is *explicit* quantization: the engine takes its scales from the Q/DQ nodes of the
symmetric S8S8 artifact (``quantize: {preset: tensorrt}``); no calibrator runs on the device. Device memory and the stream come from torch's CUDA
allocator (``torch.cuda``), which every Jetson and x86 CUDA install that has TensorRT can have.

*compute* latency: ``execute_async_v3`` + stream synchronize on inputs already on the GPU (host
clock), and beside it the GPU's own time from CUDA events on the stream (``latency_device_ms``).
*end-to-end*: host array into a pinned buffer, async host-to-device copy, execute, async
device-to-host copy into pinned buffers, synchronize.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.backends.base import Backend, Capabilities, TensorSpec
from edgebench.backends.options import BackendOptions
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
# BuilderFlag names per precision: INT8 keeps FP16 on so layers without int8 kernels fall back
# to half precision (what trtexec --int8 --fp16 does); QDQ models take their scales from the graph.
_FLAGS = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}


@dataclass(frozen=True)
class TrtBuildOptions:
    """How the engine is built. ``batches``: batch sizes the optimization profile must cover."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    batches: tuple[int, ...] = (1,)
    opt_batch: int | None = None  # default: the smallest batch (latency first)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgebenchError(f"tensorrt: precision expected one of {list(PRECISIONS)}, found {self.precision!r}")
        if self.workspace_mb < 1:
            raise EdgebenchError(f"tensorrt: workspace_mb expected >= 1, found {self.workspace_mb}")
        if not self.batches or any(int(b) < 1 for b in self.batches):
            raise EdgebenchError(f"tensorrt: batches expected positive sizes, found {list(self.batches)}")
        if self.opt_batch is not None and not min(self.batches) <= self.opt_batch <= max(self.batches):
            raise EdgebenchError(
                f"tensorrt: opt_batch expected within [{min(self.batches)}, {max(self.batches)}], found {self.opt_batch}"
            )

    @classmethod
    def from_backend_options(cls, options: BackendOptions) -> TrtBuildOptions:
        return cls(
            precision=options.precision or "fp32",
            workspace_mb=options.workspace_mb,
            batches=options.batches,
            opt_batch=options.opt_batch,
        )


def profile_shapes(
    declared: Sequence[Any], item_shape: Sequence[int] | None, options: TrtBuildOptions
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(min, opt, max) shapes of the one input for the optimization profile, or None if static.

    *declared* is the ONNX input shape (ints, or strings for symbolic dimensions); *item_shape*
    fills the non-batch symbolic dimensions. Only the batch dimension varies across the profile.
    """
    dynamic = [not (isinstance(d, int) and d > 0) for d in declared]
    if not any(dynamic):
        return None
    rest: list[int] = []
    for k, d in enumerate(declared[1:], start=1):
        if isinstance(d, int) and d > 0:
            rest.append(d)
        elif item_shape is not None and len(item_shape) == len(declared) - 1:
            rest.append(int(item_shape[k - 1]))
        else:
            raise EdgebenchError(
                f"tensorrt: input dimension {k} of {tuple(declared)} is dynamic; expected an input shape to fix it, found none"
            )
    if item_shape is not None:
        for k, (d, s) in enumerate(zip(declared[1:], item_shape), start=1):
            if isinstance(d, int) and d > 0 and d != s:
                raise EdgebenchError(f"tensorrt: input expects dimension {k} = {d}, found {s}")
    if not dynamic[0]:
        b = int(declared[0])
        return (b, *rest), (b, *rest), (b, *rest)
    lo, hi = min(options.batches), max(options.batches)
    opt = options.opt_batch or lo
    return (lo, *rest), (opt, *rest), (hi, *rest)


def engine_cache_key(
    onnx_sha256: str,
    device_name: str,
    trt_version: str,
    precision: str,
    shapes: tuple[tuple[int, ...], ...] | None,
    workspace_mb: int = 1024,
    compute_capability: str | None = None,
    builder: str = "api",
) -> str:
    """Content key of an engine: anything that makes an engine differ changes the key."""
    payload = json.dumps(
        {
            "onnx": onnx_sha256,
            "device": device_name,
            "compute_capability": compute_capability,
            "builder": builder,
            "tensorrt": trt_version,
            "precision": precision,
            "profile": [list(s) for s in shapes] if shapes else None,
            "workspace_mb": workspace_mb,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def build_plan(options: TrtBuildOptions) -> dict:
    """The builder settings as data: flag names, workspace bytes, profiling verbosity (DETAILED:
    layer names in the engine, so the per-layer profile names layers). Applied by ``_build``."""
    return {
        "flags": list(_FLAGS[options.precision]),
        "workspace_bytes": int(options.workspace_mb) << 20,
        "profiling_verbosity": "DETAILED",
    }


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def trtexec_build_command(
    trtexec: str,
    onnx_path: str,
    engine_path: str,
    options: TrtBuildOptions,
    input_name: str,
    shapes: tuple[tuple[int, ...], ...] | None,
) -> list[str]:
    """The ``trtexec`` (TensorRT 10) argv that builds the same engine as the Python API path:
    same precision flags, workspace pool, optimization profile and verbosity; build only."""
    argv = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{int(options.workspace_mb)}M",
        "--profilingVerbosity=detailed",
        "--skipInference",
    ]
    argv += [f"--{flag.lower()}" for flag in build_plan(options)["flags"]]
    if shapes is not None:
        for key, shape in zip(("minShapes", "optShapes", "maxShapes"), shapes):
            argv.append(f"--{key}={input_name}:{_dims(shape)}")
    return argv


def layer_rows(records: Sequence[tuple[str, float]], top: int = 20) -> list[dict]:
    """Per-layer times reported by the engine profiler, ``(layer name, ms)`` once per layer per
    inference, as the top *top* layers by total time: ``{layer, calls, total_ms, mean_ms, share}``."""
    totals: dict[str, list[float]] = {}
    for name, ms in records:
        entry = totals.setdefault(str(name), [0, 0.0])
        entry[0] += 1
        entry[1] += float(ms)
    grand = sum(v[1] for v in totals.values())
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))  # by total time, then name
    rows: list[dict] = [
        {
            "layer": name,
            "op_type": name,  # the report's operator table shows layers under this key
            "node_count": 1,
            "calls": int(calls),
            "total_ms": total,
            "mean_ms": total / calls,
            "share": total / grand if grand > 0 else None,
        }
        for name, (calls, total) in ranked[:top]
    ]
    return rows


def engine_cache_dir() -> Path:
    from edgebench import settings

    return settings.cache_dir() / "tensorrt"


class TensorRTBackend(Backend):
    """Builds (or loads from the cache) a TensorRT engine for an ONNX file and runs it."""

    name = "tensorrt"
    capabilities = Capabilities(
        profile_ops=True,
        builds_precisions=("fp16", "int8"),
        devices=("cuda",),
        needs_batches=True,
        options=("input_shape", "batches", "opt_batch", "workspace_mb", "builder", "engine_cache_dir", "trtexec"),
    )

    def _open(self) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise EdgebenchError(
                f"tensorrt backend: the tensorrt Python package is not importable here ({exc})"
            ) from None
        try:
            import torch
        except ImportError as exc:
            raise EdgebenchError(
                f"tensorrt backend: needs torch with CUDA for device memory, found none ({exc})"
            ) from None
        if not torch.cuda.is_available():
            raise EdgebenchError(
                "tensorrt backend: expected a CUDA GPU, found none (torch.cuda.is_available() is False)"
            )
        from edgebench.measure.onnx_stats import graph_inputs, load_onnx
        from edgebench.util import onnx_file
        from edgebench.util.io import atomic_write_bytes

        self._trt, self._torch = trt, torch
        path = Path(str(self.artifact))
        model = load_onnx(path)
        inputs = graph_inputs(model)
        if len(inputs) != 1:
            raise EdgebenchError(f"tensorrt backend: expected a model with one input, found {[i[0] for i in inputs]}")
        in_name, declared, dtype = inputs[0]
        self._build_opts = TrtBuildOptions.from_backend_options(self.options)
        item = self.options.input_shape
        item_shape = item[1:] if item else None
        self._shapes = profile_shapes(declared, item_shape, self._build_opts)
        dev = torch.device(self.options.device if self.options.device.startswith("cuda") else "cuda")
        self._device = dev
        gpu = torch.cuda.get_device_name(dev)
        self._capability = "{}.{}".format(*torch.cuda.get_device_capability(dev))
        self._builder = self.options.builder
        if self._builder not in ("api", "trtexec"):
            raise EdgebenchError(f"tensorrt: builder expected 'api' or 'trtexec', found {self._builder!r}")
        key = engine_cache_key(
            onnx_file.sha256(path),
            gpu,
            trt.__version__,
            self._build_opts.precision,
            self._shapes,
            self._build_opts.workspace_mb,
            self._capability,
            self._builder,
        )
        cache = Path(self.options.engine_cache_dir or engine_cache_dir()) / f"{key}.engine"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine_cached = cache.is_file()
        if self.engine_cached:
            blob = cache.read_bytes()
        else:
            blob = self._build(path, in_name) if self._builder == "api" else self._build_trtexec(path, in_name, cache)
            atomic_write_bytes(cache, blob)
        self.engine_path = str(cache)
        runtime = trt.Runtime(self._logger)
        self._engine = runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise EdgebenchError(f"tensorrt: could not deserialize the engine {cache}")
        self._context = self._engine.create_execution_context()
        self._layer_records: list[tuple[str, float]] = []
        if self.options.profile_ops:
            records = self._layer_records

            class _LayerProfiler(trt.IProfiler):  # called once per layer per inference
                def __init__(self) -> None:
                    trt.IProfiler.__init__(self)

                def report_layer_time(self, layer_name: str, ms: float) -> None:
                    records.append((layer_name, ms))

            self._profiler = _LayerProfiler()
            self._context.profiler = self._profiler
        self._stream = torch.cuda.Stream(device=dev)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._in_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._out_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._inputs = [
            TensorSpec(
                n,
                tuple(d if d >= 0 else "batch" for d in self._engine.get_tensor_shape(n)),
                np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))).name,
            )
            for n in self._in_names
        ]
        self._out_buffers: dict[tuple, list[Any]] = {}
        self._pinned_buffers: dict[tuple, Any] = {}

    def _build(self, path: Path, in_name: str) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        # TensorRT 10: networks are always explicit-batch (the flag is deprecated and 0 means it)
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):  # from the path: external data (> 2 GB) is read beside it
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EdgebenchError(
                f"tensorrt could not parse {path}: {errors.splitlines()[0] if errors else 'unknown error'}"
            )
        config = builder.create_builder_config()
        plan = build_plan(self._build_opts)
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan["workspace_bytes"])
        config.profiling_verbosity = getattr(trt.ProfilingVerbosity, plan["profiling_verbosity"])
        for flag in plan["flags"]:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if self._shapes is not None:
            profile = builder.create_optimization_profile()
            profile.set_shape(in_name, *self._shapes)
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgebenchError(f"tensorrt: building an engine for {path} failed (see the TensorRT log above)")
        return bytes(serialized)

    def _build_trtexec(self, path: Path, in_name: str, cache: Path) -> bytes:
        """Build with the ``trtexec`` binary (``builder: trtexec``) into a temporary file."""
        import shutil
        import subprocess
        import tempfile

        binary = self.options.trtexec or shutil.which("trtexec") or "/usr/src/tensorrt/bin/trtexec"
        if not Path(binary).is_file():
            raise EdgebenchError(f"tensorrt: builder trtexec: expected the trtexec binary, found none at {binary}")
        with tempfile.TemporaryDirectory(prefix="edgebench-trtexec-") as tmp:
            out = Path(tmp) / "engine.plan"
            argv = trtexec_build_command(binary, str(path), str(out), self._build_opts, in_name, self._shapes)
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0 or not out.is_file():
                tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
                raise EdgebenchError(f"tensorrt: trtexec exited {proc.returncode} building {path}: {tail}")
            return out.read_bytes()

    def op_profile(self) -> list[dict] | None:
        """Top layers by time from the engine profiler (``profile_ops``), else None."""
        return layer_rows(self._layer_records) if self.options.profile_ops and self._layer_records else None

    def _close(self) -> None:
        self._pinned_buffers = {}
        self._context = None
        self._engine = None
        self._out_buffers = {}

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_names(self) -> list[str]:
        return list(self._out_names)

    def _outputs_for(self, shape: tuple[int, ...]) -> list[Any]:
        """Output tensors on the GPU for an input *shape* (allocated once per shape)."""
        torch, trt = self._torch, self._trt
        if shape not in self._out_buffers:
            self._context.set_input_shape(self._in_names[0], shape)
            outs = []
            for n in self._out_names:
                dtype = torch.from_numpy(np.zeros(0, dtype=trt.nptype(self._engine.get_tensor_dtype(n)))).dtype
                outs.append(torch.empty(tuple(self._context.get_tensor_shape(n)), dtype=dtype, device=self._device))
            self._out_buffers[shape] = outs
        return self._out_buffers[shape]

    def _pinned(self, key: tuple, like: Any) -> Any:
        """A page-locked host buffer shaped like the tensor *like*, allocated once per key, so
        host<->device copies are true DMA copies (what an application with pinned buffers sees)."""
        buf = self._pinned_buffers.get(key)
        if buf is None or tuple(buf.shape) != tuple(like.shape) or buf.dtype != like.dtype:
            buf = self._torch.empty(tuple(like.shape), dtype=like.dtype, pin_memory=True)
            self._pinned_buffers[key] = buf
        return buf

    def _prepare(self, feed: dict[str, np.ndarray]) -> Any:
        """End-to-end input path: the host array into a pinned buffer, then an async copy on the
        engine's stream (the base synchronizes before the next iteration reuses the buffer)."""
        torch = self._torch
        src = torch.from_numpy(np.ascontiguousarray(feed[self._in_names[0]]))
        host = self._pinned(("in", tuple(src.shape), src.dtype), src)
        host.copy_(src)
        with torch.cuda.stream(self._stream):
            x = host.to(self._device, non_blocking=True)
        return x

    def _prepare_compute(self, feed: dict[str, np.ndarray]) -> Any:
        """Compute-timing inputs, placed on the GPU once (blocking copies: several feeds are
        prepared back to back, so they must not share a pinned staging buffer in flight)."""
        arr = np.ascontiguousarray(feed[self._in_names[0]])
        return self._torch.from_numpy(arr).to(self._device)

    def _execute(self, prepared: Any) -> Any:
        shape = tuple(prepared.shape)
        outs = self._outputs_for(shape)
        ctx = self._context
        ctx.set_input_shape(self._in_names[0], shape)
        ctx.set_tensor_address(self._in_names[0], prepared.data_ptr())
        for n, t in zip(self._out_names, outs):
            ctx.set_tensor_address(n, t.data_ptr())
        if not ctx.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        return outs

    def _fetch(self, raw: Any) -> list[np.ndarray]:
        """Outputs into pinned host buffers on the engine's stream, then one synchronize; the
        arrays returned are copies, as the buffers are reused by the next inference."""
        hosts = []
        with self._torch.cuda.stream(self._stream):
            for i, t in enumerate(raw):
                host = self._pinned(("out", i), t)
                host.copy_(t, non_blocking=True)
                hosts.append(host)
        self._stream.synchronize()
        return [h.numpy().copy() for h in hosts]

    def synchronize(self) -> None:
        self._stream.synchronize()

    def device_timer(self) -> Any:
        """CUDA events recorded on the engine's stream around each compute iteration."""
        return _CudaEventTimer(self._torch, self._stream)

    def environment(self) -> dict:
        torch = self._torch
        return {
            "backend": self.name,
            "version": self._trt.__version__,
            "device": str(self._device),
            "gpu_name": torch.cuda.get_device_name(self._device),
            "compute_capability": self._capability,
            "builder": self._builder,
            "precision": self._build_opts.precision,
            "profile_shapes": [list(s) for s in self._shapes] if self._shapes else None,
            "engine_path": self.engine_path,
            "engine_cached": self.engine_cached,
            "gpu_max_memory_allocated_mb": torch.cuda.max_memory_allocated(self._device) / 1048576.0,
        }


class _CudaEventTimer:
    """GPU time of one enqueue, from a pair of timing events on *stream* (read after sync)."""

    def __init__(self, torch: Any, stream: Any) -> None:
        self._stream = stream
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> None:
        self._end.record(self._stream)

    def elapsed_ms(self) -> float:
        return float(self._start.elapsed_time(self._end))
