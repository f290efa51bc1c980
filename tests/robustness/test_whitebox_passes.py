"""The white-box stage runs each candidate's surrogate over the evaluation set once (its
agreement with the engine, the QDQ reference agreement and its clean predictions all read the
same logits): on resnet18 at 224 with 256 images each extra pass cost about 13 s per candidate
(benchmarks/time_to_verdict.py)."""

from __future__ import annotations

import numpy as np
import pytest

import edgebench.robustness.fakequant as fakequant
from edgebench.robustness.attacks import AttackSpec
from edgebench.study.store import RunStore
from edgebench.study.whitebox import craft_for_candidate, surrogate_record

pytestmark = pytest.mark.slow


def test_int8_surrogate_runs_once_over_the_evaluation_set(tmp_path, digits, digits_model, monkeypatch):
    from edgebench.compress.quantize import parse_quant_spec, quantize_static
    from edgebench.export.onnx import export_onnx

    x_tr, _, x_te, y_te = digits
    fp32 = export_onnx(digits_model.eval(), tmp_path / "m.fp32.onnx", (1, 1, 8, 8))
    spec = parse_quant_spec({"preset": "ort-cpu", "calib_samples": 64})
    int8 = quantize_static(fp32, tmp_path / "m.onnx", x_tr[:64], spec)
    x, y = x_te[:40], y_te[:40]
    passes: list[int] = []
    real = fakequant.torch_logits

    def counted(module, xs, batch=256):  # the real function, its calls counted
        passes.append(len(xs))
        return real(module, xs, batch)

    monkeypatch.setattr(fakequant, "torch_logits", counted)
    store = RunStore(tmp_path / "run")
    craft_for_candidate(
        store, "int8", int8, x, y, [AttackSpec("fgsm", "linf", (8 / 255,))], samples=8, batch_size=64, seed=0
    )
    assert passes.count(len(x)) == 1, passes
    rec = surrogate_record(store, "int8")
    assert rec is not None and rec["kind"].startswith("fake-quant")
    sur = fakequant.surrogate_from_onnx(int8)
    expected = real(sur.module, x).argmax(1)
    assert rec["predictions"] == expected.astype(int).tolist()
    engine = fakequant.ort_logits(int8, x).argmax(1)
    assert rec["top1_agreement"] == pytest.approx(float(np.mean(engine == expected)))
    assert rec["qdq_reference_agreement"] is not None and 0.5 < rec["qdq_reference_agreement"] <= 1.0
