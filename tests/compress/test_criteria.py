"""Each pruning criterion picks the channels (or weights) its definition says, on a model small
enough to work the answer out by hand, and different ones from L1 magnitude.

The model: ``Conv2d(1, 4, 2, bias=False) -> ReLU -> Flatten -> Linear(4, 2)`` on 1x2x2 inputs
in [0.2, 0.8], every label 0. Conv filters (the channels the pruner ranks):

    ch0  [-1, -1, -1, -1]          L1 4     sum of squares 4       dead (ReLU of a negative)
    ch1  [-3, -.01, -.01, -.01]    L1 3.03  sum of squares 9.0003  dead
    ch2  [.5, .5, .5, .5]          L1 2     sum of squares 1       alive
    ch3  [2.5, .01, .01, .01]      L1 2.53  sum of squares 6.2503  alive

The classifier's input columns are all ``(0.1, -0.1)``: the same magnitude for every channel, so
they shift every channel's group score equally and leave the rankings above alone. Halving the
channels (ratio 0.5) therefore keeps:

- l1: the two largest L1 norms: {0, 1};
- l2: the two largest L2 norms: {1, 3};
- taylor (|w * dL/dw| over the group): a dead channel passes no gradient to its filter or to its
  classifier column, so its score is 0 and it goes first: {2, 3};
- gap (minus the signed adversarial gradient): for an alive channel c,
  dL/dw_c = sum over samples of 0.1 * (p0 - 1 - p1) * x < 0 (label 0, x > 0), and its classifier
  column's gradient sums to (p0 - 1 + p1) * a_c = 0; so alive channels score > 0, dead ones 0,
  and the largest signed gradient (the dead channels' 0) goes first: {2, 3};
- random: depends on the seed, not on the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compress.finetune import FinetuneSpec
from edgebench.compress.prune import PruneSpec, prune

NO_FT = FinetuneSpec(epochs=0)
FILTERS = [
    [-1.0, -1.0, -1.0, -1.0],
    [-3.0, -0.01, -0.01, -0.01],
    [0.5, 0.5, 0.5, 0.5],
    [2.5, 0.01, 0.01, 0.01],
]
KEPT = {"l1": {0, 1}, "l2": {1, 3}, "taylor": {2, 3}, "gap": {2, 3}}


def _model() -> nn.Module:
    m = nn.Sequential(nn.Conv2d(1, 4, 2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor(FILTERS).reshape(4, 1, 2, 2))
        m[3].weight.copy_(torch.tensor([[0.1] * 4, [-0.1] * 4]))
        m[3].bias.zero_()
    return m.eval()


def _train() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).uniform(0.2, 0.8, (64, 1, 2, 2)).astype(np.float32)
    return x, np.zeros(64, dtype=np.int64)


def _example() -> torch.Tensor:
    return torch.full((1, 1, 2, 2), 0.5)


def _spec(criterion: str, **kw: object) -> PruneSpec:
    return PruneSpec(ratio=0.5, criterion=criterion, finetune=NO_FT, taylor_samples=64, gap_samples=64, **kw)


def _kept(pruned: nn.Module) -> set[int]:
    """Which original filters survive (pruning without fine-tuning copies them unchanged)."""
    orig = torch.tensor(FILTERS)
    rows = pruned[0].weight.detach().reshape(-1, 4)
    return {int(torch.nonzero(torch.all(orig == r, dim=1)).flatten()[0]) for r in rows}


def _zeroed(pruned: nn.Module) -> set[tuple[int, int]]:
    w = pruned[0].weight.detach().reshape(4, 4)
    return {(int(i), int(j)) for i, j in torch.nonzero(w == 0)}


def test_the_hand_model_is_what_the_docstring_says() -> None:
    """Guard the premises: ch0/ch1 are dead on the training inputs, ch2/ch3 alive."""
    x, _ = _train()
    with torch.no_grad():
        act = _model()[1](_model()[0](torch.from_numpy(x))).flatten(1)
    assert torch.all(act[:, :2] == 0) and torch.all(act[:, 2:] > 0)


@pytest.mark.parametrize("criterion", ["l1", "l2", "taylor", "gap"])
def test_structured_criterion_keeps_the_hand_computed_channels(criterion: str) -> None:
    pruned = prune(_model(), _spec(criterion), _example(), _train())
    assert pruned[0].out_channels == 2
    assert _kept(pruned) == KEPT[criterion]
    if criterion != "l1":
        assert KEPT[criterion] != KEPT["l1"]


def test_structured_random_follows_the_seed_not_the_weights() -> None:
    kept = {seed: _kept(prune(_model(), _spec("random", seed=seed), _example())) for seed in range(8)}
    assert all(len(k) == 2 for k in kept.values())
    assert len({frozenset(k) for k in kept.values()}) > 1, kept  # the seed changes the choice
    assert any(k != KEPT["l1"] for k in kept.values()), kept
    assert _kept(prune(_model(), _spec("random", seed=3), _example())) == kept[3]  # reproducible


def test_unstructured_l1_zeroes_the_smallest_magnitudes() -> None:
    # 16 weights, 8 zeroed: the six 0.01s, then two of ch2's 0.5s (a tie: the first two, stable sort)
    pruned = prune(_model(), _spec("l1", structured=False), _example(), _train())
    assert _zeroed(pruned) == {(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3), (2, 0), (2, 1)}


@pytest.mark.parametrize("criterion", ["taylor", "gap"])
def test_unstructured_gradient_criteria_zero_the_dead_channels(criterion: str) -> None:
    """taylor: |w * dL/dw| is 0 on the dead filters; gap: -dL/dw is 0 there and > 0 on the alive
    ones (their gradient is negative everywhere). Either way the 8 dead weights go, not the
    smallest ones."""
    pruned = prune(_model(), _spec(criterion, structured=False), _example(), _train())
    assert _zeroed(pruned) == {(c, j) for c in (0, 1) for j in range(4)}


def test_unstructured_random_follows_the_seed() -> None:
    zeroed = [_zeroed(prune(_model(), _spec("random", structured=False, seed=s), _example())) for s in range(4)]
    l1 = _zeroed(prune(_model(), _spec("l1", structured=False), _example()))
    assert all(len(z) == 8 for z in zeroed)
    assert len({frozenset(z) for z in zeroed}) > 1 and all(z != l1 for z in zeroed)
