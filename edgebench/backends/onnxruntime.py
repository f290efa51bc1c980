"""ONNX Runtime backend: CPU execution provider, CUDA where the installed build has it.

*compute* latency uses IO binding on pre-built OrtValues (inputs already in place);
*end-to-end* latency uses ``session.run`` on host arrays (on CUDA: IO binding with the host
copies inside the timed region).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.backends.base import Backend, Capabilities, TensorSpec
from edgebench.errors import EdgebenchError, first_line

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def ort_providers(
    device: str, provider: str | None, available: list[str], precision: str | None, trt_cache_dir: str | None = None
) -> list[Any]:
    """The execution providers for a session. ``device: cuda`` uses the CUDA EP; ``provider:
    tensorrt`` (option ``provider``) puts ONNX Runtime's TensorRT EP first (fp16 / int8
    from *precision*; int8 takes the Q/DQ scales of the model), with CUDA and CPU behind it for
    what TensorRT does not take. A provider this build lacks is an error naming what it has."""
    dev_id = int(device.split(":")[1]) if ":" in device else 0
    want = (provider or ("cuda" if device.startswith("cuda") else "cpu")).lower()
    if want not in ("cpu", "cuda", "tensorrt"):
        raise EdgebenchError(f"onnxruntime: provider expected cpu, cuda or tensorrt, found {provider!r}")
    needed = {"cuda": ["CUDAExecutionProvider"], "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}
    missing = [p for p in needed.get(want, []) if p not in available]
    if missing:
        raise EdgebenchError(
            f"onnxruntime: provider {want} requested, but this onnxruntime build has only {available} "
            "(install onnxruntime-gpu, or NVIDIA's JetPack wheel for TensorRT)"
        )
    cuda: Any = ("CUDAExecutionProvider", {"device_id": dev_id})
    if want == "cpu":
        return ["CPUExecutionProvider"]
    if want == "cuda":
        return [cuda, "CPUExecutionProvider"]
    trt_opts: dict[str, Any] = {
        "device_id": dev_id,
        "trt_fp16_enable": precision in ("fp16", "int8"),
        "trt_int8_enable": precision == "int8",
    }
    if trt_cache_dir:
        trt_opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir))
    return [("TensorrtExecutionProvider", trt_opts), cuda, "CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    capabilities = Capabilities(
        profile_ops=True,
        devices=("cpu", "cuda"),
        providers=("cpu", "cuda", "tensorrt"),
        options=("graph_optimization", "provider", "trt_cache_dir"),
    )

    def _open(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        path = Path(str(self.artifact))
        if not path.is_file():
            raise EdgebenchError(f"ONNX model not found: expected a file at {path}")
        so = ort.SessionOptions()
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if self.options.graph_optimization not in levels:
            raise EdgebenchError(
                f"onnxruntime: graph_optimization expected one of {sorted(levels)}, found {self.options.graph_optimization!r}"
            )
        so.graph_optimization_level = levels[self.options.graph_optimization]
        if self.options.threads:
            so.intra_op_num_threads = int(self.options.threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        providers = ort_providers(
            self.options.device,
            self.options.provider,
            ort.get_available_providers(),
            self.options.precision,
            self.options.trt_cache_dir,
        )
        self._session: Any = None
        self._profile_cache: list[dict] | None = None
        self._profile_dir: str | None = None
        if self.options.profile_ops:
            # ORT writes its trace here; removed once read (_collect_profile), on close, or now on a failed load
            self._profile_dir = tempfile.mkdtemp(prefix="edgebench-ortprof-")
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(self._profile_dir, "ort")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises several types for corrupt/unsupported models
            self._remove_profile_dir()
            first = first_line(exc)
            raise EdgebenchError(f"onnxruntime could not load {path}: {first}") from None
        self._inputs = [
            TensorSpec(
                i.name,
                tuple(d if isinstance(d, int) else (d or "?") for d in i.shape),
                _ORT_TYPES.get(i.type, "float32"),
            )
            for i in self._session.get_inputs()
        ]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._ort_device = "cuda" if self.options.device.startswith("cuda") else "cpu"

    def _close(self) -> None:
        try:
            if self._profile_dir is not None:
                self._collect_profile()
        finally:
            self._session = None
            self._remove_profile_dir()

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_names(self) -> list[str]:
        return list(self._outputs)

    def _prepare(self, feed: dict[str, np.ndarray]) -> Any:
        if self._ort_device == "cpu":
            return feed  # session.run: what an application calls
        return self._prepare_compute(feed)

    def _prepare_compute(self, feed: dict[str, np.ndarray]) -> Any:
        binding = self._session.io_binding()
        for name, arr in feed.items():
            value = self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), self._ort_device, 0)
            binding.bind_ortvalue_input(name, value)
        for name in self._outputs:
            binding.bind_output(name, "cpu")
        return binding

    def _execute(self, prepared: Any) -> Any:
        if isinstance(prepared, dict):
            return self._session.run(None, prepared)
        self._session.run_with_iobinding(prepared)
        return prepared

    def _fetch(self, raw: Any) -> list[np.ndarray]:
        return raw if isinstance(raw, list) else raw.copy_outputs_to_cpu()

    def environment(self) -> dict:
        ort = self._ort
        providers = self._session.get_providers() if self._session is not None else []
        return {
            "backend": self.name,
            "version": ort.__version__,
            "providers": providers,
            "execution_provider": providers[0] if providers else None,
            "graph_optimization": self.options.graph_optimization,
            "intra_op_threads": self.options.threads,
            # ORT's default intra-op pool is one thread per physical core
            "intra_op_threads_effective": self.options.threads or _physical_cores(),
            "device": self.options.device,
        }

    # ---- per-operator profile ------------------------------------------------------------------
    def _collect_profile(self) -> None:
        """Stop ORT's profiler, summarize its trace and delete it (file and folder), read or not."""
        if self._profile_cache is not None or self._session is None:
            return
        prof = ""
        try:
            prof = self._session.end_profiling()
            try:
                events = json.loads(Path(prof).read_text())
            except (OSError, json.JSONDecodeError):
                events = []
            self._profile_cache = summarize_ort_profile(events)
        finally:
            if prof:
                Path(prof).unlink(missing_ok=True)  # ORT's file, wherever it put it
            self._remove_profile_dir()

    def _remove_profile_dir(self) -> None:
        if self._profile_dir is not None:
            shutil.rmtree(self._profile_dir, ignore_errors=True)

    def op_profile(self) -> list[dict] | None:
        if not self.options.profile_ops:
            return None
        self._collect_profile()
        return self._profile_cache


def _physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def summarize_ort_profile(events: list[dict], top: int = 15) -> list[dict]:
    """Turn ONNX Runtime's chrome-trace profile into the top operators by total time.

    Returns ``[{op_type, node_count, calls, total_ms, mean_ms, share}]`` sorted by total time,
    like trtexec's ``--exportProfile`` but grouped per operator type.
    """
    per_type: dict[str, dict] = {}
    total = 0.0
    for ev in events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        args = ev.get("args", {})
        op = args.get("op_name", "?")
        dur_ms = float(ev.get("dur", 0)) / 1000.0
        node = str(ev["name"])[: -len("_kernel_time")]
        entry = per_type.setdefault(op, {"op_type": op, "nodes": set(), "calls": 0, "total_ms": 0.0})
        entry["nodes"].add(node)
        entry["calls"] += 1
        entry["total_ms"] += dur_ms
        total += dur_ms
    rows = []
    for entry in per_type.values():
        rows.append(
            {
                "op_type": entry["op_type"],
                "node_count": len(entry["nodes"]),
                "calls": entry["calls"],
                "total_ms": entry["total_ms"],
                "mean_ms": entry["total_ms"] / max(entry["calls"], 1),
                "share": entry["total_ms"] / total if total > 0 else 0.0,
            }
        )
    rows.sort(key=lambda r: r["total_ms"], reverse=True)
    return rows[:top]
