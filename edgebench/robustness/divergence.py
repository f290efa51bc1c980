"""The divergence attack (DIVA, Hong et al. 2021): perturbations within epsilon that a compressed
model gets wrong while the base still gets them right -- the attack aimed at compression itself.

Within the epsilon ball, PGD ascends ``CE(candidate(x'), y) - BASE_WEIGHT * CE(base(x'), y)``:
raise the candidate's loss on the true label while keeping the base's low. It is crafted
white-box on a :class:`Paired` model (the candidate's attacker's model, with the base's beside
it), then replayed through both deployed artifacts; its rows report the share of images where
the deployed base is right and the deployed candidate wrong. Imported only to craft (torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from edgebench.errors import EdgebenchError

BASE_WEIGHT = 1.0  # c in CE(candidate) - c * CE(base): the two losses on the same scale


class Paired(torch.nn.Module):
    """A candidate's model with the base's beside it. ``forward`` is the candidate's (what
    :func:`~edgebench.robustness.attacks.craft` predicts with and records); ``reference`` is the
    base, which only the divergence attack reads."""

    def __init__(self, candidate: torch.nn.Module, reference: torch.nn.Module) -> None:
        super().__init__()
        self.candidate = candidate
        self.reference = reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.candidate(x)


def _project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (eps / flat).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.ndim - 1)))


def _step(grad: torch.Tensor, norm: str, size: float) -> torch.Tensor:
    if norm == "linf":
        return size * grad.sign()
    flat = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return size * grad / flat.view(-1, *([1] * (grad.ndim - 1)))


def divergence_crafter(
    model: torch.nn.Module, norm: str, eps: float, seed: int, params: Mapping[str, Any]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A batch crafter ``(x, y) -> x_adv`` for the divergence attack at *eps* on a
    :class:`Paired` *model*; PGD's parameters (``steps``, ``rel_stepsize``, ``random_start``).
    The random start draws from torch's generator, which :func:`craft` seeds per epsilon."""
    import torch.nn.functional as F

    reference = getattr(model, "reference", None)
    if reference is None:
        raise EdgebenchError(
            "attack diva: expected a candidate's model paired with the base's (it is crafted white-box on each "
            "candidate), found a single model"
        )
    if norm not in ("linf", "l2"):
        raise EdgebenchError(f"attack diva: expected norm linf or l2, found {norm!r}")
    steps = int(params.get("steps", 20))
    size = float(params.get("rel_stepsize", 0.25)) * eps
    random_start = bool(params.get("random_start", True))
    candidate = model.candidate if isinstance(model, Paired) else model

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x0 = x.detach()
        if random_start:
            if norm == "linf":
                delta = (torch.rand_like(x0) * 2 - 1) * eps
            else:
                d = torch.randn_like(x0)
                radius = torch.rand(len(x0), device=x0.device) * eps
                delta = _project(d, "l2", 1.0) * radius.view(-1, *([1] * (x0.ndim - 1)))
        else:
            delta = torch.zeros_like(x0)
        delta = (x0 + delta).clamp(0.0, 1.0) - x0
        for _ in range(steps):
            xa = (x0 + delta).detach().requires_grad_(True)
            loss = F.cross_entropy(candidate(xa), y, reduction="sum") - BASE_WEIGHT * F.cross_entropy(
                reference(xa), y, reduction="sum"
            )
            (grad,) = torch.autograd.grad(loss, xa)
            delta = _project(delta + _step(grad, norm, size), norm, eps)
            delta = (x0 + delta).clamp(0.0, 1.0) - x0
        return (x0 + delta).detach()

    return run


__all__ = ["BASE_WEIGHT", "Paired", "divergence_crafter"]
