"""Parameters, MACs and bytes counted from ONNX graphs, checked against hand counts and torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebench.errors import EdgebenchError
from edgebench.measure.onnx_stats import onnx_stats


def _init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).random(shape, dtype=np.float32), name)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))
    return path


def _conv_gemm_matmul(path: Path, dims: list) -> Path:
    """x(N,3,H,W) -Conv 8x3x3x3 pad1 stride2-> (N,8,H/2,W/2) -GAP-> Flatten -Gemm 8->5-> MatMul 5->4."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y1"], transB=1),
        helper.make_node("MatMul", ["y1", "w3"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [_init("w1", (8, 3, 3, 3)), _init("b1", (8,)), _init("w2", (5, 8)), _init("b2", (5,)), _init("w3", (5, 4))],
    )
    return _save(graph, path)


# MACs at 3x32x32: Conv 8*16*16 outputs x 3*3*3 = 55296; Gemm 5 x 8 = 40; MatMul 4 x 5 = 20
EXPECTED_MACS_32 = 8 * 16 * 16 * 27 + 40 + 20
EXPECTED_PARAMS = 8 * 27 + 8 + 40 + 5 + 20


def test_counts_by_hand(tmp_path: Path) -> None:
    st = onnx_stats(_conv_gemm_matmul(tmp_path / "m.onnx", ["N", 3, 32, 32]))
    assert st.params == EXPECTED_PARAMS
    assert st.weight_bytes == EXPECTED_PARAMS * 4
    assert st.macs == EXPECTED_MACS_32
    assert st.input_name == "x" and st.input_shape == ("N", 3, 32, 32)
    assert st.op_types == ("Conv", "Flatten", "Gemm", "GlobalAveragePool", "MatMul", "Relu")
    # activations at batch 1: c1 and r1 (8x16x16 each), g (8), f (8), y1 (5), y (4), float32
    assert st.activation_bytes == 4 * (2 * 8 * 16 * 16 + 8 + 8 + 5 + 4)
    assert st.size_bytes == (tmp_path / "m.onnx").stat().st_size


def test_symbolic_spatial_dims_need_a_shape(tmp_path: Path) -> None:
    path = _conv_gemm_matmul(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    assert onnx_stats(path).macs is None  # unknown H, W: unmeasured, never 0
    assert onnx_stats(path, (3, 32, 32)).macs == EXPECTED_MACS_32
    assert onnx_stats(path, (3, 64, 64)).macs == 8 * 32 * 32 * 27 + 60


def test_matches_torch_flop_counter(tmp_path: Path) -> None:
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, groups=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(net, tmp_path / "t.onnx", (1, 3, 20, 20))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, 20, 20))
    st = onnx_stats(path)
    assert st.macs == counter.get_total_flops() // 2  # grouped conv counted per group
    assert st.params == sum(p.numel() for p in net.parameters())


def test_corrupt_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(EdgebenchError, match="bad.onnx"):
        onnx_stats(bad)
    with pytest.raises(EdgebenchError, match="not found"):
        onnx_stats(tmp_path / "missing.onnx")


def _conv_bn_classifier(path: Path, weights_as: str) -> Path:
    """Another framework's export: x(N,3,H,W) -Conv 8x3x3x3 pad1-> BatchNormalization -> Relu ->
    GlobalAveragePool -> Reshape (int64 shape [0, -1]) -> Gemm 8->10 -> Softmax, opset 11, every
    stored tensor either a ``Constant`` node (*weights_as* "constants") or an initializer."""
    rng = np.random.default_rng(0)
    tensors = {
        "conv.w": rng.random((8, 3, 3, 3), dtype=np.float32) - 0.5,
        "conv.b": rng.random(8, dtype=np.float32),
        "bn.scale": rng.random(8, dtype=np.float32) + 0.5,
        "bn.bias": rng.random(8, dtype=np.float32),
        "bn.mean": rng.random(8, dtype=np.float32),
        "bn.var": rng.random(8, dtype=np.float32) + 0.5,
        "fc.w": rng.random((10, 8), dtype=np.float32) - 0.5,
        "fc.b": rng.random(10, dtype=np.float32),
        "flat.shape": np.array([0, -1], dtype=np.int64),  # a shape, not a weight
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Reshape", ["g", "flat.shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    inits = []
    if weights_as == "constants":
        consts = [
            helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k)) for k, v in tensors.items()
        ]
        nodes = consts + nodes
    else:
        inits = [numpy_helper.from_array(v, k) for k, v in tensors.items()]
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# Conv 8*27 + 8, BatchNormalization 4 x 8, Gemm 10*8 + 10; the int64 shape [0, -1] is not a parameter
FOREIGN_PARAMS = 8 * 27 + 8 + 4 * 8 + 10 * 8 + 10
# at 3x32x32: Conv 8*32*32 outputs x 3*3*3, Gemm 10 x 8
FOREIGN_MACS_32 = 8 * 32 * 32 * 27 + 10 * 8


def test_weights_in_constant_nodes_are_parameters(tmp_path: Path) -> None:
    const = onnx_stats(_conv_bn_classifier(tmp_path / "const.onnx", "constants"), (3, 32, 32))
    assert const.params == FOREIGN_PARAMS
    assert const.weight_bytes == FOREIGN_PARAMS * 4
    assert const.macs == FOREIGN_MACS_32  # the Conv weight's shape read from its Constant
    assert onnx_stats(tmp_path / "const.onnx", (3, 64, 64)).macs == 8 * 64 * 64 * 27 + 80
    assert onnx_stats(tmp_path / "const.onnx").macs is None  # H, W unknown: unmeasured, never 0
    init = onnx_stats(_conv_bn_classifier(tmp_path / "init.onnx", "initializers"), (3, 32, 32))
    assert (init.params, init.weight_bytes, init.macs) == (const.params, const.weight_bytes, const.macs)
    # the Constants' outputs are weights, not activations: both forms write the same bytes per item
    assert init.activation_bytes == const.activation_bytes
    assert const.input_shape == ("N", 3, "H", "W")


def test_constant_scalars_and_lists(tmp_path: Path) -> None:
    """value_float(s) are parameters like a float tensor; value_int(s) are int64: shapes, not weights."""
    nodes = [
        helper.make_node("Constant", [], ["gain"], value_floats=[0.5, 1.0, 2.0]),
        helper.make_node("Constant", [], ["offset"], value_float=0.25),
        helper.make_node("Constant", [], ["shape"], value_ints=[1, 3]),
        helper.make_node("Mul", ["x", "gain"], ["m"]),
        helper.make_node("Add", ["m", "offset"], ["a"]),
        helper.make_node("Reshape", ["a", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "scalars",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    st = onnx_stats(_save(graph, tmp_path / "s.onnx"))
    assert (st.params, st.weight_bytes) == (3 + 1, 4 * 4)
