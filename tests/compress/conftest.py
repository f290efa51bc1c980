"""Shared fixtures for the compress tests: sklearn digits (8x8 -> (N, 1, 8, 8) in [0, 1]) and
tiny real models trained on them for a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class Normalize(nn.Module):
    """Normalization inside the model (buffers), as edgebench models have it."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([mean]).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([std]).view(1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        Normalize(0.3, 0.4),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 10),
    )


class Block(nn.Module):
    """ResNet basic block: the residual add couples conv2's output with the block input."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.norm = Normalize(0.3, 0.4)
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = Block(width, width, 1)
        self.layer2 = Block(width, 2 * width, 2)
        self.layer3 = Block(2 * width, 2 * width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.norm(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


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
