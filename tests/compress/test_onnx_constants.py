"""A user's ONNX graph whose channels are scaled by constant tensors (ConvNeXt's layer scale):
the converted module is pruned through them, and fine-tuning leaves them as the graph has them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subject"))
from foreign_graphs import legacy_export  # noqa: E402

from edgebench.compress.finetune import finetune  # noqa: E402
from edgebench.compress.prune import FinetuneSpec, PruneSpec, prune_with_report  # noqa: E402
from edgebench.export.onnx import export_onnx  # noqa: E402
from edgebench.export.to_torch import onnx_to_torch  # noqa: E402


class _LayerScaled(nn.Module):
    """A ConvNeXt block in miniature: the residual stream's 16 channels are scaled by ``gamma``,
    which the ONNX exporter writes as a constant ``Mul`` operand, not a layer's weight."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pw1 = nn.Conv2d(16, 32, 1)
        self.pw2 = nn.Conv2d(32, 16, 1)
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, 16).reshape(16, 1, 1))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.gamma * self.pw2(torch.relu(self.pw1(self.dw(x))))
        return self.head(x.mean((2, 3)))


def _converted(tmp_path: Path) -> nn.Module:
    torch.manual_seed(0)
    src = legacy_export(_LayerScaled(), tmp_path / "layer-scaled.onnx", (1, 3, 16, 16))
    converted = onnx_to_torch(onnx.load(str(src)), "layer-scaled.onnx")
    assert any("constant tensor(s)" in e for e in converted.edits), converted.edits
    return converted.module


def test_the_residual_stream_a_constant_scales_is_pruned_and_still_exports(tmp_path: Path) -> None:
    module = _converted(tmp_path)
    spec = PruneSpec(ratio=0.5, finetune=FinetuneSpec(epochs=0))
    outcome = prune_with_report(module, spec, torch.rand(1, 3, 16, 16))
    pruned = outcome.module
    convs = {n: m for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    widths = sorted(m.out_channels for m in convs.values())
    # the stem, depthwise and second pointwise layers carry the scaled stream: cut to 8, as pw1 to 16
    assert widths == [8, 8, 8, 16], widths
    scale = [p for n, p in pruned.named_parameters() if n.startswith("initializers.") and p.numel() > 1]
    assert [tuple(p.shape) for p in scale] == [(8, 1, 1)]
    x = np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)
    again = export_onnx(pruned, tmp_path / "pruned.onnx", (1, 3, 16, 16))
    got = ort.InferenceSession(str(again)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, pruned(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_fine_tuning_trains_the_layers_and_leaves_the_graph_constants(tmp_path: Path) -> None:
    module = _converted(tmp_path)
    constants = {n: p.detach().clone() for n, p in module.named_parameters() if n.startswith("initializers.")}
    weights = {n: p.detach().clone() for n, p in module.named_parameters() if not n.startswith("initializers.")}
    assert constants and weights
    rng = np.random.default_rng(0)
    train = (rng.random((64, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, 64).astype(np.int64))
    finetune(module, train, FinetuneSpec(epochs=1, batch_size=16, lr=0.01))
    after = dict(module.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in constants.items())
    assert any(not torch.equal(after[n], v) for n, v in weights.items())


class _OddPool(nn.Module):
    """VGG's head on a small input: adaptive pooling to a size that does not divide the feature
    map, which torch's dynamo exporter writes as gathers and a division by a constant 3x3 count."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((3, 3))
        self.fc = nn.Linear(32 * 9, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def test_a_constant_no_layer_is_as_wide_as_stays_a_buffer_and_pruning_goes_through(tmp_path: Path) -> None:
    """Only a constant with a dimension as wide as some layer's output can be cut with channels;
    the 3x3 divisor stays a buffer (as a parameter Torch-Pruning searched VGG-11's for minutes)."""
    torch.manual_seed(0)
    src = export_onnx(_OddPool().eval(), tmp_path / "odd-pool.onnx", (1, 3, 8, 8))  # refused by TorchScript: dynamo
    module = onnx_to_torch(onnx.load(str(src)), "odd-pool.onnx").module
    constants = module.get_submodule("initializers")
    float_buffers = [tuple(b.shape) for b in constants.buffers(recurse=False) if b.is_floating_point()]
    assert (3, 3) in float_buffers
    assert not [p for p in constants.parameters(recurse=False) if 16 not in p.shape and 32 not in p.shape]
    x = torch.rand(1, 3, 8, 8)
    outcome = prune_with_report(module, PruneSpec(ratio=0.3, finetune=FinetuneSpec(epochs=0)), x)
    assert outcome.unpruned_reason is None and outcome.to_dict()["param_ratio"] > 0.1
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    assert sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0].shape == outcome.module(x).shape


def _convnext_head() -> nn.Module:
    """ConvNeXt in miniature, from torchvision's own parts: a stem, one block (its residual sum
    has channels-last strides), average pool to 1x1, LayerNorm2d, flatten, linear. torch's dynamo
    exporter writes the pooled tensor's restriding as an ``as_strided``: a Gather at indices that
    bake the channel count in."""
    from torchvision.models.convnext import CNBlock, LayerNorm2d

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1),
        CNBlock(24, layer_scale=0.5, stochastic_depth_prob=0.0),
        nn.AdaptiveAvgPool2d(1),
        LayerNorm2d(24),
        nn.Flatten(1),
        nn.Linear(24, 10),
    ).eval()


def test_a_no_op_as_strided_from_the_dynamo_exporter_no_longer_blocks_pruning(tmp_path: Path) -> None:
    from foreign_graphs import dynamo_export

    from edgebench.export.graph import identity_gathers

    src = dynamo_export(_convnext_head(), tmp_path / "head.onnx", (1, 3, 8, 8))
    model = onnx.load(str(src))
    assert "Gather" in [n.op_type for n in model.graph.node]  # the exporter's as_strided
    rewritten, n = identity_gathers(model)
    assert n == 1 and "Gather" not in [n.op_type for n in rewritten.graph.node]
    x = torch.rand(3, 3, 8, 8)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(after.run(None, {"input": x.numpy()})[0], before.run(None, {"input": x.numpy()})[0])
    converted = onnx_to_torch(model, "head.onnx")
    assert any("as_strided" in e for e in converted.edits), converted.edits
    outcome = prune_with_report(converted.module, PruneSpec(ratio=0.3, finetune=FinetuneSpec(epochs=0)), x[:1])
    assert outcome.unpruned_reason is None and outcome.to_dict()["param_ratio"] > 0.2  # 0 before: every layer whole
    pruned = export_onnx(outcome.module, tmp_path / "pruned.onnx", (1, 3, 8, 8))
    sess = ort.InferenceSession(str(pruned), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0], outcome.module(x).numpy(), atol=1e-5)
