"""ONNX -> PyTorch for what needs a differentiable module (pruning, fine-tuning, transfer and
white-box crafting), and the checks that the module computes what the ONNX graph computes.

The graph is first rewritten by :func:`edgebench.export.graph.for_conversion` (constants to
initializers, opset lowered to what onnx2torch converts, final Softmax as LogSoftmax); the
converted module is then held to ONNX Runtime on real images at every batch size the study uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.export.onnx import torch_logits

if TYPE_CHECKING:
    import onnx
    import torch

log = logging.getLogger(__name__)

# how close a converted / exported model must be to the user's: |diff| <= RTOL * max(1, |logits|)
RTOL = 1e-3
# a probability output: non-negative rows that sum to 1 within this
PROB_ATOL = 1e-3


@dataclass
class Converted:
    """A module onnx2torch made from a graph, and how the graph was prepared for it."""

    module: Any  # torch.nn.Module
    edits: list[str] = field(default_factory=list)
    log_softmax: bool = False  # outputs log-probabilities where the graph output probabilities


def register_converters() -> None:
    """onnx2torch converters for the nodes :func:`edgebench.export.graph.for_conversion` writes:
    ``edgebench_linear.Linear`` -> ``nn.Linear`` (once per process)."""
    import torch
    from onnx2torch.node_converters.registry import add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    from edgebench.export.graph import LINEAR_DOMAIN

    def linear(node: Any, graph: Any) -> Any:
        names = node.input_values
        w = graph.initializers[names[1]].to_numpy()
        b = graph.initializers[names[2]].to_numpy() if len(names) > 2 and names[2] else None
        layer = torch.nn.Linear(int(w.shape[0]), int(w.shape[1]), bias=b is not None)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            if b is not None:
                layer.bias.copy_(torch.from_numpy(np.asarray(b)))
        return OperationConverterResult(layer, OnnxMapping(inputs=(names[0],), outputs=node.output_values))

    try:
        add_converter("Linear", 1, domain=LINEAR_DOMAIN)(linear)
    except ValueError:  # already registered
        pass
    _register_newer_versions()


# Operator versions after opset 17 that onnx2torch has no converter for, where the change is one
# its converter of the previous version already computes: new element types (Shape, Reshape,
# Cast, ...), Split-18's num_outputs (an equal split when no sizes are given, which the Split-13
# converter does), ScatterND-18's max/min reductions (the older converter refuses them itself). A graph the onnx version converter cannot lower (no adapter for Split-18 or
# ConstantOfShape-20) converts through these; the conversion check against ONNX Runtime at every
# batch size catches an alias that computes something else, and the stages that need PyTorch are
# then UNMEASURED with that reason.
NEWER_SAME_AS_OLDER = {
    "Shape": (19, 21, 23, 24, 25),
    "Reshape": (19, 21, 23, 24, 25),
    "Size": (19, 21, 23, 24, 25),
    "Identity": (19, 21, 23, 24, 25),
    "Cast": (19, 21, 23, 24, 25),
    "CastLike": (19, 21, 23, 24, 25),
    "Constant": (19, 21, 23, 24, 25),
    "ConstantOfShape": (20, 21, 23, 24, 25),
    "Squeeze": (21, 23, 24, 25),
    "Unsqueeze": (21, 23, 24, 25),
    "Flatten": (21, 23, 24, 25),
    "Transpose": (21, 23, 24, 25),
    "Split": (18,),
    "ScatterND": (18,),
    "Equal": (19,),
    "Pad": (19, 21, 23, 24, 25),
    "AveragePool": (19,),
}


def _register_newer_versions() -> None:
    """Aliases for :data:`NEWER_SAME_AS_OLDER`, ReduceMean-18 (axes as an input), and
    LayerNormalization sized from its scale."""
    import torch
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    for op, versions in NEWER_SAME_AS_OLDER.items():
        known = sorted(d.version for d in _CONVERTER_REGISTRY if d.domain == "" and d.operation_type == op)
        for v in versions:
            older = [k for k in known if k < v]
            if v in known or not older:
                continue
            add_converter(op, v)(
                _CONVERTER_REGISTRY[OperationDescription(domain="", operation_type=op, version=older[-1])]
            )
            known.append(v)

    class ReduceMean(torch.nn.Module):
        def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
            super().__init__()
            self.axes, self.keepdims = axes, keepdims

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dims = self.axes if self.axes is not None else tuple(range(x.ndim))
            return torch.mean(x, dim=dims, keepdim=self.keepdims)

    def reduce_mean_18(node: Any, graph: Any) -> Any:
        names = node.input_values
        axes = None
        if len(names) > 1 and names[1]:
            if names[1] not in graph.initializers:
                raise NotImplementedError("ReduceMean-18: axes must be a constant")
            axes = tuple(int(a) for a in graph.initializers[names[1]].to_numpy().reshape(-1).tolist())
        attrs = node.attributes
        if not axes and attrs.get("noop_with_empty_axes", 0):
            raise NotImplementedError("ReduceMean-18 with noop_with_empty_axes")
        module = ReduceMean(axes or None, bool(attrs.get("keepdims", 1)))
        return OperationConverterResult(module, OnnxMapping(inputs=(names[0],), outputs=node.output_values))

    if OperationDescription(domain="", operation_type="ReduceMean", version=18) not in _CONVERTER_REGISTRY:
        add_converter("ReduceMean", 18)(reduce_mean_18)

    # LayerNormalization-17 with constant scale/bias: onnx2torch sizes nn.LayerNorm from the input's
    # inferred shape, which is 0 wherever a dimension is dynamic (Swin's window reshapes); the scale
    # has the normalized shape itself. Anything else goes to onnx2torch's own converter.
    desc = OperationDescription(domain="", operation_type="LayerNormalization", version=17)
    original = _CONVERTER_REGISTRY.get(desc)
    if original is not None and not getattr(original, "edgebench", False):

        def layer_norm(node: Any, graph: Any) -> Any:
            names = node.input_values
            if not all(n in graph.initializers for n in names[1:] if n):
                return original(node, graph)
            scale = graph.initializers[names[1]].to_torch()
            bias = graph.initializers[names[2]].to_torch() if len(names) > 2 and names[2] else None
            axis = int(node.attributes.get("axis", -1))
            if axis >= 0 or -axis != scale.ndim:
                return original(node, graph)
            eps = float(node.attributes.get("epsilon", 1e-5))
            norm = torch.nn.LayerNorm(tuple(scale.shape), eps=eps, elementwise_affine=True, bias=bias is not None)
            with torch.no_grad():
                norm.weight.copy_(scale)
                if bias is not None:
                    norm.bias.copy_(bias)
            return OperationConverterResult(norm, OnnxMapping(inputs=(names[0],), outputs=node.output_values))

        layer_norm.edgebench = True  # type: ignore[attr-defined]
        _CONVERTER_REGISTRY[desc] = layer_norm


def onnx_to_torch(model: onnx.ModelProto, what: str) -> Converted:
    """*model* as a PyTorch module (eval mode); one-line :class:`EdgebenchError` naming *what*
    and the converter's reason when it cannot be converted."""
    import tempfile

    import onnx2torch

    from edgebench.export.graph import for_conversion
    from edgebench.util import onnx_file

    prepared = for_conversion(model)
    register_converters()
    edits, log_softmax = list(prepared.edits), prepared.log_softmax
    with tempfile.TemporaryDirectory(prefix="edgebench-convert-") as tmp:
        graph: onnx.ModelProto | Path = prepared.model
        if not onnx_file.fits_one_file(prepared.model):
            # past protobuf's 2 GB onnx2torch's shape inference fails on the message and works
            # from a file; the prepared graph is not held while onnx2torch loads its own copy
            graph = onnx_file.save(prepared.model, Path(tmp) / "model.onnx")
        del prepared
        try:
            module = onnx2torch.convert(graph).eval()
        except Exception as exc:  # noqa: BLE001 - onnx2torch raises NotImplementedError, KeyError, ...
            raise EdgebenchError(
                f"{what}: onnx2torch cannot convert it: {type(exc).__name__}: {first_line(exc, 160)}"
            ) from None
        del graph
    n = constants_as_parameters(module)
    if n:
        edits.append(
            f"{n} constant tensor(s) the graph multiplies or adds -> parameters Torch-Pruning cuts with their channels"
        )
    return Converted(module, edits, log_softmax)


# Where onnx2torch keeps a graph's initializers that are not a layer's weights (ConvNeXt's layer
# scale, ViT's position embedding and class token, attention biases): buffers of this submodule.
CONSTANTS = "initializers"


def constants_as_parameters(module: torch.nn.Module) -> int:
    """Make the converted module's float constants with more than one element parameters, so
    Torch-Pruning sees them (its "unwrapped parameters") and cuts them with the channels they
    scale; as buffers they keep the old width and the pruned model no longer runs (ConvNeXt from
    ONNX: 0 % pruned). Fine-tuning leaves them as they are (:func:`is_graph_constant`)."""
    import torch

    holder = getattr(module, CONSTANTS, None)
    if holder is None:
        return 0
    widths = layer_widths(module)
    n = 0
    for name, buf in list(holder.named_buffers(recurse=False)):
        # only a constant with a dimension as wide as some layer's output can follow a cut (an
        # adaptive pool's 7x7 divisor cannot, and Torch-Pruning would search it for minutes)
        if buf.is_floating_point() and buf.numel() > 1 and widths.intersection(buf.shape):
            delattr(holder, name)
            holder.register_parameter(name, torch.nn.Parameter(buf.detach().clone()))
            n += 1
    return n


def layer_widths(module: torch.nn.Module) -> set[int]:
    """The output widths pruning can change: every convolution's channels and linear layer's features."""
    import torch

    widths: set[int] = set()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            widths.add(int(m.out_channels))
        elif isinstance(m, torch.nn.Linear):
            widths.add(int(m.out_features))
    return widths


def is_graph_constant(name: str) -> bool:
    """A parameter made by :func:`constants_as_parameters`: not trained (the user's graph may hold
    masks and tables there, not only learned weights)."""
    return name.startswith(CONSTANTS + ".")


def logit_diff(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Max |got - ref| and the tolerance it is held to: RTOL relative to the reference's largest
    logit (at least 1), the one rule for the conversion check and the exported-base check."""
    return float(np.max(np.abs(got - ref))), RTOL * max(1.0, float(np.max(np.abs(ref))))


def check_conversion(
    module: torch.nn.Module,
    reference: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    batches: Sequence[int],
    what: str,
    log_softmax: bool = False,
) -> dict:
    """The converted *module* against *reference* (ONNX Runtime on the user's graph) on real images
    *x*, at every batch size in *batches* (capped at ``len(x)``): a graph whose shapes bake in one
    batch size fails here, not later. With *log_softmax*, the reference's probabilities are
    compared as log-probabilities. Returns the check's record."""
    ref = reference(x)
    if log_softmax:
        ref = as_log_probabilities(ref)
    worst, tol = 0.0, 0.0
    checked = []
    for b in sorted({max(1, min(int(b), len(x))) for b in batches}):
        n = len(x) if b > 1 else min(len(x), 8)
        try:
            got = torch_logits(module, x[:n], b)
        except Exception as exc:  # noqa: BLE001 - the converted module rejecting a batch size
            raise EdgebenchError(
                f"{what}: the converted module fails at batch {b}: {type(exc).__name__}: {first_line(exc, 160)}"
            ) from None
        expect(
            got.shape == ref[:n].shape,
            f"{what}: the converted module returns {got.shape} at batch {b}, ONNX Runtime {ref[:n].shape}",
        )
        finite = np.isfinite(ref[:n])  # log(0) of a saturated probability: compare where finite
        diff, t = logit_diff(np.where(finite, got, 0), np.where(finite, ref[:n], 0))
        expect(
            diff <= t,
            f"{what}: the converted module differs from ONNX Runtime at batch {b} on {n} images: "
            f"max |diff| {diff:.3g}, expected <= {t:.3g}",
        )
        worst, tol = max(worst, diff), max(tol, t)
        checked.append(b)
    return {
        "converter": "onnx2torch",
        "images": int(len(x)),
        "batches": checked,
        "max_abs_diff": worst,
        "tolerance": tol,
    }


def is_probabilities(out: np.ndarray) -> bool:
    """Rows that are non-negative and sum to 1: the model returns probabilities, not logits."""
    out = np.asarray(out, dtype=np.float64)
    return bool(
        out.ndim == 2
        and out.shape[1] > 1
        and (out >= -PROB_ATOL).all()
        and np.allclose(out.sum(1), 1.0, atol=PROB_ATOL)
    )


def as_log_probabilities(p: np.ndarray) -> np.ndarray:
    """Probabilities as log-probabilities (a probability of exactly 0 as log 1e-30): how a
    probability model's outputs are compared with, and attacked through, its converted module."""
    return np.log(np.clip(p, 1e-30, None))


def log_probabilities(module: torch.nn.Module) -> torch.nn.Module:
    """*module* (which returns probabilities) returning their logarithm: what attacks, Taylor and
    GAP gradients and fine-tuning treat as logits (cross-entropy of log-probabilities is the
    model's own negative log-likelihood)."""
    import torch
    from torch import nn

    class LogProbabilities(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(self.model(x).clamp_min(1e-30))

    return LogProbabilities().eval()


__all__ = [
    "RTOL",
    "Converted",
    "as_log_probabilities",
    "check_conversion",
    "is_probabilities",
    "log_probabilities",
    "logit_diff",
    "onnx_to_torch",
    "register_converters",
]
