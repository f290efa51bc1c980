"""Resolve the MODEL argument of ``edgebench profile`` into the file a backend opens.

MODEL is an ONNX file, a TorchScript file, a ``torch.export`` ExportedProgram (``.pt2``), or
``torchvision:NAME`` (an architecture built with random weights, seed 0: fine for latency,
and said so in every output). A backend needs its own format: ``onnxruntime``/``tensorrt``
take ONNX (torch models are exported once into the cache, keyed by content), ``torch`` takes
TorchScript or an ExportedProgram (a torchvision architecture is traced to TorchScript into
the cache). Parameters and MACs come with it: from the ONNX graph (initializers and Constant
node tensors, int64 shapes excluded; Conv/Gemm/MatMul shapes) or, for torch files, from the
module (parameters, ``FlopCounterMode``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError, first_line

log = logging.getLogger(__name__)

TORCHVISION_PREFIX = "torchvision:"
ONNX_BACKENDS = ("onnxruntime", "tensorrt")
TORCH_BACKENDS = ("torch",)
DEFAULT_IMAGE_SHAPE = (1, 3, 224, 224)
SEED = 0


@dataclass(frozen=True)
class ResolvedModel:
    """What a MODEL argument became for one backend."""

    source: str  # what the user gave
    kind: str  # onnx | torchscript | exported_program | torchvision
    artifact: Path  # the file the backend opens
    artifact_format: str  # onnx | torchscript | exported_program
    random_weights: bool
    weights: str  # a sentence for the output
    declared_shape: tuple[Any, ...] | None  # the artifact's input shape (symbolic dims as str), if it stores one
    default_shape: tuple[int, ...] | None = None  # a shape to use when the user gave none
    size_bytes: int | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "artifact": str(self.artifact),
            "format": self.artifact_format,
            "random_weights": self.random_weights,
            "weights": self.weights,
            "declared_shape": [d if isinstance(d, int) else str(d) for d in self.declared_shape]
            if self.declared_shape
            else None,
            "size_bytes": self.size_bytes,
            "notes": list(self.notes),
        }


def _shape_tag(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def resolve_model(
    spec: str, backend: str, input_shape: tuple[int, ...] | None = None, cache: Path | None = None
) -> ResolvedModel:
    """Turn *spec* into a file *backend* can open, exporting or tracing into *cache* if needed."""
    from edgebench import settings

    cache = Path(cache) if cache is not None else settings.cache_dir()
    if backend not in ONNX_BACKENDS + TORCH_BACKENDS + ("null",):
        raise EdgebenchError(f"unknown backend '{backend}': expected one of {list(ONNX_BACKENDS + TORCH_BACKENDS)}")
    if spec.startswith(TORCHVISION_PREFIX):
        return _resolve_torchvision(spec, backend, input_shape, cache)
    path = Path(spec).expanduser()
    if not path.exists():
        raise EdgebenchError(
            f"model not found: expected an .onnx, TorchScript or .pt2 file or torchvision:NAME, found no file at {path}"
        )
    if not path.is_file():
        raise EdgebenchError(f"model {path}: expected a file, found a directory")
    if path.suffix.lower() == ".onnx":
        if backend in TORCH_BACKENDS:
            raise EdgebenchError(
                f"backend 'torch' runs TorchScript or .pt2 files, found an ONNX file {path} (use --backend onnxruntime)"
            )
        from edgebench.measure.onnx_stats import graph_inputs, load_onnx

        model = load_onnx(path)
        inputs = graph_inputs(model)
        if len(inputs) != 1:
            raise EdgebenchError(f"{path}: expected a model with one input, found {[i[0] for i in inputs]}")
        return ResolvedModel(
            spec, "onnx", path, "onnx", False, "from the file", inputs[0][1], size_bytes=path.stat().st_size
        )
    return _resolve_torch_file(spec, path, backend, input_shape, cache)


def _resolve_torch_file(
    spec: str, path: Path, backend: str, input_shape: tuple[int, ...] | None, cache: Path
) -> ResolvedModel:
    from edgebench.backends.torch import detect_format

    fmt = detect_format(path)
    if backend in TORCH_BACKENDS:
        declared = None
        if fmt == "exported_program":
            from edgebench.backends.torch import load_module

            _, _, declared = load_module(path)
        return ResolvedModel(spec, fmt, path, fmt, False, "from the file", declared, size_bytes=path.stat().st_size)
    # ONNX backends: export once, keyed by the file's content and the shape
    from edgebench.util.io import sha256_file

    digest = sha256_file(path)
    if fmt == "exported_program":
        ep = _load_ep(path)
        declared = _ep_shape(ep)
        static_items = declared is not None and all(isinstance(d, int) for d in declared[1:])
        shape = input_shape or (
            (1, *declared[1:]) if declared is not None and static_items else None
        )  # a dynamic batch is fine
        if shape is None:
            raise EdgebenchError(
                f"{path}: the exported program has dynamic input dimensions {declared}; expected --input-shape, found none"
            )
        out = _export_path(cache, path, digest, shape)
        if not out.is_file():
            _export_ep(ep, shape, out)
        return _exported(spec, fmt, path, out, backend)
    if input_shape is None:
        raise EdgebenchError(
            f"{path}: a TorchScript file stores no input shape; expected --input-shape (e.g. 1x3x224x224), found none"
        )
    out = _export_path(cache, path, digest, input_shape)
    if not out.is_file():
        from edgebench.backends.torch import load_module

        module, _, _ = load_module(path)
        _export_module(module, input_shape, out, path)
    return _exported(spec, fmt, path, out, backend)


def _export_path(cache: Path, path: Path, digest: str, shape: tuple[int, ...]) -> Path:
    """Where the ONNX export of a torch file is cached: keyed by its content, the shape and torch."""
    import torch

    return cache / "onnx" / f"{path.stem}-{digest[:16]}-{_shape_tag(shape)}-torch{torch.__version__.split('+')[0]}.onnx"


def _exported(spec: str, fmt: str, path: Path, out: Path, backend: str) -> ResolvedModel:
    """The ONNX export *out* of the torch file *path*, as what an ONNX backend opens."""
    return ResolvedModel(
        spec,
        fmt,
        out,
        "onnx",
        False,
        "from the file",
        _onnx_shape(out),
        size_bytes=out.stat().st_size,
        notes=(f"exported {path.name} to ONNX for {backend}: {out}",),
    )


def _resolve_torchvision(spec: str, backend: str, input_shape: tuple[int, ...] | None, cache: Path) -> ResolvedModel:
    import torch
    import torchvision

    arch = spec[len(TORCHVISION_PREFIX) :]
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        import difflib

        close = difflib.get_close_matches(arch, names, n=6, cutoff=0.4) or names[:6]
        raise EdgebenchError(f"unknown torchvision architecture '{arch}': expected a name like {close}")
    shape = tuple(input_shape or DEFAULT_IMAGE_SHAPE)
    weights = (
        f"random (torchvision:{arch} built without pretrained weights, seed {SEED}): latency and memory are "
        "representative, accuracy is not"
    )
    tag = f"torchvision-{arch}-tv{torchvision.__version__.split('+')[0]}-seed{SEED}-{_shape_tag(shape)}"

    def build() -> Any:
        torch.manual_seed(SEED)
        try:
            return torchvision.models.get_model(arch, weights=None).eval()
        except Exception as exc:  # noqa: BLE001 - e.g. an architecture that needs arguments
            raise EdgebenchError(f"torchvision could not build '{arch}': {first_line(exc)}") from None

    if backend in TORCH_BACKENDS:
        out = cache / "torch" / f"{tag}.pt"
        if not out.is_file():
            module = build()
            out.parent.mkdir(parents=True, exist_ok=True)
            example = torch.rand(*shape, generator=torch.Generator().manual_seed(SEED))
            tmp = out.with_name(out.name + ".tmp")
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                try:
                    traced = torch.jit.trace(module, example)
                except Exception as exc:  # noqa: BLE001 - wrong rank / channels for this network
                    raise EdgebenchError(
                        f"torchvision:{arch} does not run on an input of shape {shape}: {first_line(exc)}"
                    ) from None
                traced.save(str(tmp))
            tmp.replace(out)
        return ResolvedModel(
            spec,
            "torchvision",
            out,
            "torchscript",
            True,
            weights,
            None,
            shape,
            out.stat().st_size,
            notes=(f"traced to TorchScript: {out}",),
        )
    out = cache / "onnx" / f"{tag}-opset17.onnx"
    if not out.is_file():
        _export_module(build(), shape, out, spec)
    return ResolvedModel(
        spec,
        "torchvision",
        out,
        "onnx",
        True,
        weights,
        _onnx_shape(out),
        shape,
        out.stat().st_size,
        notes=(f"exported to ONNX: {out}",),
    )


def _export_module(module: Any, shape: tuple[int, ...], out: Path, what: Any) -> None:
    from edgebench.export.onnx import export_onnx

    try:
        export_onnx(module, out, shape)
    except EdgebenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporter errors are long; keep the first line
        raise EdgebenchError(f"could not export {what} to ONNX with input shape {shape}: {first_line(exc)}") from None


def _load_ep(path: Path) -> Any:
    import torch

    try:
        return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EdgebenchError(f"torch could not load {path} (exported_program): {first_line(exc)}") from None


def _ep_shape(ep: Any) -> tuple[Any, ...] | None:
    user = set(ep.graph_signature.user_inputs)
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user and "val" in node.meta:
            return tuple(int(d) if isinstance(d, int) else str(d) for d in node.meta["val"].shape)
    return None


def _export_ep(ep: Any, shape: tuple[int, ...], out: Path) -> None:
    """ExportedProgram -> ONNX with the dynamo exporter (its graph module cannot be re-traced)."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.onnx")
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(SEED))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ep,
                (example,),
                str(tmp),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001
        raise EdgebenchError(f"could not export the exported program to ONNX: {first_line(exc)}") from None
    tmp.replace(out)


def _onnx_shape(path: Path) -> tuple[Any, ...]:
    from edgebench.measure.onnx_stats import graph_inputs, load_onnx

    return graph_inputs(load_onnx(path))[0][1]


def torch_file_stats(path: Path, input_shape: tuple[int, ...]) -> dict:
    """Parameters and MACs per item of a TorchScript/.pt2 file (``FlopCounterMode``: FLOPs / 2)."""
    from edgebench.backends.torch import load_module
    from edgebench.compress.stats import count_macs_dispatched

    module, _, _ = load_module(path)
    params = sum(int(p.numel()) for p in module.parameters())
    macs = count_macs_dispatched(module, (1, *input_shape[1:]))
    return {"params": params, "macs": macs, "size_bytes": path.stat().st_size}
