"""A tiny real classifier for the robustness tests: a small CNN trained for a couple of
seconds on scikit-learn's 8x8 handwritten digits (real data shipped with scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return x, d.target.astype(np.int64)


def build_digits_cnn():
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        """Inputs in [0, 1]; normalization inside the model, as edgebench expects."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(0.3))
            self.register_buffer("std", torch.tensor(0.4))
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Linear(32 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = (x - self.mean) / self.std
            return self.head(self.features(x).flatten(1))

    return DigitsCNN()


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_test, y_test): float32 (N, 1, 8, 8) in [0, 1], int64 labels."""
    x, y = _digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.fixture(scope="session")
def digits_model(digits):
    """A DigitsCNN trained for 15 epochs (about two seconds on one CPU core); eval mode."""
    import torch

    torch.set_num_threads(1)  # the CPU is shared; this model is tiny
    torch.manual_seed(0)
    x_tr, y_tr, _, _ = digits
    model = build_digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    for _epoch in range(15):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def eval_batch(digits, digits_model):
    """64 test digits the tests attack, with labels."""
    _, _, x_te, y_te = digits
    return x_te[:64].copy(), y_te[:64].copy()
