"""Built-in demo architectures. Inputs in [0,1]; normalization is the model's first layer,
so attacks, ONNX export and every runtime see the same [0,1] inputs."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel, as buffers so it is exported and pruned with the model."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # buffers: torch types them Tensor | Module for mypy; class annotations would break
        # TorchScript under postponed annotations, so the ignore stays here
        return (x - self.mean) / self.std  # type: ignore[operator]


class LeNet5(nn.Module):
    """LeNet-5 style: two conv+pool stages, three fully connected layers."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        mean: tuple[float, ...] = (0.1307,),
        std: tuple[float, ...] = (0.3081,),
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = ((image_size // 2) - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class MerkleLeNet(nn.Module):
    """Merkle et al.'s LeNet-like MNIST network ("Pruning in the Face of Adversaries", their
    ``CNN`` in FlorianMerkle/network-pruning-and-robustness): conv 5x5 x6 (same padding) + ReLU +
    max-pool 2, conv 5x5 x16 (valid) + ReLU + max-pool 2, dense 400-120-84 with tanh (their
    "relu" dense layers compute tanh), 84-10. No BatchNorm and no normalization: their inputs
    are [0, 1] pixels fed as they are. The output is logits; their softmax is left off, since
    it changes no prediction and attacks here take their loss on what the model returns.
    61,706 parameters at 28x28."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = ((image_size // 2) - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8 (three stages of one basic block: 16, 32, 64 channels), CIFAR-style stem."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        mean: tuple[float, ...] = (0.1307,),
        std: tuple[float, ...] = (0.3081,),
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        self.layer1 = BasicBlock(widths[0], widths[0], 1)
        self.layer2 = BasicBlock(widths[0], widths[1], 2)
        self.layer3 = BasicBlock(widths[1], widths[2], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(self.normalize(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


ARCHITECTURES = {"lenet5": LeNet5, "lenet-merkle": MerkleLeNet, "resnet8": SmallResNet, "resnet8-wide": SmallResNet}
# resnet8-wide: the embedded demo's model, wide enough (about 37 M MACs at 28x28) that batch-1
# latency is compute, not per-call overhead, so pruning and INT8 show what they buy
WIDTHS = {"resnet8": (16, 32, 64), "resnet8-wide": (32, 64, 128)}


def build(
    arch: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> nn.Module:
    """A fresh built-in model sized for the data."""
    from edgebench.errors import EdgebenchError

    if arch not in ARCHITECTURES:
        raise EdgebenchError(f"unknown built-in architecture '{arch}': expected one of {sorted(ARCHITECTURES)}")
    mean = mean or (0.5,) * in_channels
    std = std or (0.25,) * in_channels
    if arch == "lenet5":
        return LeNet5(in_channels, num_classes, image_size, mean, std)
    if arch == "lenet-merkle":  # as published: [0, 1] inputs, no normalization layer
        return MerkleLeNet(in_channels, num_classes, image_size)
    return SmallResNet(in_channels, num_classes, WIDTHS[arch], mean=mean, std=std)


def input_channels(module: nn.Module) -> int | None:
    """The channel count the model's first convolution takes (TorchScript included), None
    without one: what ``edgebench init`` converts the data to, and what an error names when
    the model rejects the data's images."""
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.in_channels)
        if isinstance(m, torch.jit.ScriptModule) and getattr(m, "original_name", "") in ("Conv1d", "Conv2d", "Conv3d"):
            try:  # a traced module keeps its weight (out, in / groups, ...), not always in_channels
                return int(m.weight.shape[1]) * int(getattr(m, "groups", 1))
            except (AttributeError, RuntimeError):
                return None
    return None
