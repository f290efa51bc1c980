"""Which channels (or weights) to cut: the pruning criteria.

Structured criteria are Torch-Pruning ``Importance`` objects (one score per channel of a
coupled group; the pruner removes the *lowest*). Unstructured criteria give one score per
weight (higher = keep). Gradient criteria (taylor, gap) read ``param.grad``, filled here by
:func:`accumulate_gradients` on the model being pruned.

GAP (Greedy Adversarial Pruning, O'Brien Weiss et al., AICAS 2022): accumulate the gradient of
the loss on PGD adversarial examples (crafted on the model being pruned) and remove the weights
with the *largest signed* gradient, the opposite of magnitude pruning. At channel granularity the
score of a channel is the signed gradient summed over every parameter of its coupled group
(conv filter, BN scale/shift, the next layer's input slice), normalized by the group's mean
absolute score so that global ranking compares layers fairly.

This module imports torch and torch_pruning; :mod:`edgebench.compress.prune` imports it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as tpf

from edgebench.util.torch_device import module_device

log = logging.getLogger(__name__)


class GradientRecipe(Protocol):
    """What the gradient criteria read from a prune recipe (``PruneSpec`` has it); a protocol, so
    this module needs nothing from :mod:`edgebench.compress.prune`."""

    @property
    def criterion(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def taylor_samples(self) -> int: ...
    @property
    def gap_samples(self) -> int: ...
    @property
    def gap_eps(self) -> float: ...
    @property
    def gap_steps(self) -> int: ...
    @property
    def gap_rel_stepsize(self) -> float: ...
    @property
    def gap_train_mode(self) -> bool: ...


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    rel_stepsize: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L-inf PGD with a random start (Madry et al.), inputs clipped to [0, 1].

    Step size is ``rel_stepsize * eps`` (Foolbox's convention). Only the input gets gradients:
    ``torch.autograd.grad`` leaves the parameters' ``.grad`` untouched.
    """
    model.eval()
    x = x.detach()
    # drawn on the CPU generator and moved: the same random start on every device
    noise = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1).to(x.device)
    x_adv = (x + eps * noise).clamp(0, 1)
    alpha = rel_stepsize * eps
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def _sample(train: tuple[np.ndarray, np.ndarray], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = train
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(x))[: min(n, len(x))])
    return torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(np.ascontiguousarray(y[idx]))


def accumulate_gradients(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    spec: GradientRecipe,
    batch: int = 64,
    device: torch.device | str | None = None,
) -> None:
    """Fill ``p.grad`` with the gradient of the mean cross-entropy over a sample of *train*.

    The passes (and GAP's PGD) run on *device* (default: where the model is): the model is moved
    there once and back afterwards, its ``.grad`` with it, so the criteria read them where the
    pruner works.

    taylor: clean samples (``spec.taylor_samples``); gap: PGD examples crafted on *model*
    (``spec.gap_samples``, ``gap_eps``, ``gap_steps``, ``gap_rel_stepsize``). Eval mode, so
    BatchNorm uses its running statistics, as at inference; with ``gap_train_mode`` (GAP's own
    recipe) the loss is taken in train mode, BatchNorm on batch statistics, and the running
    statistics that pass would move are put back afterwards (the examples are crafted in eval mode).
    """
    adversarial = CRITERIA[spec.criterion].gradients == "adversarial"
    train_mode = adversarial and bool(getattr(spec, "gap_train_mode", False))
    n = spec.gap_samples if adversarial else spec.taylor_samples
    x, y = _sample(train, n, spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    home = module_device(model)
    target = home if device is None else torch.device(device)
    model.to(target)
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()} if train_mode else {}
    model.eval()
    model.zero_grad(set_to_none=True)
    total = len(x)
    for i in range(0, total, batch):
        xb, yb = x[i : i + batch].to(target), y[i : i + batch].to(target)
        if adversarial:
            xb = pgd_linf(model, xb, yb, spec.gap_eps, spec.gap_steps, spec.gap_rel_stepsize, gen)
        model.train(train_mode)
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / total
        loss.backward()
        model.eval()
    if train_mode:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    model.to(home)  # the parameters' .grad move with them
    log.info("accumulated %s gradients over %d samples", "adversarial (PGD)" if adversarial else "clean", total)


class GapImportance(tp.importance.GroupMagnitudeImportance):
    """Channel importance = minus the GAP score (signed gradient summed over the coupled group).

    Torch-Pruning removes the lowest importance, so negating the score removes the channels with
    the largest signed gradient of the adversarial loss. Needs ``.grad`` filled by
    :func:`accumulate_gradients` with ``criterion='gap'``.
    """

    def __init__(self) -> None:
        super().__init__(p=1, group_reduction="mean", normalizer=None)

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        scores: list[torch.Tensor] = []
        root: list[list[int]] = []
        for i, (dep, idxs) in enumerate(group):
            layer: Any = dep.layer
            fn = dep.pruning_fn
            root_idxs = group[i].root_idxs
            if not any(isinstance(layer, t) for t in self.target_types):
                continue
            if fn in (
                tpf.prune_conv_out_channels,
                tpf.prune_depthwise_conv_out_channels,
                tpf.prune_linear_out_channels,
            ):
                g = _grad(layer.weight)
                g = g.transpose(0, 1) if getattr(layer, "transposed", False) else g
                s = g[idxs].flatten(1).sum(1)
                if layer.bias is not None:
                    s = s + _grad(layer.bias)[idxs]
            elif fn in (tpf.prune_conv_in_channels, tpf.prune_linear_in_channels):
                g = _grad(layer.weight)
                g = g.flatten(1) if getattr(layer, "transposed", False) else g.transpose(0, 1).flatten(1)
                s = g.sum(1)
                if fn == tpf.prune_conv_in_channels and layer.groups != layer.in_channels and layer.groups != 1:
                    s = s.repeat(layer.groups)
                s = s[idxs]
            elif fn in (
                tpf.prune_batchnorm_out_channels,
                tpf.prune_layernorm_out_channels,
                tpf.prune_groupnorm_out_channels,
            ):
                if getattr(layer, "weight", None) is None:
                    continue
                s = _grad(layer.weight)[idxs]
                if getattr(layer, "bias", None) is not None:
                    s = s + _grad(layer.bias)[idxs]
            else:
                continue
            scores.append(s)
            root.append(root_idxs)
        if not scores:
            return None
        score = self._reduce(scores, root)
        score = score / (score.abs().mean() + 1e-12)
        return -score


def _grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad is None:
        return torch.zeros_like(p)
    return p.grad


@dataclass(frozen=True)
class Criterion:
    """One pruning criterion: its Torch-Pruning importance for structured pruning, its per-weight
    keep-score for unstructured pruning (higher = keep), and which gradients it reads
    (``None``, ``"clean"`` or ``"adversarial"``: filled by :func:`accumulate_gradients`)."""

    structured: Callable[[], tp.importance.Importance]
    weight_score: Callable[[Any, torch.Generator], torch.Tensor]
    gradients: str | None = None


# The registry: adding a criterion is adding one entry (its name also goes in prune.CRITERIA,
# which validates recipes without importing torch; a test keeps the two equal).
CRITERIA: dict[str, Criterion] = {
    "l1": Criterion(lambda: tp.importance.MagnitudeImportance(p=1), lambda layer, _g: layer.weight.detach().abs()),
    # a single weight ranks the same by |w| and w^2
    "l2": Criterion(lambda: tp.importance.MagnitudeImportance(p=2), lambda layer, _g: layer.weight.detach().abs()),
    "random": Criterion(tp.importance.RandomImportance, lambda layer, g: torch.rand(layer.weight.shape, generator=g)),
    "taylor": Criterion(
        tp.importance.TaylorImportance,
        lambda layer, _g: (layer.weight.detach() * _grad(layer.weight)).abs(),
        gradients="clean",
    ),
    "gap": Criterion(GapImportance, lambda layer, _g: -_grad(layer.weight).detach().clone(), gradients="adversarial"),
}


def structured_importance(spec: GradientRecipe) -> tp.importance.Importance:
    """The Torch-Pruning importance for ``spec.criterion``."""
    return CRITERIA[spec.criterion].structured()


def weight_scores(layer: Any, criterion: str, generator: torch.Generator) -> torch.Tensor:
    """Per-weight keep-score of ``layer.weight`` for unstructured pruning (higher = keep).

    l1/l2: |w| (same ranking for a single weight); random: uniform; taylor: |w * dL/dw|;
    gap: minus the signed adversarial gradient (largest gradient removed first).
    """
    return CRITERIA[criterion].weight_score(layer, generator)
