"""Square (score-based) attack on a deployed engine: ONNX Runtime behind a query function."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.robustness.attacks import AttackSpec, craft
from edgebench.robustness.blackbox import run_blackbox, square_spec
from edgebench.robustness.fakequant import ort_logits

pytestmark = pytest.mark.slow


def _rounded_onnx(model, path):
    """The model with its logits rounded: no useful gradient, the same decisions."""
    import torch

    from edgebench.export.onnx import export_onnx

    class Rounded(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, x):
            return torch.round(self.base(x))

    return export_onnx(Rounded(model).eval(), path, (1, 1, 8, 8))


def test_square_attacks_an_engine_whose_gradients_are_masked(tmp_path, digits_model, eval_batch):
    from edgebench.robustness.fakequant import surrogate_from_onnx

    onnx_path = _rounded_onnx(digits_model, tmp_path / "rounded.onnx")
    x, y = eval_batch
    x, y = x[:16], y[:16]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    calls = []

    def query(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return sess.run(None, {"input": batch})[0]

    spec = square_spec({"norm": "linf", "eps_255": [16, 64], "max_queries": 400})
    res = run_blackbox(query, x, y, spec, seed=0)
    s = res.summary()
    clean = s["clean_accuracy"]
    acc = {r["eps"]: r["accuracy"] for r in s["rows"]}
    assert acc[64 / 255] <= clean - 0.4, (acc, clean)
    assert acc[64 / 255] <= acc[16 / 255] <= clean
    # every query reached the engine, within the budget per sample and epsilon (+ confirmations)
    assert s["queries_total"] <= sum(calls) <= len(x) * len(spec.epsilons) * spec.max_queries
    fooled = np.isfinite(res.distances) & res.clean_correct
    assert (ort_logits(onnx_path, res.x_adv[fooled]).argmax(1) != y[fooled]).all()
    assert (np.abs(res.x_adv - x).reshape(len(x), -1).max(1) <= 64 / 255 + 1e-6).all()
    # while a gradient attack on the same graph finds nothing: the rounding masks it
    sur = surrogate_from_onnx(onnx_path)
    (pgd,) = craft(sur.module, x, y, AttackSpec("pgd", "linf", (64 / 255,), steps=10, rel_stepsize=0.25), seed=0)
    pgd_acc = float(np.mean(ort_logits(onnx_path, pgd.x_adv).argmax(1) == y))
    assert pgd_acc >= acc[64 / 255] + 0.3, (pgd_acc, acc)


def test_square_spec_refuses_bad_input():
    with pytest.raises(EdgebenchError, match=r"unknown key\(s\) \['steps'\]"):
        square_spec({"steps": 3})
    with pytest.raises(EdgebenchError, match="eps_255 is for L-inf only"):
        square_spec({"norm": "l2", "eps_255": [8]})
    assert square_spec({"norm": "l2", "epsilons": [1.0]}).epsilons == (1.0,)
