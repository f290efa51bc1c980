"""What studies/merkle.yaml and gap.yaml rest on: Merkle et al.'s LeNet-like built-in, iterative
global unstructured magnitude pruning to each of their sparsities (and the zeros it leaves in
the deployed ONNX file), conv-only structured pruning, and GAP's scores in train mode."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from edgebench.compress.finetune import FinetuneSpec
from edgebench.compress.importance import accumulate_gradients
from edgebench.compress.prune import PruneSpec, prune, prune_with_report
from edgebench.compress.stats import layer_widths
from edgebench.export.onnx import export_onnx
from edgebench.subject.models import build

NO_FT = FinetuneSpec(epochs=0)
EXAMPLE = torch.rand(2, 1, 28, 28)


def test_merkle_lenet_is_the_papers_network() -> None:
    torch.manual_seed(0)
    m = build("lenet-merkle", 1, 10, 28)
    assert m(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert [c.out_channels for c in convs] == [6, 16] and [c.kernel_size for c in convs] == [(5, 5), (5, 5)]
    assert [(x.in_features, x.out_features) for x in linears] == [(400, 120), (120, 84), (84, 10)]
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
    assert sum(isinstance(x, nn.Tanh) for x in m.modules()) == 2  # their "relu" dense layers compute tanh
    # 156 + 2416 + 48120 + 10164 + 850, as their cnn_shapes give
    assert sum(p.numel() for p in m.parameters()) == 61_706
    # no normalization inside: a constant image gives the same logits as a bare forward of the layers
    x = torch.full((1, 1, 28, 28), 0.5)
    assert torch.equal(m(x), m.classifier(m.features(x)))


def _weights(module: nn.Module) -> list[torch.Tensor]:
    """The prunable weights: every Conv/Linear but the classifier (the last Linear)."""
    layers = [x for x in module.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    return [x.weight.detach() for x in layers[:-1]]


def test_iterative_unstructured_reaches_each_sparsity_and_the_onnx_keeps_the_zeros(tmp_path) -> None:
    torch.manual_seed(0)
    model = build("lenet-merkle", 1, 10, 28).eval()
    spec = PruneSpec(ratio=0.5, criterion="l1", structured=False, global_pruning=True, finetune=NO_FT)
    total = sum(w.numel() for w in _weights(model))
    current = model
    for k, target in enumerate((0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375), start=1):
        current = prune(current, spec, EXAMPLE)
        zeros = sum(int((w == 0).sum()) for w in _weights(current))
        assert abs(zeros - round(target * total)) <= k, (target, zeros / total)
    # the deployed artifact: dense tensors holding the zeros (its share of zero weights is the sparsity)
    path = export_onnx(current, tmp_path / "sparse.onnx", (1, 1, 28, 28))
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    dense = [a for a in inits.values() if a.ndim >= 2]  # conv and linear weights (biases are 1-D)
    assert sorted(a.size for a in dense) == sorted([150, 2400, 48000, 10080, 840])  # nothing removed
    classifier = next(a for a in dense if a.size == 840)
    onnx_zeros = sum(int((a == 0).sum()) for a in dense if a is not classifier)
    assert abs(onnx_zeros / total - 0.984375) <= 6 / total
    assert int((classifier == 0).sum()) == 0
    # and the ONNX file computes what the pruned module computes
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
    with torch.no_grad():
        np.testing.assert_allclose(out, current(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_conv_only_structured_pruning_leaves_the_dense_layers_whole() -> None:
    torch.manual_seed(0)
    model = build("lenet-merkle", 1, 10, 28).eval()
    spec = PruneSpec(ratio=0.5, criterion="l1", structured=True, layers="conv", finetune=NO_FT)
    said: list[str] = []
    outcome = prune_with_report(model, spec, EXAMPLE, on_progress=said.append)
    before, after = layer_widths(model), layer_widths(outcome.module)
    # the progress line counts the layers the recipe may cut (6 + 16 conv channels), not the dense ones
    assert any("11/22 output channels kept (50.0% removed)" in line for line in said), said
    convs = [n for n, x in model.named_modules() if isinstance(x, nn.Conv2d)]
    linears = [n for n, x in model.named_modules() if isinstance(x, nn.Linear)]
    assert all(after[n] == before[n] // 2 for n in convs), (before, after)
    assert all(after[n] == before[n] for n in linears), (before, after)
    reasons = dict(outcome.layers_left)
    assert all("conv" in reasons[n] for n in linears[:-1]) and set(reasons) == set(linears)
    # without it, the same recipe cuts the dense layers too
    everything = prune(model, PruneSpec(ratio=0.5, criterion="l1", structured=True, finetune=NO_FT), EXAMPLE)
    assert layer_widths(everything)[linears[0]] < before[linears[0]]


def test_conv_only_unstructured_zeroes_conv_weights_only() -> None:
    torch.manual_seed(0)
    model = build("lenet-merkle", 1, 10, 28).eval()
    spec = PruneSpec(ratio=0.5, structured=False, global_pruning=True, layers="conv", finetune=NO_FT)
    pruned = prune(model, spec, EXAMPLE)
    ws = _weights(pruned)
    conv_total = ws[0].numel() + ws[1].numel()
    assert abs(sum(int((w == 0).sum()) for w in ws[:2]) - conv_total // 2) <= 1
    assert all(int((w == 0).sum()) == 0 for w in ws[2:])


def _bn_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    ).eval()


@pytest.fixture(scope="module")
def digits_train() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None, :, :][:256], d.target.astype(np.int64)[:256]


def test_gap_train_mode_scores_on_batch_statistics_and_keeps_the_running_ones(digits_train) -> None:
    model = _bn_cnn()
    bn = model[1]
    with torch.no_grad():  # running statistics far from the batch's, so the two modes differ
        bn.running_mean.fill_(0.5)
        bn.running_var.fill_(4.0)
    state = copy.deepcopy(model.state_dict())
    grads = {}
    for mode in (False, True):
        m = copy.deepcopy(model)
        spec = PruneSpec(criterion="gap", gap_samples=128, gap_steps=2, gap_train_mode=mode)
        accumulate_gradients(m, digits_train, spec)
        grads[mode] = m[0].weight.grad.clone()
        assert not m.training  # handed back in eval mode
        for k, v in m.state_dict().items():  # running statistics as they were
            assert torch.equal(v, state[k]), k
    assert not torch.allclose(grads[False], grads[True], atol=1e-6)
