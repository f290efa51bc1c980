"""Shared fixtures for the compress tests: sklearn digits (8x8 -> (N, 1, 8, 8) in [0, 1]) and
tiny real models trained on them for a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compress_models import TinyResNet, tiny_cnn
from torch import nn


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    from edgebench.compress.finetune import FinetuneSpec, finetune

    return finetune(model, (x, y), FinetuneSpec(epochs=epochs, lr=3e-3, batch_size=32, seed=0))


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    # held-out split again: calibration images vs evaluation images, never overlapping
    xcal, xev, ycal, yev = train_test_split(xte, yte, test_size=0.6, random_state=0, stratify=yte)
    return {"x_train": xtr, "y_train": ytr, "x_cal": xcal, "y_cal": ycal, "x_eval": xev, "y_eval": yev}


@pytest.fixture(scope="session")
def trained_cnn(digits: dict[str, np.ndarray]) -> nn.Module:
    torch.manual_seed(0)
    return _train(tiny_cnn(), digits["x_train"], digits["y_train"], epochs=6)


@pytest.fixture(scope="session")
def trained_resnet(digits: dict[str, np.ndarray]) -> nn.Module:
    torch.manual_seed(0)
    return _train(TinyResNet(), digits["x_train"], digits["y_train"], epochs=5)


@pytest.fixture
def example() -> torch.Tensor:
    return torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models train faster on one thread, and the CPU is shared with other test runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
