"""ONNX graphs written the way other tools write them, built here (no downloads).

:func:`foreign_graph` writes what tf2onnx, Paddle2ONNX or a vendor exporter typically give: weights
in ``Constant`` nodes instead of initializers, unfused ``BatchNormalization``, opset 11, a dynamic
batch, height and width, a flatten computed from ``Shape`` at run time, ``MatMul`` + ``Add``
instead of ``Gemm``, a final ``Softmax``; optionally NHWC input (a leading ``Transpose``) and an op
onnx2torch has no converter for (``ThresholdedRelu``, which ONNX Runtime runs).

:class:`TinyNet` is the same network in PyTorch, so a test can train it (on scikit-learn digits)
and write its weights into the graph: the graph then has a real accuracy to keep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn


class TinyNet(nn.Module):
    """conv-bn-relu x2, global average pool, linear: the PyTorch twin of :func:`foreign_graph`."""

    def __init__(self, channels: int = 1, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def train_tiny(x: np.ndarray, y: np.ndarray, epochs: int = 80, seed: int = 0) -> TinyNet:
    """A TinyNet trained on (x, y) in a few seconds (full-batch Adam)."""
    torch.manual_seed(seed)
    net = TinyNet(channels=x.shape[1], classes=int(y.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    net.train()
    for _ in range(epochs):
        for i in range(0, len(xt), 256):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[i : i + 256]), yt[i : i + 256]).backward()
            opt.step()
    return net.eval()


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name + "_value"))


def foreign_graph(
    path: str | Path,
    net: TinyNet,
    *,
    layout: str = "nchw",
    softmax: bool = True,
    unconvertible: bool = False,
    opset: int = 11,
) -> Path:
    """Write *net* as a foreign-style ONNX graph (see the module doc) and return its path."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    c = net.conv1.in_channels
    nodes: list[onnx.NodeProto] = []
    if layout == "nhwc":
        x_in = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", "H", "W", c])
        nodes.append(helper.make_node("Transpose", ["image"], ["x_nchw"], perm=[0, 3, 1, 2]))
        cur = "x_nchw"
    else:
        x_in = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", c, "H", "W"])
        cur = "image"
    for i in (1, 2):
        nodes += [
            _const(f"conv{i}_weights", sd[f"conv{i}.weight"]),
            _const(f"conv{i}_bias", sd[f"conv{i}.bias"]),
            helper.make_node(
                "Conv", [cur, f"conv{i}_weights", f"conv{i}_bias"], [f"c{i}"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]
            ),
        ]
        for p in ("weight", "bias", "running_mean", "running_var"):
            nodes.append(_const(f"bn{i}_{p}", sd[f"bn{i}.{p}"]))
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [f"c{i}", f"bn{i}_weight", f"bn{i}_bias", f"bn{i}_running_mean", f"bn{i}_running_var"],
                [f"b{i}"],
                epsilon=1e-5,
            )
        )
        act = "ThresholdedRelu" if unconvertible and i == 2 else "Relu"
        kw = {"alpha": 0.0} if act == "ThresholdedRelu" else {}
        nodes.append(helper.make_node(act, [f"b{i}"], [f"r{i}"], **kw))
        cur = f"r{i}"
    nodes += [
        helper.make_node("GlobalAveragePool", [cur], ["gap"]),
        helper.make_node("Shape", ["gap"], ["gap_shape"]),
        _const("zero", np.array(0, np.int64)),
        helper.make_node("Gather", ["gap_shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),
        _const("minus_one", np.array([-1], np.int64)),
        helper.make_node("Concat", ["batch1", "minus_one"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["gap", "flat_shape"], ["flat"]),
        _const("fc_weights", sd["fc.weight"].T.copy()),
        _const("fc_bias", sd["fc.bias"]),
        helper.make_node("MatMul", ["flat", "fc_weights"], ["mm"]),
        helper.make_node("Add", ["mm", "fc_bias"], ["scores" if not softmax else "logits"]),
    ]
    k = net.fc.out_features
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k])
    graph = helper.make_graph(nodes, "foreign", [x_in], [out])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tf2onnx-style", ir_version=7
    )
    onnx.checker.check_model(model)
    p = Path(path)
    onnx.save(model, str(p))
    return p


def dynamo_export(module: nn.Module, path: str | Path, shape: tuple[int, ...]) -> Path:
    """*module* exported by torch's default (dynamo) exporter, dynamic batch: opset 18+."""
    import warnings

    p = Path(path)
    x = torch.rand(2, *shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (x,),
            str(p),
            dynamo=True,
            input_names=["input"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
            verbose=False,
        )
    return p


def legacy_export(module: nn.Module, path: str | Path, shape: tuple[int, ...]) -> Path:
    """*module* exported by torch's legacy (TorchScript) exporter at opset 17, dynamic batch:
    the graphs most deployed ONNX files still are."""
    import warnings

    p = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.rand(2, *shape[1:]),),
            str(p),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    return p
