"""A user's model as it reaches edgebench, built for real in a test: a class in a .py file, its
state_dict, the same model as TorchScript and as ONNX, and digits split into three .npz files."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NET_PY = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small CNN that expects normalized input ((x - 0.5) / 0.25)."""

    def __init__(self, width: int = 16, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def make_net(width: int = 16) -> nn.Module:
    return Net(width=width)


def not_a_model(width: int = 16) -> int:
    return width


class Spatial(nn.Module):
    """Returns a feature map, not (batch, classes) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
'''

MEAN, STD = 0.5, 0.25


@dataclass(frozen=True)
class UserFiles:
    folder: Path
    net_py: Path
    checkpoint: Path
    torchscript: Path
    onnx: Path
    train: Path
    calib: Path
    eval: Path
    eval_accuracy: float  # the user's model on eval.npz, computed here without edgebench


def make_user_files(folder: Path, digits: tuple[np.ndarray, np.ndarray]) -> UserFiles:
    """Train Net (normalization outside the model, as users ship it) and write every file."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    net_py = folder / "net.py"
    net_py.write_text(NET_PY)
    spec = importlib.util.spec_from_file_location("user_net_for_tests", net_py)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x, y = digits
    norm = lambda a: (a - MEAN) / STD  # noqa: E731
    torch.manual_seed(0)
    net = mod.Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(norm(x[:1000])), torch.from_numpy(y[:1000])
    net.train()
    for _ in range(6):
        for i in range(0, 1000, 50):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[i : i + 50]), yt[i : i + 50]).backward()
            opt.step()
    net.eval()
    checkpoint = folder / "net.pt"
    torch.save(net.state_dict(), checkpoint)
    ts = folder / "net.ts"
    torch.jit.trace(net, torch.rand(1, 1, 8, 8)).save(str(ts))
    onnx_path = folder / "net.onnx"
    torch.onnx.export(
        net,
        (torch.rand(1, 1, 8, 8),),
        str(onnx_path),
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "n"}, "scores": {0: "n"}},
        dynamo=False,
    )
    paths = {}
    for name, sl in (("train", slice(0, 1000)), ("calib", slice(1000, 1200)), ("eval", slice(1200, 1500))):
        paths[name] = folder / f"{name}.npz"
        np.savez(paths[name], x=(x[sl] * 255).round().astype(np.uint8), y=y[sl])  # 0-255, as files often are
    with np.load(paths["eval"]) as d:
        xe, ye = d["x"].astype(np.float32) / 255.0, d["y"]
    with torch.inference_mode():
        acc = float((net(torch.from_numpy(norm(xe))).argmax(1).numpy() == ye).mean())
    return UserFiles(folder, net_py, checkpoint, ts, onnx_path, paths["train"], paths["calib"], paths["eval"], acc)


# a profile that measures little (the tests check what is measured and where, not how fast)
FAST_PROFILE = {
    "batches": [1],
    "modes": ["end_to_end"],
    "iterations": 5,
    "min_duration_s": 0.0,
    "warmup_iters": 1,
    "warmup_s": 0.0,
    "threads": 1,
    "profile_ops": False,
}
NO_BUDGETS = {"max_p99_latency_ms": None, "max_accuracy_drop": None, "max_robustness_drop": None}


def tiny_study(files: UserFiles, model: dict, candidates: list | None = None, **data: object) -> dict:
    """The smallest study that still runs every stage: few images, one attack, a short profile."""
    return {
        "name": "user",
        "model": model,
        "data": {
            "train": str(files.train),
            "calib": str(files.calib),
            "eval": str(files.eval),
            "eval_count": 120,
            "calib_count": 32,
            **data,
        },
        "candidates": candidates or ["base", {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}}],
        "attacks": {"samples": 16, "suite": [{"name": "fgsm", "eps_255": [8]}]},
        "profile": dict(FAST_PROFILE),
        "budgets": dict(NO_BUDGETS),
    }
