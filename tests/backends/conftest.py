"""Tiny real models for the backend tests: a small CNN as TorchScript, ExportedProgram and ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

SHAPE = (1, 3, 16, 16)


def _net():  # noqa: ANN202
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


@pytest.fixture(scope="session")
def small_net():  # noqa: ANN201
    return _net()


@pytest.fixture(scope="session")
def small_inputs() -> np.ndarray:
    return np.random.default_rng(0).random((8, *SHAPE[1:]), dtype=np.float32)


@pytest.fixture(scope="session")
def small_torchscript(small_net, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    import torch

    path = tmp_path_factory.mktemp("torch") / "small.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(small_net, torch.rand(*SHAPE)).save(str(path))
    return path


@pytest.fixture(scope="session")
def small_pt2(small_net, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    import torch

    path = tmp_path_factory.mktemp("torch") / "small.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(small_net, (torch.rand(2, *SHAPE[1:]),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(path))
    return path


@pytest.fixture(scope="session")
def small_onnx(small_net, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    from edgebench.export.onnx import export_onnx

    return export_onnx(small_net, tmp_path_factory.mktemp("onnx") / "small.onnx", SHAPE)
