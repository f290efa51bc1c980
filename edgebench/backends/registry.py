"""Find backends by name without importing their runtimes until needed."""

from __future__ import annotations

import importlib
from typing import Any

from edgebench.backends.base import Backend
from edgebench.backends.options import BackendOptions
from edgebench.errors import EdgebenchError

# name -> (module, class, the runtime package whose import decides availability)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "onnxruntime": ("edgebench.backends.onnxruntime", "OnnxRuntimeBackend", "onnxruntime"),
    "torch": ("edgebench.backends.torch", "TorchBackend", "torch"),
    "tensorrt": ("edgebench.backends.tensorrt", "TensorRTBackend", "tensorrt"),
    "null": ("edgebench.backends.null", "NullBackend", None),
}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise EdgebenchError(f"unknown backend '{name}': expected one of {sorted(BACKENDS)}")
    module, cls, _ = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise EdgebenchError(f"backend '{name}' is unavailable here: {exc}") from None


def create(name: str, artifact: str | None, options: BackendOptions | None = None) -> Backend:
    return backend_class(name)(artifact, options)


def availability() -> list[dict[str, Any]]:
    """Each backend with ``available`` and, when not, the ``reason`` (the import error)."""
    rows = []
    for name, (module, _cls, runtime) in BACKENDS.items():
        row: dict[str, Any] = {"name": name, "runtime": runtime}
        try:
            if runtime:
                mod = importlib.import_module(runtime)
                row["version"] = getattr(mod, "__version__", "?")
            importlib.import_module(module)
            row["available"] = True
        except Exception as exc:  # noqa: BLE001 - any import failure means unavailable
            row["available"] = False
            row["reason"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
