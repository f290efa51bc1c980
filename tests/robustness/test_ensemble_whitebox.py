"""The white-box row as the worst case over attacker's models and restarts (an INT8 candidate is
also attacked through its fp32 parent), robust accuracy over every attack, and the divergence
attack, on real models exported to ONNX and replayed through ONNX Runtime (the deployed engine)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edgebench.robustness.attacks import AttackSpec, craft
from edgebench.robustness.fakequant import ort_logits
from edgebench.robustness.metrics import robustness_rows
from edgebench.robustness.store import load, save
from edgebench.study.store import RunStore
from edgebench.study.whitebox import (
    DIVERGENCE_KIND,
    REPLAY_KIND,
    add_to_entry,
    craft_for_candidate,
    divergence_sets,
    replay_sets,
)

pytestmark = pytest.mark.slow


def _export(model, path):
    from edgebench.export.onnx import export_onnx

    return export_onnx(model.eval(), path, (1, 1, 8, 8))


def _predict(onnx_path, x):
    return ort_logits(onnx_path, x).argmax(1).tolist()


def _study(tmp_path, base, base_onnx, cand, cand_onnx, x, y, specs, n_whitebox, restarts):
    """Transfer sets crafted on *base* and replayed through the candidate's engine; white-box
    (and divergence) sets crafted on the candidate's artifact and replayed through its engine
    (divergence sets also through the base's); the candidate's assembled entry."""
    store = RunStore(tmp_path / "run")
    transfer = [s for spec in specs if not spec.definition.pairwise for s in craft(base, x, y, spec, seed=0)]
    preds = {"clean": {"predictions": _predict(cand_onnx, x)}}
    for s in transfer:
        save(s, store.attacks_dir)
        preds[s.id] = {"predictions": _predict(cand_onnx, s.x_adv)}
    store.save(cand, "local", "replay", {"sets": preds})
    base_preds = {"clean": {"predictions": _predict(base_onnx, x)}}
    base_preds.update({s.id: {"predictions": _predict(base_onnx, s.x_adv)} for s in transfer})
    store.save("base", "local", "replay", {"sets": base_preds})
    craft_for_candidate(
        store, cand, cand_onnx, x, y, specs, samples=n_whitebox, batch_size=64, seed=0,
        restarts=restarts, base_artifact=base_onnx,
    )  # fmt: skip
    replays = {s.name: {"predictions": _predict(cand_onnx, load(s.path).x_adv)} for s in replay_sets(store, cand)}
    store.save(cand, "local", REPLAY_KIND, {"sets": replays})
    div = {s.name: {"predictions": _predict(base_onnx, load(s.path).x_adv)} for s in divergence_sets(store, cand)}
    store.save(cand, "local", DIVERGENCE_KIND, {"sets": div})
    base_clean = np.asarray(base_preds["clean"]["predictions"])
    entry: dict = {
        "robustness": robustness_rows(
            y,
            base_clean,
            {s.id: s.base_predictions for s in transfer},
            np.asarray(preds["clean"]["predictions"]),
            {k: np.asarray(v["predictions"]) for k, v in preds.items() if k != "clean"},
            transfer,
        )
    }
    add_to_entry(store, cand, "local", y, entry, is_base=False, sets=transfer)
    return store, entry


def _row(entry, row_id):
    return next(r for r in entry["robustness"] if r["id"] == row_id)


def test_int8_whitebox_reaches_transfer_strength_when_its_ste_model_masks(tmp_path, digits, digits_model, eval_batch):
    """A planted INT8 candidate: its graph rounds the logits to whole numbers (a quantizer the
    straight-through model cannot see through: zero gradient everywhere) before ONNX Runtime
    quantizes it; its fp32 parent is the graph without that quantizer. PGD on the fake-quant
    model alone leaves the engine near its clean accuracy, yet the white-box row -- the worst per
    image over the fake-quant model and the fp32 parent -- is as strong as transfer, and robust
    accuracy (every attack, per image) is never above transfer alone."""
    import torch

    from edgebench.compress.quantize import parse_quant_spec, quantize_static

    class RoundedLogits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.round(self.inner(x))

    x_tr, _, _, _ = digits
    x, y = eval_batch
    x, y = x[:48], y[:48]
    base_onnx = _export(digits_model, tmp_path / "base.onnx")
    parent = _export(digits_model, tmp_path / "int8.fp32.onnx")  # the float graph, quantizers as identity
    rounded = _export(RoundedLogits(digits_model), tmp_path / "rounded.onnx")
    spec = parse_quant_spec({"preset": "ort-cpu", "calib_samples": 64})
    int8 = quantize_static(rounded, tmp_path / "int8.onnx", x_tr[:64], spec)
    assert parent == int8.with_name("int8.fp32.onnx")
    pgd = AttackSpec("pgd", "linf", (32 / 255,), steps=20, rel_stepsize=0.25, random_start=True)
    store, entry = _study(tmp_path, digits_model, base_onnx, "int8", int8, x, y, [pgd], 32, restarts=2)
    wb, t = _row(entry, "whitebox:pgd-linf-32"), _row(entry, "pgd-linf-32")
    clean = wb["clean_accuracy"]
    assert entry["surrogate"]["kind"] == "fake-quant-ste" and entry["surrogate"]["also"] == ["fp32-parent"]
    assert wb["runs"] == 4  # 2 restarts x (fake-quant, fp32 parent)
    assert wb["surrogates"]["fake-quant-ste"] >= clean - 0.1, wb  # masked: PGD on it barely moves the engine
    assert wb["accuracy"] <= wb["transfer_accuracy"] + 0.07, wb  # ... the parent brings it to transfer strength
    assert wb["accuracy"] + 0.3 <= wb["surrogates"]["fake-quant-ste"], wb
    check = next(c for c in entry["sanity"] if c["check"] == "whitebox_vs_transfer")
    assert check["status"] == "pass", check
    (worst,) = [r for r in entry["robust_accuracy"] if r["id"] == "worst-linf-32"]
    assert worst["count"] == 32 and worst["images"] == "evaluation images 0-31"
    assert worst["robust_accuracy"] <= worst["by_setting"]["transfer"] <= wb["transfer_accuracy"] + 1e-9
    assert worst["robust_accuracy"] <= wb["accuracy"] + 1e-9
    lo, hi = worst["robust_accuracy_ci95"]
    assert lo <= worst["robust_accuracy"] <= hi
    assert t["count"] == 48  # the transfer row keeps all its images; the worst case states its 32


def test_divergence_finds_more_base_right_candidate_wrong_images_than_pgd(tmp_path, digits_model, eval_batch):
    """A planted pair: the candidate is the base with its 60 % smallest weights zeroed. At the
    same budget (L-inf 24/255, 20 steps), divergence examples crafted on the candidate paired
    with the base leave more images that the deployed base gets right and the deployed candidate
    wrong than PGD examples crafted on the candidate alone."""
    import torch

    cand = copy.deepcopy(digits_model)
    with torch.no_grad():
        for p in cand.parameters():
            if p.ndim > 1:
                p[p.abs() <= p.abs().flatten().kthvalue(int(0.6 * p.numel())).values] = 0
    x, y = eval_batch
    base_onnx = _export(digits_model, tmp_path / "base.onnx")
    cand_onnx = _export(cand, tmp_path / "sparse.onnx")
    eps = (24 / 255,)
    specs = [
        AttackSpec("pgd", "linf", eps, steps=20, rel_stepsize=0.25, random_start=True),
        AttackSpec("diva", "linf", eps, steps=20),
    ]
    store, entry = _study(tmp_path, digits_model, base_onnx, "sparse", cand_onnx, x, y, specs, 64, restarts=1)
    div = _row(entry, "divergence:diva-linf-24")
    assert div["setting"] == "divergence" and div["count"] == 64
    # PGD on the candidate, replayed through both engines, counted the same way
    pgd_set = load(store.attacks_dir / "whitebox" / "sparse" / "pgd-linf-24.npz")
    base_right = np.asarray(_predict(base_onnx, pgd_set.x_adv)) == y
    cand_wrong = np.asarray(_predict(cand_onnx, pgd_set.x_adv)) != y
    pgd_count = int((base_right & cand_wrong).sum())
    assert div["divergence_count"] >= pgd_count + 4, (div["divergence_count"], pgd_count)
    assert div["divergence_rate"] == pytest.approx(div["divergence_count"] / 64)
    lo, hi = div["divergence_rate_ci95"]
    assert lo <= div["divergence_rate"] <= hi
    assert div["base_accuracy"] >= 0.9  # the base stays right on them
    (worst,) = [r for r in entry["robust_accuracy"] if r["id"] == "worst-linf-24"]
    assert "divergence:diva-linf-24" in worst["attacks"] and "divergence" in worst["by_setting"]


def test_a_study_with_diva_needs_the_whitebox_setting() -> None:
    from edgebench.study.config import AttackConfig

    with pytest.raises(ValueError, match="expected 'whitebox' in attacks.settings"):
        AttackConfig.model_validate({"settings": ["transfer"], "suite": [{"name": "diva", "eps_255": [8]}]})
    cfg = AttackConfig.model_validate({"suite": [{"name": "diva", "eps_255": [8], "steps": 20}]})
    assert cfg.suite[0].definition.pairwise and cfg.whitebox_restarts == 1  # base runs once: so do candidates
