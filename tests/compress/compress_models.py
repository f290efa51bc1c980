"""Small real architectures for the compress tests (a module of its own: test files import
it by this unique name, never `conftest`, which is ambiguous across test folders)."""

from __future__ import annotations

import torch
from torch import nn

from edgebench.subject.models import BasicBlock, Normalize


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        Normalize((0.3,), (0.4,)),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


class TinyResNet(nn.Module):
    """edgebench's residual block, with layer3 at stride 1 so its identity shortcut couples
    layer2's and layer3's output channels across two blocks."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.norm = Normalize((0.3,), (0.4,))
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = BasicBlock(width, width, 1)
        self.layer2 = BasicBlock(width, 2 * width, 2)
        self.layer3 = BasicBlock(2 * width, 2 * width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.norm(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))
