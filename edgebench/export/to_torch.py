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
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, expect, first_line

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


def onnx_to_torch(model: onnx.ModelProto, what: str) -> Converted:
    """*model* as a PyTorch module (eval mode); one-line :class:`EdgebenchError` naming *what*
    and the converter's reason when it cannot be converted."""
    import onnx2torch

    from edgebench.export.graph import for_conversion

    prepared = for_conversion(model)
    register_converters()
    try:
        module = onnx2torch.convert(prepared.model).eval()
    except Exception as exc:  # noqa: BLE001 - onnx2torch raises NotImplementedError, KeyError, ...
        raise EdgebenchError(
            f"{what}: onnx2torch cannot convert it: {type(exc).__name__}: {first_line(exc, 160)}"
        ) from None
    return Converted(module, prepared.edits, prepared.log_softmax)


def logit_diff(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Max |got - ref| and the tolerance it is held to: RTOL relative to the reference's largest
    logit (at least 1), the one rule for the conversion check and the exported-base check."""
    return float(np.max(np.abs(got - ref))), RTOL * max(1.0, float(np.max(np.abs(ref))))


def torch_outputs(module: torch.nn.Module, x: np.ndarray, batch: int) -> np.ndarray:
    """The module's outputs on *x* in batches of *batch*."""
    import torch

    with torch.inference_mode():
        return np.concatenate(
            [
                module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))).float().numpy()
                for i in range(0, len(x), batch)
            ]
        )


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
        ref = np.log(np.clip(ref, 1e-30, None))
    worst, tol = 0.0, 0.0
    checked = []
    for b in sorted({max(1, min(int(b), len(x))) for b in batches}):
        n = len(x) if b > 1 else min(len(x), 8)
        try:
            got = torch_outputs(module, x[:n], b)
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
    "check_conversion",
    "is_probabilities",
    "log_probabilities",
    "logit_diff",
    "onnx_to_torch",
    "register_converters",
    "torch_outputs",
]
