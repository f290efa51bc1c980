"""A differentiable PyTorch model of a deployed ONNX artifact (the white-box attacker's model).

* fp32 artifacts: the ONNX graph converted to PyTorch with onnx2torch: the same function as
  the candidate's own (pruned) module, with every export-time change baked in.
* INT8 QDQ artifacts (ONNX Runtime static quantization): a *fake-quant* model that reproduces
  the artifact with its exact parameters. Every ``DequantizeLinear`` of a constant (weights,
  per-channel or per-tensor, and int32 biases) is folded into the float value the engine
  computes with; every activation ``QuantizeLinear -> DequantizeLinear`` pair becomes
  ``(clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale`` with the
  artifact's scale, zero point and integer range. ``round`` uses a straight-through estimator
  (BPDA, Athalye et al. 2018): exact rounding forward, identity backward, so gradient attacks
  see through the steps that would otherwise give a zero gradient (Bernhard et al. 2019).
  ``ste=False`` keeps the plain gradient of rounding (zero almost everywhere): the "naive"
  attacker, used to show the masking.

The surrogate's top-1 agreement with ONNX Runtime running the artifact is measured by
:func:`agreement` and reported: the engine fuses QDQ into integer kernels whose requantization
rounds slightly differently, so agreement is high but not always 100 %.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, first_line
from edgebench.util.torch_device import module_device

if TYPE_CHECKING:
    import onnx
    import torch

log = logging.getLogger(__name__)

# onnx TensorProto data types: 2 = UINT8, 3 = INT8, 4 = UINT16, 5 = INT16, 6 = INT32
_QRANGE = {2: (0, 255), 3: (-128, 127), 4: (0, 65535), 5: (-32768, 32767)}

_STE = {"enabled": True}  # set per conversion (the converters are global in onnx2torch)


@dataclass(frozen=True)
class Surrogate:
    """The attacker's model of an artifact: a module plus what it is."""

    module: Any  # torch.nn.Module
    kind: str  # "fp32-graph" | "fake-quant-ste" | "fake-quant-plain"
    qdq_points: int  # activation quantize points reproduced (0 for fp32)
    log_outputs: bool = False  # the artifact returns probabilities; the module their logarithm


def _init_array(init: onnx.TensorProto) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(init)


def is_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def fold_constant_dequantize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Copy of *model* where every ``DequantizeLinear`` whose input is an initializer (weights,
    biases) is replaced by the float initializer it computes; returns (model, folded count)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name: i for i in m.graph.initializer}
    keep, folded = [], 0
    new_inits: list[onnx.TensorProto] = []
    for node in m.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = _init_array(inits[node.input[0]]).astype(np.float64)
            scale = _init_array(inits[node.input[1]]).astype(np.float64)
            zp = _init_array(inits[node.input[2]]).astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis if axis >= 0 else q.ndim + axis] = -1
                scale = np.reshape(scale, shape)
                zp = np.reshape(zp, shape) if np.ndim(zp) == 1 else zp
            value = ((q - zp) * scale).astype(np.float32)
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new_inits)
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    kept_inits = [i for i in m.graph.initializer if i.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept_inits)
    return m, folded


def _register_converters() -> None:
    """onnx2torch converters for activation QuantizeLinear / DequantizeLinear (once)."""
    import torch
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    if OperationDescription("", "QuantizeLinear", 13) in _CONVERTER_REGISTRY:
        return

    class _RoundSTE(torch.autograd.Function):
        """Passes its input forward and no gradient back: ``STE(q - v) + v`` is ``q`` forward
        and has the gradient of ``v`` backward."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN401
            return x.detach().clone()

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN401
            return torch.zeros_like(grad)

    class QuantizeLinear(torch.nn.Module):
        """x -> clamp(round(x / scale) + zp, qmin, qmax), kept as float (the integer grid)."""

        scale: torch.Tensor
        zero_point: torch.Tensor

        def __init__(self, scale: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int, ste: bool) -> None:
            super().__init__()
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))
            self.register_buffer("zero_point", torch.as_tensor(np.asarray(zero_point, dtype=np.float32)))
            self.qmin, self.qmax, self.ste = qmin, qmax, ste

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = x / self.scale
            if not self.ste:
                return torch.clamp(torch.round(v) + self.zero_point, self.qmin, self.qmax)
            # BPDA: the exact quantized value forward, the identity (x / scale + zp) backward --
            # through the rounding *and* the saturation: a clamped logit or activation would
            # otherwise hide the gradient exactly where the model is most confident
            return _RoundSTE.apply(torch.clamp(torch.round(v) + self.zero_point, self.qmin, self.qmax) - v) + v

    class DequantizeLinear(torch.nn.Module):
        scale: torch.Tensor
        zero_point: torch.Tensor

        def __init__(self, scale: np.ndarray, zero_point: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))
            self.register_buffer("zero_point", torch.as_tensor(np.asarray(zero_point, dtype=np.float32)))

        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return (q - self.zero_point) * self.scale

    def _params(node: Any, graph: Any) -> tuple[np.ndarray, np.ndarray, int]:
        names = node.input_values
        if names[1] not in graph.initializers:
            raise NotImplementedError(f"{node.operation_type}: scale {names[1]!r} is not a constant")
        scale = graph.initializers[names[1]].to_numpy()
        if len(names) > 2 and names[2]:
            zp_t = graph.initializers[names[2]]
            zp = zp_t.to_numpy()
            dtype = zp_t.proto.data_type
        else:
            zp, dtype = np.zeros_like(scale), 2  # uint8 by default (ONNX spec)
        if np.ndim(scale) != 0:
            raise NotImplementedError(f"{node.operation_type}: per-axis activation quantization is not supported")
        return scale, zp, dtype

    def quantize(node: Any, graph: Any) -> Any:
        scale, zp, dtype = _params(node, graph)
        if dtype not in _QRANGE:
            raise NotImplementedError(f"QuantizeLinear to ONNX dtype {dtype} is not supported")
        qmin, qmax = _QRANGE[dtype]
        module = QuantizeLinear(scale, zp.astype(np.float32), qmin, qmax, _STE["enabled"])
        return OperationConverterResult(module, OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values))

    def dequantize(node: Any, graph: Any) -> Any:
        scale, zp, _ = _params(node, graph)
        module = DequantizeLinear(scale, zp.astype(np.float32))
        return OperationConverterResult(module, OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values))

    for version in (10, 13, 19, 21, 23):
        try:
            add_converter("QuantizeLinear", version)(quantize)
            add_converter("DequantizeLinear", version)(dequantize)
        except ValueError:  # already registered
            pass


def surrogate_from_onnx(path: str | Path, *, ste: bool = True, device: Any = None) -> Surrogate:
    """The white-box model of the artifact at *path* (see module doc), in eval mode, on *device*
    (a ``torch.device``; default the CPU): the study's ``host.device``, where it is attacked."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for unreadable files
        raise EdgebenchError(f"white-box surrogate: cannot read the ONNX artifact {path}: {exc}") from None
    from edgebench.export.graph import for_conversion
    from edgebench.export.to_torch import register_converters

    register_converters()
    prepared = for_conversion(model)  # constants, opset, a final Softmax as LogSoftmax
    model = prepared.model
    qdq = is_qdq(model)
    points = 0
    if qdq:
        model, _ = fold_constant_dequantize(model)
        points = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
        _register_converters()
    from onnx2torch import convert

    _STE["enabled"] = ste
    try:
        module = convert(model)
    except Exception as exc:  # noqa: BLE001 - onnx2torch raises NotImplementedError, KeyError, ...
        raise EdgebenchError(
            f"white-box surrogate: cannot rebuild {Path(path).name} in PyTorch (onnx2torch: "
            f"{type(exc).__name__}: {first_line(exc, 160)})"
        ) from None
    finally:
        _STE["enabled"] = True
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if device is not None:
        module.to(device)
    kind = "fp32-graph" if not qdq else ("fake-quant-ste" if ste else "fake-quant-plain")
    return Surrogate(module=module, kind=kind, qdq_points=points, log_outputs=prepared.log_softmax)


def ort_logits(path: str | Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits of ONNX Runtime (CPU) running the artifact at *path* on *x*."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def torch_logits(module: torch.nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """*module*'s outputs on *x*, computed on the module's device, as numpy on the CPU."""
    import torch

    dev = module_device(module)
    with torch.no_grad():
        return np.concatenate(
            [
                module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(dev)).cpu().numpy()
                for i in range(0, len(x), batch)
            ]
        )


def agreement(
    surrogate: Surrogate, path: str | Path, x: np.ndarray, logits: np.ndarray | None = None
) -> dict[str, Any]:
    """Top-1 agreement and logit difference between the surrogate and ONNX Runtime on *x*
    (*logits*: the surrogate's on *x*, when the caller has them, so it is not run twice)."""
    a = (torch_logits(surrogate.module, x) if logits is None else logits).astype(np.float64)
    b = ort_logits(path, x).astype(np.float64)
    if surrogate.log_outputs:  # probabilities from the engine, log-probabilities from the surrogate
        from edgebench.export.to_torch import as_log_probabilities

        b = as_log_probabilities(b)
    return {
        "kind": surrogate.kind,
        "qdq_points": surrogate.qdq_points,
        "count": int(len(x)),
        "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
        "max_abs_logit_diff": float(np.abs(a - b).max()),
        "mean_abs_logit_diff": float(np.abs(a - b).mean()),
    }


__all__ = ["Surrogate", "agreement", "fold_constant_dequantize", "is_qdq", "ort_logits", "surrogate_from_onnx"]
