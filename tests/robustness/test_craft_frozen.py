"""Crafting needs the input's gradient only: ``craft_and_store`` runs the attack with the
model's parameters frozen (foolbox's ``loss.backward()`` would otherwise also compute every
weight's gradient, about a third more backward work on resnet18; benchmarks/time_to_verdict.py),
and gives them back as they were."""

from __future__ import annotations

import copy

import numpy as np

from edgebench.robustness.attacks import AttackSpec
from edgebench.robustness.store import craft_and_store


def test_crafting_computes_no_weight_gradients_and_restores_them(tmp_path, digits, digits_model):
    _, _, x_te, y_te = digits
    model = copy.deepcopy(digits_model).eval()
    model.requires_grad_(True)
    head = next(model.parameters())
    head.requires_grad_(False)  # a parameter the caller froze stays frozen
    spec = AttackSpec("pgd", "linf", (8 / 255,), steps=3, rel_stepsize=0.25)
    report = craft_and_store(model, x_te[:16], y_te[:16], [spec], tmp_path, seed=0)
    assert report.crafted == ["pgd-linf-8"]
    assert all(p.grad is None for p in model.parameters())
    assert not head.requires_grad
    assert all(p.requires_grad for p in list(model.parameters())[1:])
    with np.load(tmp_path / "pgd-linf-8.npz") as z:
        assert np.abs(z["x"] - x_te[:16]).max() > 0  # an attack ran
