"""PyTorch backend (the reference): TorchScript (``torch.jit.load``) or an ExportedProgram
(``torch.export.load``, ``.pt2``), eager on CPU or CUDA, optionally ``torch.compile``-d.

Options: ``threads`` (``torch.set_num_threads``), ``device`` (``cpu``/``cuda[:N]``),
``input_shape`` (the profiled shape, needed for TorchScript which stores none) and
``compile`` (True: wrap the module in ``torch.compile`` with its default backend, inductor; a
string names another ``torch.compile`` backend, e.g. ``aot_eager`` where no C compiler exists).

*compute* latency: the forward pass on tensors already on the device (+ ``cuda.synchronize``).
*end-to-end*: host numpy in (``from_numpy`` + copy to the device), forward, copy back to numpy.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.backends.base import Backend, Capabilities, TensorSpec
from edgebench.errors import EdgebenchError, first_line

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "exported_program")


def detect_format(path: Path) -> str:
    """``exported_program`` for a ``.pt2`` archive, ``torchscript`` for a TorchScript zip."""
    if not path.is_file():
        raise EdgebenchError(f"torch model not found: expected a file at {path}")
    if not zipfile.is_zipfile(path):
        raise EdgebenchError(
            f"{path} is not a TorchScript or torch.export (.pt2) file: expected a zip archive, found other bytes"
        )
    if path.suffix == ".pt2":
        return "exported_program"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names):
        return "torchscript"
    if any("serialized_exported_program" in n or n.endswith("models/model.json") for n in names):
        return "exported_program"
    raise EdgebenchError(
        f"{path}: expected a TorchScript archive (torch.jit.save) or an ExportedProgram (torch.export.save), "
        "found a zip that is neither (a plain state_dict needs an architecture: use torchvision:NAME)"
    )


def load_module(path: str | Path, device: str = "cpu") -> tuple[Any, str, tuple[Any, ...] | None]:
    """Load a TorchScript or ExportedProgram file -> (callable module, format, declared input shape).

    The declared shape comes from an ExportedProgram's input metadata (symbolic dimensions as
    strings); TorchScript stores none (None).
    """
    import torch

    p = Path(path)
    fmt = detect_format(p)
    try:
        if fmt == "torchscript":
            with warnings.catch_warnings():  # torch 2.9+ marks TorchScript deprecated; it still is what users ship
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(p), map_location=device)
            return module.eval(), fmt, None
        ep = torch.export.load(str(p))
    except EdgebenchError:
        raise
    except Exception as exc:  # RuntimeError, PicklingError, ... on corrupt/unsupported files
        first = first_line(exc)
        raise EdgebenchError(f"torch could not load {p} ({fmt}): {first}") from None
    declared = None
    user_inputs = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in set(ep.graph_signature.user_inputs)]
    if user_inputs and "val" in user_inputs[0].meta:
        declared = tuple(int(d) if isinstance(d, int) else str(d) for d in user_inputs[0].meta["val"].shape)
    module = ep.module()
    if device != "cpu":
        module = module.to(device)
    return module, fmt, declared


def _compile_backend(value: bool | str) -> str | None:
    """The ``torch.compile`` backend the ``compile`` option asks for (None: no compile)."""
    if value is False:
        return None
    if value is True:
        return "inductor"
    import torch._dynamo

    if not isinstance(value, str) or value not in torch._dynamo.list_backends(exclude_tags=()):
        raise EdgebenchError(
            "torch backend: compile expects true, false or a torch.compile backend "
            f"(inductor, aot_eager, eager, ...), found {value!r}"
        )
    return value


class TorchBackend(Backend):
    name = "torch"
    capabilities = Capabilities(devices=("cpu", "cuda"), options=("compile", "input_shape"))

    def _open(self) -> None:
        import torch

        self._torch = torch
        dev = self.options.device
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise EdgebenchError("torch backend: device cuda requested, but torch.cuda.is_available() is False here")
        if self.options.threads:
            torch.set_num_threads(int(self.options.threads))
        self._device = torch.device(dev)
        self._cuda = self._device.type == "cuda"
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
        module, self.format, declared = load_module(str(self.artifact), dev)
        self._compile_backend = _compile_backend(self.options.compile)
        self._compiled = self._compile_backend is not None
        if self._compiled and self.format == "torchscript":
            raise EdgebenchError(
                f"torch backend: compile=True needs an ExportedProgram (.pt2), found TorchScript {self.artifact} "
                "(torch.compile does not compile TorchScript)"
            )
        self._module = torch.compile(module, backend=self._compile_backend) if self._compile_backend else module
        given = self.options.input_shape
        if declared is not None:
            shape: tuple[Any, ...] = declared
            if given is not None and len(given) != len(declared):
                raise EdgebenchError(
                    f"torch model {self.artifact}: expects a {len(declared)}-d input {declared}, found shape {tuple(given)}"
                )
        elif given is not None:
            shape = ("batch",) + tuple(int(d) for d in given[1:])
        else:
            raise EdgebenchError(
                f"torch model {self.artifact}: a TorchScript file stores no input shape; expected one (--input-shape), found none"
            )
        self._spec = TensorSpec("input", shape, "float32")

    def _close(self) -> None:
        self._module = None

    def input_specs(self) -> list[TensorSpec]:
        return [self._spec]

    def output_names(self) -> list[str]:
        return ["logits"]

    def _prepare(self, feed: dict[str, np.ndarray]) -> Any:
        arr = feed[self._spec.name]
        t = self._torch.from_numpy(arr)
        return t.to(self._device, non_blocking=False) if self._cuda else t

    def _execute(self, prepared: Any) -> Any:
        with self._torch.inference_mode():
            return self._module(prepared)

    def _fetch(self, raw: Any) -> list[np.ndarray]:
        outs = raw if isinstance(raw, (list, tuple)) else list(raw.values()) if isinstance(raw, dict) else [raw]
        return [o.detach().cpu().numpy() for o in outs]

    def synchronize(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._device)

    def environment(self) -> dict:
        torch = self._torch
        env: dict[str, Any] = {
            "backend": self.name,
            "version": torch.__version__,
            "format": self.format,
            "device": str(self._device),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "compile": self._compiled,
            "compile_backend": self._compile_backend,
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }
        if self._cuda:
            env["gpu_name"] = torch.cuda.get_device_name(self._device)
            env["cuda"] = torch.version.cuda
            env["cudnn"] = torch.backends.cudnn.version()
            env["gpu_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(self._device) / 1048576.0
            env["gpu_max_memory_reserved_mb"] = torch.cuda.max_memory_reserved(self._device) / 1048576.0
        return env
