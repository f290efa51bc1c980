"""Parameter, non-zero and MAC counts against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgebench.compress.stats import count_macs, count_nonzero_params, count_params, layer_widths
from edgebench.errors import EdgebenchError


def test_macs_plain_grouped_depthwise_linear():
    m = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # 16*8*8 outputs * 3*9   = 27648
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, groups=4),  # 32*8*8 * (16/4)*9     = 73728
        nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32),  # 32*4*4 * 1*9 = 4608
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),  # 10 * 512              = 5120
    )
    assert count_macs(m, (1, 3, 8, 8)) == 27648 + 73728 + 4608 + 5120
    assert count_macs(m, (2, 3, 8, 8)) == 2 * (27648 + 73728 + 4608 + 5120)
    assert m.training  # training flag restored


def _grouped_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # 27648 (see above)
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, groups=4),  # 73728
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),  # 20480
    )


def test_macs_of_a_scripted_model_are_counted_not_zero():
    """Hooks never fire inside TorchScript; its MACs come from the aten ops it dispatches."""
    scripted = torch.jit.script(_grouped_net())
    assert count_macs(scripted, (1, 3, 8, 8)) == 27648 + 73728 + 20480


def test_macs_of_functional_layers_and_none_when_nothing_counts():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(8, 3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, self.w, padding=1)  # 8*6*6 outputs * 3*9 = 7776

    assert count_macs(Functional(), (1, 3, 6, 6)) == 7776
    assert count_macs(nn.ReLU(), (1, 3, 6, 6)) is None  # unmeasured, never 0


def test_macs_transposed_conv():
    m = nn.ConvTranspose2d(4, 8, 2, stride=2)  # each of 4*5*5 inputs scatters into 8*2*2 outputs
    assert count_macs(m, (1, 4, 5, 5)) == 4 * 5 * 5 * 8 * 4


def test_macs_shrink_after_pruning(trained_cnn, example):
    from edgebench.compress.finetune import FinetuneSpec
    from edgebench.compress.prune import PruneSpec, prune

    p = prune(trained_cnn, PruneSpec(ratio=0.5, finetune=FinetuneSpec(epochs=0)), example)
    full, half = count_macs(trained_cnn, (1, 1, 8, 8)), count_macs(p, (1, 1, 8, 8))
    # conv1 1->16 at 8x8, conv2 16->32 at 8x8, conv3 32->32 at 4x4, fc 32->10
    assert full == 16 * 64 * 9 + 32 * 64 * 16 * 9 + 32 * 16 * 32 * 9 + 320
    assert half == 8 * 64 * 9 + 16 * 64 * 8 * 9 + 16 * 16 * 16 * 9 + 160


def test_params_and_nonzero():
    m = nn.Linear(4, 3)
    assert count_params(m) == 15
    with torch.no_grad():
        m.weight[0] = 0
        m.bias.zero_()
    assert count_nonzero_params(m) == 8
    assert layer_widths(nn.Sequential(nn.Conv2d(1, 5, 1), nn.Linear(5, 2))) == {"0": 5, "1": 2}


def test_bad_input_shape():
    with pytest.raises(EdgebenchError, match="input shape"):
        count_macs(nn.Linear(2, 2), (0, 2))
