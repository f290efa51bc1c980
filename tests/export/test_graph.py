"""Graph edits on ONNX files written as other tools write them: each computes what the user's
graph computes, checked with ONNX Runtime on real digits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subject"))
from foreign_graphs import TinyNet, foreign_graph, legacy_export  # noqa: E402

from edgebench.errors import EdgebenchError  # noqa: E402
from edgebench.export import graph as g  # noqa: E402


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def net() -> TinyNet:
    import torch

    torch.manual_seed(0)
    return TinyNet(channels=3, classes=5).eval()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).random((6, 3, 12, 10), dtype=np.float32)


def test_constants_become_initializers_and_compute_the_same(net: TinyNet, x: np.ndarray, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_graph(tmp_path / "f.onnx", net)))
    assert sum(n.op_type == "Constant" for n in model.graph.node) == 16
    folded, n = g.constants_to_initializers(model)
    assert n == 16 and not any(node.op_type == "Constant" for node in folded.graph.node)
    np.testing.assert_array_equal(run(folded, x), run(model, x))


def test_deployable_prepends_normalization_and_the_nhwc_transpose(net: TinyNet, x: np.ndarray, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_graph(tmp_path / "nhwc.onnx", net, layout="nhwc")))
    assert g.detect_layout(model) == "nhwc"
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    dep, edits = g.deployable(model, mean=mean, std=std, layout="nhwc")
    assert len(edits) == 2 and g.dims(g.real_inputs(dep)[0]) == ["N", 3, "H", "W"]
    # by hand: normalize, then channels last, through the user's own graph
    m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    want = run(model, np.ascontiguousarray(((x - m) / s).transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(run(dep, x), want, rtol=1e-5, atol=1e-6)
    # nothing asked for: the user's graph untouched
    same, none = g.deployable(onnx.load(str(foreign_graph(tmp_path / "f.onnx", net))))
    assert none == [] and g.detect_layout(same) == "nchw"


def test_deployable_narrows_outputs_to_the_named_logits(net: TinyNet, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_graph(tmp_path / "f.onnx", net)))
    model.graph.output.append(onnx.helper.make_tensor_value_info("gap", onnx.TensorProto.FLOAT, None))
    with pytest.raises(EdgebenchError, match=r"2 outputs \['scores', 'gap'\]; expected model.output"):
        g.deployable(model)
    dep, edits = g.deployable(model, output="scores")
    assert [o.name for o in dep.graph.output] == ["scores"] and "narrowed" in edits[0]
    with pytest.raises(EdgebenchError, match="expected one of the graph's outputs"):
        g.deployable(model, output="nope")


def test_for_conversion_gives_a_module_onnx2torch_builds_with_log_probabilities(
    net: TinyNet, x: np.ndarray, tmp_path: Path
) -> None:
    import torch

    from edgebench.export.to_torch import onnx_to_torch

    model = onnx.load(str(foreign_graph(tmp_path / "f.onnx", net)))
    conv = onnx_to_torch(model, "f.onnx")
    assert conv.log_softmax
    assert any("Gemm" in e for e in conv.edits)  # MatMul + Add -> a Linear the pruner can name
    assert any(isinstance(m, torch.nn.Linear) for m in conv.module.modules())
    with torch.no_grad():
        got = conv.module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.log(run(model, x)), atol=1e-4)


def test_free_batch_of_a_graph_declared_at_batch_one(net: TinyNet, x: np.ndarray, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_graph(tmp_path / "f.onnx", net)))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime refuses batch 6 on a batch-1 graph
        run(model, x)
    freed = g.free_batch(model)
    np.testing.assert_allclose(
        run(freed, x), np.concatenate([run(model, x[i : i + 1]) for i in range(len(x))]), rtol=1e-5
    )


def test_opset_18_lowered_for_onnx2torch_and_raised_to_13_for_quantization(net: TinyNet, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_graph(tmp_path / "f.onnx", net, opset=11)))
    q, edits = g.for_quantization(model)
    assert g.opset_of(q) == 13 and any("opset 11 -> 13" in e for e in edits)
    up = onnx.version_converter.convert_version(model, 18)
    assert g.opset_of(g.for_conversion(up).model) == g.CONVERT_OPSET


def test_probability_rows_are_detected() -> None:
    from edgebench.export.to_torch import is_probabilities

    logits = np.random.default_rng(0).normal(size=(8, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert is_probabilities(probs) and not is_probabilities(logits) and not is_probabilities(np.abs(logits))


def test_a_constant_flatten_width_becomes_flatten(x: np.ndarray) -> None:
    """torch's dynamo exporter writes ``Reshape(gap, [-1, 32])``: a pruned model has fewer channels,
    so the graph edit makes it a ``Flatten`` that computes the same and follows the width."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(32, 3, 3, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 32], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["c"], ["gap"]),
            helper.make_node("Reshape", ["gap", "shape"], ["flat"]),
        ],
        "dynamo-style",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 12, 10])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["batch", 32])],
        [w, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    flat, n = g.reshape_to_flatten(model)
    assert n == 1 and [node.op_type for node in flat.graph.node] == ["Conv", "GlobalAveragePool", "Flatten"]
    np.testing.assert_array_equal(run(flat, x), run(model, x))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array([-1, 16], np.int64), "shape"))
    assert g.reshape_to_flatten(model)[1] == 0  # another width: not a flatten, left alone


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_decomposed_so_an_opset_20_graph_lowers(approximate: str, x: np.ndarray) -> None:
    """torch's dynamo exporter writes Gelu-20, which has no earlier version: the version converter
    refuses the graph until Gelu is the arithmetic that defines it (same outputs)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Gelu", ["input"], ["y"], approximate=approximate)],
        "gelu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 12, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 12, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    with pytest.raises(Exception, match="No Previous Version of Gelu"):  # noqa: B017
        onnx.version_converter.convert_version(model, 17)
    prepared = g.for_conversion(model)
    assert g.opset_of(prepared.model) == g.CONVERT_OPSET and "Gelu" in prepared.edits[0]
    lowered, _ = g.decompose_gelu(model)
    np.testing.assert_allclose(run(lowered, x * 6 - 3), run(model, x * 6 - 3), atol=1e-6)


def test_matmul_with_constant_weights_becomes_a_linear_layer(x: np.ndarray) -> None:
    """A channels-last MLP (MatMul on a 4-D tensor, then Add): one nn.Linear in PyTorch, exact."""
    import torch
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 7)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(7,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["input"], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("MatMul", ["nhwc", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 12, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 12, 10, 7])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from edgebench.export.to_torch import onnx_to_torch

    conv = onnx_to_torch(model, "mlp")
    linears = [m for m in conv.module.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and tuple(linears[0].weight.shape) == (7, 3)
    with torch.no_grad():
        np.testing.assert_allclose(conv.module(torch.from_numpy(x)).numpy(), run(model, x), atol=1e-5)


def test_opset_18_ops_the_version_converter_cannot_lower_still_convert(x: np.ndarray) -> None:
    """torch's dynamo exporter writes Split-18 (num_outputs) and ReduceMean-18 (axes as an input);
    onnx's version converter has no adapter down from Split-18, so the graph stays at opset 18 and
    onnx2torch converts it through edgebench's converters for those versions (same outputs)."""
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from edgebench.export.to_torch import onnx_to_torch

    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Split", ["input"], ["a", "b", "c"], axis=1, num_outputs=3),
            helper.make_node("Add", ["a", "c"], ["ac"]),
            helper.make_node("Mul", ["ac", "b"], ["abc"]),
            helper.make_node("ReduceMean", ["abc", "axes"], ["mean"], keepdims=0),
        ],
        "split18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 12, 10])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", 1])],
        [axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(Exception, match="No Adapter From Version \\$18 for Split"):  # noqa: B017
        onnx.version_converter.convert_version(model, 17)
    conv = onnx_to_torch(model, "split18")
    assert any("opset 18 kept" in e for e in conv.edits)
    with torch.no_grad():
        np.testing.assert_allclose(conv.module(torch.from_numpy(x)).numpy(), run(model, x), rtol=1e-5, atol=1e-6)


def test_layer_norm_after_a_dynamic_reshape_converts() -> None:
    """Swin's LayerNorms follow window reshapes whose shapes are computed at run time: the layer is
    sized from its scale, not from an inferred input shape that is unknown there."""
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from edgebench.export.to_torch import onnx_to_torch

    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["input"], ["shape"]),
            helper.make_node("Reshape", ["input", "shape"], ["same"]),
            helper.make_node("LayerNormalization", ["same", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5),
        ],
        "ln",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "tokens", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 8])],
        [scale, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    xs = rng.normal(size=(3, 5, 8)).astype(np.float32)
    conv = onnx_to_torch(model, "ln")
    assert any(isinstance(m, torch.nn.LayerNorm) and m.normalized_shape == (8,) for m in conv.module.modules())
    with torch.no_grad():
        np.testing.assert_allclose(conv.module(torch.from_numpy(xs)).numpy(), run(model, xs), rtol=1e-4, atol=1e-5)


def test_a_converted_graph_with_shape_ops_exports_again(net: TinyNet, tmp_path: Path) -> None:
    """A pruned candidate of an ONNX source is the converted module exported again; onnx2torch's
    Shape module asks torch for an exporter attribute torch no longer has. Run in a fresh process
    (no exporter state left by another test) and without ``symbolic_helper.GLOBALS``, as some torch
    builds have it: the export works and computes what the graph does."""
    import subprocess

    path = foreign_graph(tmp_path / "f.onnx", net)
    out = tmp_path / "again.onnx"
    code = (
        "import onnx, numpy as np, onnxruntime as ort, torch\n"
        "from edgebench.export.to_torch import onnx_to_torch\n"
        "from edgebench.export.onnx import export_onnx\n"
        "import torch.onnx.symbolic_helper as sh\n"
        "sh.__dict__.pop('GLOBALS', None)\n"
        f"m = onnx_to_torch(onnx.load({str(path)!r}), 'f').module\n"
        f"export_onnx(m, {str(out)!r}, (1, 3, 12, 10))\n"
        "x = np.random.default_rng(0).random((2, 3, 12, 10), dtype=np.float32)\n"
        f"a = ort.InferenceSession({str(out)!r}).run(None, {{'input': x}})[0]\n"
        "print(float(np.abs(a - m(torch.from_numpy(x)).detach().numpy()).max()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-4


def test_a_module_the_torchscript_exporter_refuses_is_exported_by_dynamo(tmp_path: Path) -> None:
    """Adaptive pooling to a size that does not divide the input (AlexNet at 64x64): the
    TorchScript exporter refuses it, torch's dynamo exporter writes it (opset 18+, same outputs)."""
    import torch

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d((3, 3)),
        torch.nn.Flatten(),
        torch.nn.Linear(36, 10),
    ).eval()
    with pytest.raises(Exception, match="not factor of input size"):  # noqa: B017
        torch.onnx.export(module, (torch.rand(1, 1, 8, 8),), str(tmp_path / "legacy.onnx"), dynamo=False)
    out = export_onnx(module, tmp_path / "m.onnx", (1, 1, 8, 8))
    model = onnx.load(str(out))
    assert g.opset_of(model) >= 18
    xs = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)  # a batch other than the example's
    with torch.no_grad():
        np.testing.assert_allclose(run(model, xs), module(torch.from_numpy(xs)).numpy(), atol=1e-5)


class _LeViTLike(nn.Module):
    """LeViT's pattern, as torch's legacy exporter writes it with a dynamic batch: the stem's
    ``flatten(2)`` as ``Reshape(x, Concat(Slice(Shape(x), 0, 2), [-1]))``, then attention whose
    ``view(B, N, heads, -1)`` reads the batch from shapes downstream."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.qkv = nn.Linear(16, 24, bias=False)
        self.bn = nn.BatchNorm1d(24)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        b, n, _ = x.shape
        y = self.qkv(x)
        y = self.bn(y.flatten(0, 1)).reshape_as(y)
        q, k, v = y.view(b, n, 2, -1).permute(0, 2, 1, 3).split([4, 4, 4], dim=3)
        a = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.head(a.transpose(1, 2).reshape(b, n, -1).mean(1))


def test_a_shape_read_from_the_input_stays_free_when_the_module_is_exported_again(tmp_path: Path) -> None:
    """Without the rewrite to ``Reshape(x, [0, 0, -1])``, the converted module exported again at
    batch 1 has the batch baked into a downstream Reshape (ONNX Runtime refuses batch 3: LeViT's
    pruned candidates from a legacy export, in the coverage benchmark)."""
    torch.manual_seed(0)
    model = _LeViTLike().eval()
    src = legacy_export(model, tmp_path / "levit-like.onnx", (1, 3, 16, 16))
    rewritten, n = g.shape_copies_to_zeros(onnx.load(str(src)))
    assert n == 1
    shapes = [i for i in rewritten.graph.initializer if i.name.endswith("_edgebench_shape")]
    assert [onnx.numpy_helper.to_array(s).tolist() for s in shapes] == [[0, 0, -1]]
    assert not any(node.op_type == "Slice" for node in rewritten.graph.node)  # the shape arithmetic is gone
    x = np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)
    ref = ort.InferenceSession(str(src)).run(None, {"input": x})[0]
    got = ort.InferenceSession(rewritten.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)

    from edgebench.export.onnx import export_onnx
    from edgebench.export.to_torch import onnx_to_torch

    again = export_onnx(
        onnx_to_torch(onnx.load(str(src)), "levit-like").module, tmp_path / "again.onnx", (1, 3, 16, 16)
    )
    out = ort.InferenceSession(str(again)).run(None, {"input": x})[0]
    np.testing.assert_allclose(out, ref, atol=1e-4)


@pytest.mark.parametrize(("offsets", "rewritten"), [([0, 1, 2, 3], 1), ([3, 2, 1, 0], 0)])
def test_a_gather_at_a_tensors_own_positions_is_the_tensor(offsets: list[int], rewritten: int) -> None:
    """``Gather(Reshape(x, [-1]), b * 4 + offsets)`` over x of shape (B, 4, 1, 1), indices computed
    from the batch size as torch's dynamo exporter writes ``as_strided``: the tensor itself when
    the offsets are its own positions; any other order is left as it is."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: list | int) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, dtype=np.int64), name)

    nodes = [
        helper.make_node("Shape", ["input"], ["shape"], start=0, end=1),
        helper.make_node("Squeeze", ["shape"], ["batch"]),
        helper.make_node("Range", ["zero", "batch", "one"], ["rows"]),
        helper.make_node("Mul", ["rows", "four"], ["starts"]),
        helper.make_node("Unsqueeze", ["starts", "axes"], ["starts4"]),
        helper.make_node("Add", ["starts4", "offsets"], ["indices"]),
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("Gather", ["flat", "indices"], ["strided"], axis=0),
        helper.make_node("Relu", ["strided"], ["out"]),
    ]
    inits = [
        const("zero", 0),
        const("one", 1),
        const("four", 4),
        const("axes", [1, 2, 3]),
        const("flat_shape", [-1]),
        const("offsets", np.asarray(offsets).reshape(1, 4, 1, 1).tolist()),
    ]
    graph = helper.make_graph(
        nodes,
        "strided",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, 1, 1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out, n = g.identity_gathers(model)
    assert n == rewritten and ("Gather" in [node.op_type for node in out.graph.node]) == (not rewritten)
    x = np.random.default_rng(0).random((3, 4, 1, 1), dtype=np.float32) - 0.5
    np.testing.assert_array_equal(run(out, x), run(model, x))
