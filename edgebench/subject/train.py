"""Short, seeded CPU training: trains the demo models in seconds and fine-tunes pruned ones."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 3,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Adam with a cosine schedule over *epochs* on (x, y); returns the model in eval mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * ((len(x) + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log.info("epoch %d loss %.4f", epoch + 1, total / len(x))
        if on_epoch:
            on_epoch(epoch + 1, total / len(x))
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            correct += int(
                (model(torch.from_numpy(x[i : i + batch_size])).argmax(1).numpy() == y[i : i + batch_size]).sum()
            )
    return correct / max(len(x), 1)
