"""Static facts about an ONNX model: file size, parameters, MACs, bytes a roofline needs.

Parameters are the elements of the graph's stored tensors: its initializers and the tensors
of its ``Constant`` nodes (some exporters store every weight as one), alike. An INT8 QDQ model
counts its int8 weights once, plus its scales and zero points; int64, bool and string tensors
are never counted: ONNX keeps shapes, axes, pads and indices (Reshape, Slice, Pad, ...) in
int64, and no operator takes int64 weights. MACs are counted for Conv, ConvTranspose,
Gemm and MatMul (and their integer / QLinear forms) from shapes given by ONNX shape inference
on a copy of the graph whose inputs are fixed to the profiled per-item shape (batch 1):
the other operators are cheap next to these on vision models, and every tool that reports
MACs (thop, ptflops, fvcore) counts the same ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError
from edgebench.util import onnx_file

log = logging.getLogger(__name__)

_CONV = {"Conv", "ConvInteger", "QLinearConv"}
_MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul"}


@dataclass(frozen=True)
class OnnxStats:
    """What :func:`onnx_stats` found. ``macs`` is per item (batch 1); None when not inferable."""

    size_bytes: int
    params: int
    weight_bytes: int
    macs: int | None
    activation_bytes: int | None  # every intermediate tensor written once per item (an estimate)
    op_types: tuple[str, ...]
    input_name: str
    input_shape: tuple[Any, ...]  # as declared: ints, or strings for symbolic dimensions
    input_dtype: str

    def to_dict(self) -> dict:
        return {
            "size_bytes": self.size_bytes,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "op_types": list(self.op_types),
        }


def dims(value_info: Any) -> list[int | str]:
    """Declared dimensions: ints where fixed, the symbol (or '?') where dynamic."""
    out: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?"))
    return out


def real_inputs(model: Any) -> list[Any]:
    """The graph inputs that are not initializers (old opsets list weights as inputs too)."""
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def load_onnx(path: str | Path) -> Any:
    """``onnx.load`` with a one-line error naming the file when it is missing or corrupt (or its
    external data is): :func:`edgebench.util.onnx_file.load`."""
    return onnx_file.load(path)


def graph_inputs(model: Any) -> list[tuple[str, tuple[Any, ...], str]]:
    """The real inputs of a graph (initializers excluded): name, declared shape, numpy dtype."""
    from onnx import helper

    out = []
    for vi in real_inputs(model):
        elem = vi.type.tensor_type.elem_type
        dtype = str(helper.tensor_dtype_to_np_dtype(elem)) if elem else "float32"
        out.append((vi.name, tuple(dims(vi)), dtype))
    return out


def _stored_tensors(model: Any) -> list[tuple[str, tuple[int, ...], int]]:
    """Every tensor the graph stores: (name, shape, ONNX element type) of each initializer and of
    each ``Constant`` node's value (``value`` tensor, ``value_float(s)``, ``value_int(s)``)."""
    from onnx import TensorProto

    out = [(i.name, tuple(int(d) for d in i.dims), int(i.data_type)) for i in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type != "Constant" or not node.output:
            continue
        for attr in node.attribute:
            if attr.name == "value":
                out.append((node.output[0], tuple(int(d) for d in attr.t.dims), int(attr.t.data_type)))
            elif attr.name in ("value_float", "value_int"):
                elem = TensorProto.FLOAT if attr.name == "value_float" else TensorProto.INT64
                out.append((node.output[0], (), elem))
            elif attr.name in ("value_floats", "value_ints"):
                n = len(attr.floats) if attr.name == "value_floats" else len(attr.ints)
                elem = TensorProto.FLOAT if attr.name == "value_floats" else TensorProto.INT64
                out.append((node.output[0], (n,), elem))
    return out


def onnx_stats(path: str | Path, item_shape: Sequence[int] | None = None) -> OnnxStats:
    """Size, parameters, weight bytes, MACs per item and activation bytes of the model at *path*.

    *item_shape* is the input shape without the batch dimension; when omitted the declared
    shape is used, and MACs are None if it has symbolic dimensions besides the batch.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    p = Path(path)
    model = load_onnx(p)
    inputs = graph_inputs(model)
    if not inputs:
        raise EdgebenchError(f"{p}: expected a model with an input, found none")
    name, declared, dtype = inputs[0]

    params = 0
    weight_bytes = 0
    init_shapes: dict[str, tuple[int, ...]] = {}
    not_weights = {TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING}  # shapes, axes, indices, masks, text
    for tensor_name, shape, elem_type in _stored_tensors(model):
        init_shapes[tensor_name] = shape  # a Conv whose weight is a Constant reads its shape here
        if elem_type in not_weights:
            continue
        n = int(np.prod(shape)) if shape else 1
        params += n
        weight_bytes += n * np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    op_types = tuple(sorted({n.op_type for n in model.graph.node}))

    item = tuple(int(d) for d in item_shape) if item_shape is not None else tuple(declared[1:])
    macs: int | None = None
    activation_bytes: int | None = None
    if all(isinstance(d, int) for d in item) and len(item) == len(declared) - 1:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for vi in fixed.graph.input:
            if vi.name == name:
                declared_dims = vi.type.tensor_type.shape.dim
                for k, size in enumerate((1,) + item):
                    declared_dims[k].Clear()
                    declared_dims[k].dim_value = size
        del fixed.graph.value_info[:]
        try:
            inferred = onnx_file.infer_shapes(fixed, data_prop=True)
            shapes = {
                vi.name: tuple(dims(vi))
                for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
            }
            shapes.update(init_shapes)
            macs, activation_bytes = _count(inferred, shapes)
        except Exception as exc:  # noqa: BLE001 - custom ops etc.: MACs stay unknown
            log.info("shape inference failed on %s: %s", p, exc)
    return OnnxStats(
        size_bytes=p.stat().st_size,
        params=params,
        weight_bytes=weight_bytes,
        macs=macs,
        activation_bytes=activation_bytes,
        op_types=op_types,
        input_name=name,
        input_shape=declared,
        input_dtype=dtype,
    )


def _numel(shape: tuple[Any, ...] | None) -> int | None:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    n = 1
    for d in shape:
        n *= d
    return n


def _count(model: Any, shapes: dict[str, tuple[Any, ...]]) -> tuple[int | None, int | None]:
    """MACs of the heavy operators and bytes of every node output, at batch 1."""
    import numpy as np
    from onnx import helper

    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.output)}
    macs = 0
    unknown = False
    act = 0
    for node in model.graph.node:
        # a Constant's output is a stored tensor (weight bytes), not an activation
        for out in node.output if node.op_type != "Constant" else ():
            n = _numel(shapes.get(out))
            if n is not None and types.get(out):
                act += n * np.dtype(helper.tensor_dtype_to_np_dtype(types[out])).itemsize
        op = node.op_type
        if op in _CONV or op == "ConvTranspose":
            w_index = 3 if op == "QLinearConv" else 1
            out_n = _numel(shapes.get(node.output[0]))
            w = shapes.get(node.input[w_index])
            if out_n is None or w is None or _numel(w) is None:
                unknown = True
                continue
            if op == "ConvTranspose":
                # every input element meets Cout/group * kernel weights
                x_n = _numel(shapes.get(node.input[0]))
                if x_n is None:
                    unknown = True
                    continue
                macs += x_n * int(np.prod(w[1:]))
            else:
                # each output element: Cin/group * kH * kW multiply-accumulates
                macs += out_n * int(np.prod(w[1:]))
        elif op in _MATMUL or op == "Gemm":
            a_index = 0
            b_index = 3 if op == "QLinearMatMul" else 1
            out_n = _numel(shapes.get(node.output[0]))
            a = shapes.get(node.input[a_index])
            b = shapes.get(node.input[b_index])
            if out_n is None or a is None or b is None or not a or not all(isinstance(d, int) for d in a):
                unknown = True
                continue
            if op == "Gemm":
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                k = a[0] if trans_a else a[-1]
            else:
                k = a[-1]
            macs += out_n * int(k)
    return (None if unknown else macs), act
