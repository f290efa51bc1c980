"""Shared fixtures: a hermetic cache dir, the repo's devices/ folder, and a tiny real model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _hermetic_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches go to a temp dir (so tests never read a developer's cache); devices from the repo."""
    os.environ["EDGEBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["EDGEBENCH_DEVICES_DIR"] = str(ROOT / "devices")
    os.environ["EDGEBENCH_INVENTORY"] = str(tmp_path_factory.mktemp("user") / "devices.yaml")


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    from edgebench.subject.data import load_arrays

    return load_arrays("digits")


@pytest.fixture(scope="session")
def tiny_model(digits: tuple[np.ndarray, np.ndarray]):  # noqa: ANN201
    """A small CNN trained for a few seconds on digits (real weights, real accuracy)."""
    import torch

    from edgebench.subject.models import build
    from edgebench.subject.train import train

    x, y = digits
    torch.manual_seed(0)
    model = build("resnet8", 1, 10, 8)
    return train(model, x[:1200], y[:1200], epochs=3, lr=3e-3, seed=0)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    from edgebench.export.onnx import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", (1, 1, 8, 8))


@pytest.fixture(scope="session")
def digits_npz(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = digits
    path = tmp_path_factory.mktemp("data") / "digits_eval.npz"
    np.savez(path, x=x[1200:], y=y[1200:])
    return path
