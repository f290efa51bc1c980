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


class FusedQKV(nn.Module):
    """Attention with one fused qkv Linear whose forward reshapes to the widths it was built
    with (``self.dim``): Torch-Pruning can cut qkv, but the cut model then fails here."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.dim = heads, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, self.dim))


class TimmStyleAttention(FusedQKV):
    """The same attention written as timm writes it: ``num_heads`` and ``head_dim`` attributes
    read in the reshapes, so it stays prunable once ``head_dim`` follows the cut."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads)
        self.num_heads, self.head_dim = heads, dim // heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class ConvAttnNet(nn.Module):
    """conv stem -> expand -> reduce -> tokens -> attention -> mean -> classifier (8x8 input)."""

    def __init__(self, attention: type[FusedQKV] = FusedQKV) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU())
        self.reduce = nn.Conv2d(32, 24, 1)
        self.attn = attention(24, 2)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.expand(self.stem(x)))
        return self.fc(self.attn(x.flatten(2).transpose(1, 2)).mean(1))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's unit: half the channels through a branch, concatenated, then a channel
    shuffle (view, transpose, view) that Torch-Pruning's index mapping cannot follow."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(h, h, 1),
            nn.BatchNorm2d(h),
            nn.ReLU(),
            nn.Conv2d(h, h, 3, padding=1, groups=h),
            nn.BatchNorm2d(h),
            nn.Conv2d(h, h, 1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), 1)
        b, c, h, w = out.shape
        return out.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b1, self.b2 = ShuffleBlock(16), ShuffleBlock(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.b2(self.b1(self.stem(x))).mean((2, 3)))
