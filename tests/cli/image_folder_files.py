"""An ImageFolder of 32x32 PNGs and the small CNNs a user would bring for it, built for real in a
test: stripes and checks (which a model trained at 32x32 no longer sees once they are upscaled to
224), a CNN that takes any size (global average pooling), the same for 1-channel images, and one
for 4 channels (which no data source converts to)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NET_PY = '''
import torch
from torch import nn


class AnySize(nn.Module):
    """A small CNN that takes images of any size: global average pooling before the classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int = 12) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class Gray(AnySize):
    def __init__(self) -> None:
        super().__init__(in_channels=1)


class FourChannels(AnySize):
    def __init__(self) -> None:
        super().__init__(in_channels=4)
'''

CLASSES = ("checks", "horizontal", "vertical")


def pattern(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One HxWx3 uint8 image of class *label*: stripes or checks of period 4, random colours,
    phase and noise (the luminance carries the pattern, so grayscale keeps it)."""
    yy, xx = np.mgrid[:size, :size]
    py, px = rng.integers(0, 4, 2)
    on = [((yy + py) // 2 + (xx + px) // 2) % 2, ((yy + py) // 2) % 2, ((xx + px) // 2) % 2][label].astype(bool)
    dark, light = rng.integers(0, 90, 3), rng.integers(165, 256, 3)
    img = np.where(on[..., None], light, dark) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FolderFiles:
    folder: Path  # the ImageFolder tree: one sub-folder per class, 32x32 PNGs
    net_py: Path
    checkpoint: Path  # AnySize's state_dict
    gray_checkpoint: Path  # Gray's state_dict
    accuracy: float  # AnySize on the PNGs' pixels, computed here without edgebench
    gray_accuracy: float  # Gray on the PNGs converted with PIL's convert("L")


def load_net(net_py: Path, name: str):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("user_anysize_for_tests", net_py)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)()


def make_folder_files(root: Path, per_class: int = 53) -> FolderFiles:
    """Write the PNGs (3 classes x *per_class*: 159, as in the issue) and train both CNNs on
    images of their own (another seed), as a user's model was trained before it met edgebench."""
    import torch
    from PIL import Image

    folder = root / "images"
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(pattern(label, rng)).save(folder / name / f"{i:03d}.png")
    net_py = root / "anysize.py"
    net_py.write_text(NET_PY)
    train_rng = np.random.default_rng(1)
    labels = np.arange(240) % 3
    rgb = np.stack([pattern(int(k), train_rng) for k in labels]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    gray = (rgb * np.asarray([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)).sum(1, keepdims=True)
    files = sorted(folder.glob("*/*.png"))
    ys = np.asarray([CLASSES.index(f.parent.name) for f in files])
    x_rgb = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).transpose(0, 3, 1, 2) / 255.0
    x_gray = np.stack([np.asarray(Image.open(f).convert("L")) for f in files])[:, None] / 255.0
    out = {}
    for name, x, test_x in (("AnySize", rgb, x_rgb), ("Gray", gray, x_gray)):
        torch.manual_seed(0)
        net = load_net(net_py, name)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
        net.train()
        for _ in range(3):
            for i in range(0, len(xt), 40):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[i : i + 40]), yt[i : i + 40]).backward()
                opt.step()
        net.eval()
        path = root / f"{name.lower()}.pt"
        torch.save(net.state_dict(), path)
        with torch.inference_mode():
            acc = float((net(torch.from_numpy(test_x.astype(np.float32))).argmax(1).numpy() == ys).mean())
        out[name] = (path, acc)
    return FolderFiles(folder, net_py, out["AnySize"][0], out["Gray"][0], out["AnySize"][1], out["Gray"][1])
