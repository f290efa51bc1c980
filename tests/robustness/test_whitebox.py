"""White-box setting, fake-quant surrogate and sanity checks on real trained models.

Every candidate here is exported to ONNX and run by ONNX Runtime (the deployed engine); the
attacker's model is rebuilt from that ONNX file by edgebench, as in ``edgebench run``.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.robustness.attacks import AttackSpec, craft
from edgebench.robustness.fakequant import agreement, ort_logits, surrogate_from_onnx
from edgebench.robustness.sanity import MASKING, sanity_checks
from edgebench.robustness.store import save
from edgebench.study.store import RunStore
from edgebench.study.whitebox import REPLAY_KIND, add_to_entry, craft_for_candidate, folder

pytestmark = pytest.mark.slow


def _export(model, path, shape=(1, 1, 8, 8)):
    from edgebench.export.onnx import export_onnx

    return export_onnx(model.eval(), path, shape)


def _quantize(fp32, out, x_calib):
    from edgebench.compress.quantize import parse_quant_spec, quantize_static

    spec = parse_quant_spec({"preset": "ort-cpu", "calib_samples": len(x_calib)})
    return quantize_static(fp32, out, x_calib, spec)


def _evaluate(tmp_path, base, cand_onnx, x, y, specs, n_whitebox):
    """Transfer sets crafted on *base*, white-box sets crafted on the candidate's ONNX file,
    both replayed through ONNX Runtime; returns the candidate's results entry."""
    store = RunStore(tmp_path / "run")
    preds = {"clean": {"predictions": ort_logits(cand_onnx, x).argmax(1).tolist()}}
    for specs_one in specs:
        for s in craft(base, x, y, specs_one, seed=0):
            save(s, store.attacks_dir)
            preds[s.id] = {"predictions": ort_logits(cand_onnx, s.x_adv).argmax(1).tolist()}
    store.save("cand", "local", "replay", {"sets": preds})
    craft_for_candidate(store, "cand", cand_onnx, x, y, specs, samples=n_whitebox, batch_size=64, seed=0)
    from edgebench.robustness.store import load_folder

    wb = {
        s.id: {"predictions": ort_logits(cand_onnx, s.x_adv).argmax(1).tolist()}
        for s in load_folder(folder(store, "cand"), inputs=True)
    }
    store.save("cand", "local", REPLAY_KIND, {"sets": wb})
    entry: dict = {"robustness": []}
    # transfer rows as assemble builds them
    from edgebench.robustness.metrics import robustness_rows

    base_clean = craft(base, x, y, AttackSpec("fgsm", "linf", (1e-9,)))[0].base_clean_predictions
    sets = [s for sp in specs for s in craft(base, x, y, sp, seed=0)]
    entry["robustness"] = robustness_rows(
        y,
        base_clean,
        {s.id: s.base_predictions for s in sets},
        np.asarray(preds["clean"]["predictions"]),
        {k: np.asarray(v["predictions"]) for k, v in preds.items() if k != "clean"},
        sets,
    )
    add_to_entry(store, "cand", "local", y, entry, is_base=False)
    return entry


def _row(entry, setting, set_id):
    return next(r for r in entry["robustness"] if r["setting"] == setting and r["set"] == set_id)


def _check(entry, name):
    return next(c for c in entry["sanity"] if c["check"] == name)


def test_planted_weakness_whitebox_beats_transfer(tmp_path, digits, digits_model, eval_batch):
    """A candidate with a trapdoor the base does not have: three pixels that are 0 in every
    digit push class 0 up. Crafted on the candidate, L2 PGD finds it; base-crafted examples
    do not touch those pixels, so transfer misses it."""
    import torch

    class Trapdoor(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, x):
            s = x[:, 0, 0, 0] + x[:, 0, 4, 0] + x[:, 0, 4, 7]
            bump = torch.zeros(1, 10)
            bump[0, 0] = 60.0
            return self.base(x) + s[:, None] * bump

    x, y = eval_batch
    keep = y != 0
    x, y = x[keep][:48], y[keep][:48]
    cand = _export(Trapdoor(digits_model), tmp_path / "cand.onnx")
    spec = AttackSpec("pgd", "l2", (0.5,), steps=10, rel_stepsize=0.25, random_start=True)
    entry = _evaluate(tmp_path, digits_model, cand, x, y, [spec], n_whitebox=48)
    t, w = _row(entry, "transfer", "pgd-l2-0.5"), _row(entry, "whitebox", "pgd-l2-0.5")
    assert w["accuracy"] + 0.3 <= t["accuracy"], (w["accuracy"], t["accuracy"])
    assert w["transfer_accuracy"] == pytest.approx(t["accuracy"])
    assert _check(entry, "whitebox_vs_transfer")["status"] == "pass"
    assert _check(entry, "unbounded_eps")["status"] == "pass"
    assert _check(entry, "surrogate_agreement")["numbers"]["engine_top1_agreement"] == 1.0


def test_ste_surrogate_finds_what_plain_gradients_through_rounding_miss(tmp_path, digits, digits_model):
    """INT8 QDQ artifact: PGD on the straight-through fake-quant model fools the engine; the
    same PGD through plain rounding (zero gradient almost everywhere) does not."""
    x_tr, _, x_te, y_te = digits
    fp32 = _export(digits_model, tmp_path / "fp32.onnx")
    int8 = _quantize(fp32, tmp_path / "int8.onnx", x_tr[:64])
    x, y = x_te[:64], y_te[:64]
    ste = surrogate_from_onnx(int8)
    plain = surrogate_from_onnx(int8, ste=False)
    assert ste.kind == "fake-quant-ste" and plain.kind == "fake-quant-plain" and ste.qdq_points > 0
    info = agreement(ste, int8, x_te)
    assert info["top1_agreement"] >= 0.95, info
    spec = AttackSpec("pgd", "linf", (32 / 255,), steps=10, rel_stepsize=0.25, random_start=True)
    engine_acc = {}
    for name, sur in (("ste", ste), ("plain", plain)):
        adv = craft(sur.module, x, y, spec, seed=0)[0]
        engine_acc[name] = float(np.mean(ort_logits(int8, adv.x_adv).argmax(1) == y))
    clean_acc = float(np.mean(ort_logits(int8, x).argmax(1) == y))
    assert engine_acc["ste"] + 0.3 <= engine_acc["plain"], engine_acc
    assert engine_acc["plain"] >= clean_acc - 0.1, (engine_acc, clean_acc)


def test_sanity_checks_warn_on_masked_model(tmp_path, digits, digits_model, eval_batch):
    """A model whose output passes through a rounding step has no gradient: white-box attacks
    on it stall, so the checks must say 'possible gradient masking'; the same model without
    the rounding passes them."""
    import torch

    class Rounded(torch.nn.Module):
        def __init__(self, base, masked):
            super().__init__()
            self.base, self.masked = base, masked

        def forward(self, x):
            z = self.base(x)
            return torch.round(z / 4.0) * 4.0 if self.masked else z

    x, y = eval_batch
    specs = [
        AttackSpec("fgsm", "linf", (16 / 255, 48 / 255)),
        AttackSpec("pgd", "linf", (16 / 255, 48 / 255), steps=10, rel_stepsize=0.25, random_start=True),
    ]
    results = {}
    for masked in (True, False):
        cand = _export(Rounded(digits_model, masked), tmp_path / f"cand-{masked}.onnx")
        results[masked] = _evaluate(tmp_path / str(masked), digits_model, cand, x, y, specs, n_whitebox=32)
    masked, clear = results[True], results[False]
    for name in ("whitebox_vs_transfer", "unbounded_eps"):
        assert _check(masked, name)["status"] == "warn", _check(masked, name)
        assert _check(masked, name)["label"].endswith(MASKING)
        assert _check(clear, name)["status"] == "pass", _check(clear, name)
    assert _check(masked, "unbounded_eps")["numbers"]["accuracy"] > 0.5


def test_sanity_iterative_weaker_than_single_step_warns():
    rows = [
        {"setting": "transfer", "attack": "fgsm", "norm": "linf", "eps": 0.1, "accuracy": 0.2, "count": 100},
        {"setting": "transfer", "attack": "pgd", "norm": "linf", "eps": 0.1, "accuracy": 0.6, "count": 100},
        {"setting": "transfer", "attack": "pgd", "norm": "linf", "eps": 0.2, "accuracy": 0.7, "count": 100},
    ]
    checks = {c["check"]: c for c in sanity_checks(rows)}
    assert checks["iterative_vs_single_step"]["status"] == "warn"
    assert checks["accuracy_decreases"]["status"] == "warn"
    rows[1]["accuracy"], rows[2]["accuracy"] = 0.15, 0.05
    checks = {c["check"]: c for c in sanity_checks(rows)}
    assert checks["iterative_vs_single_step"]["status"] == "pass"
    assert checks["accuracy_decreases"]["status"] == "pass"


def test_autoattack_in_the_suite_is_at_least_as_strong_as_pgd(digits_model, eval_batch):
    """``{name: autoattack, norm: linf, eps_255: [...]}`` runs torchattacks' standard AutoAttack."""
    from edgebench.robustness.attacks import distances, parse_attack_specs

    x, y = eval_batch
    x, y = x[:24], y[:24]
    (aa,) = parse_attack_specs([{"name": "autoattack", "norm": "linf", "eps_255": [24]}])
    assert aa.set_ids() == ["autoattack-linf-24"]
    pgd = AttackSpec("pgd", "linf", (24 / 255,), steps=10, rel_stepsize=0.25, random_start=True)
    (s_aa,) = craft(digits_model, x, y, aa, seed=0)
    (s_pgd,) = craft(digits_model, x, y, pgd, seed=0)
    assert s_aa.base_accuracy <= s_pgd.base_accuracy < s_aa.base_clean_accuracy
    assert distances(x, s_aa.x_adv, "linf").max() <= 24 / 255 + 1e-6
    (l2,) = parse_attack_specs([{"name": "autoattack", "norm": "l2", "epsilons": [1.0]}])
    (s_l2,) = craft(digits_model, x, y, l2, seed=0)
    assert distances(x, s_l2.x_adv, "l2").max() <= 1.0 + 1e-5
    assert s_l2.base_accuracy < s_l2.base_clean_accuracy


def test_int8_error_localisation_names_layers(tmp_path, digits, digits_model):
    """Per-layer fp32-vs-INT8 SQNR: finite and high on clean inputs for every shared activation
    (the INT8 value taken after its quantize-dequantize step, fused Relu included), zero drop
    when the 'adversarial' inputs are the clean ones, and a ranked drop under a real attack."""
    from edgebench.robustness.int8_error import localise

    x_tr, _, x_te, y_te = digits
    fp32 = _export(digits_model, tmp_path / "m.fp32.onnx")
    int8 = _quantize(fp32, tmp_path / "m.onnx", x_tr[:64])
    x, y = x_te[:48], y_te[:48]
    sur = surrogate_from_onnx(int8)
    (adv,) = craft(sur.module, x, y, AttackSpec("pgd", "linf", (48 / 255,), steps=10, rel_stepsize=0.25), seed=0)
    info = localise(fp32, int8, x, {"same": x.copy(), "pgd": adv.x_adv})
    tensors = [row["tensor"] for row in info["layers"]]
    assert "logits" in tensors and len(tensors) >= 4
    clean = [row["sqnr_clean_db"] for row in info["layers"] if row["sqnr_clean_db"] is not None]
    assert len(clean) >= 4 and min(clean) > 10.0, info["layers"]
    assert all(abs(t["drop_db"]) < 1e-9 for t in info["sets"]["same"]["top_layers"])
    top = info["sets"]["pgd"]["top_layers"]
    assert len(top) == 3 and top[0]["drop_db"] >= top[1]["drop_db"] >= top[2]["drop_db"]
    assert top[0]["tensor"] in tensors


def test_robustness_gate_takes_the_worse_threat_model():
    """The gate compares transfer with transfer and white-box with the base's own white-box
    accuracy on the same images, and keeps the larger drop."""
    from edgebench.report.gates import robustness_drop
    from edgebench.results import DeviceEntry

    def entry(*rows: dict) -> DeviceEntry:
        common = {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "accuracy_ci95": None, "count": 100}
        robustness = [dict(common, **r) for r in rows]
        return DeviceEntry.model_validate(
            {"latency_ms": None, "memory_mb": None, "clean_accuracy": None, "robustness": robustness}
        )

    base = entry({"id": "pgd-linf-8", "accuracy": 0.9}, {"id": "whitebox:pgd-linf-8", "accuracy": 0.9})
    transfer = {"id": "pgd-linf-8", "accuracy": 0.85}
    cand = entry(transfer, {"id": "whitebox:pgd-linf-8", "accuracy": 0.5, "base_whitebox_accuracy": 0.7})
    drop, missing, worst = robustness_drop(["pgd-linf-8"], base, cand)
    assert drop == pytest.approx(0.2) and worst == "whitebox:pgd-linf-8" and not missing
    assert robustness_drop(["pgd-linf-8"], base, entry(transfer))[0] == pytest.approx(0.05)


@pytest.mark.parametrize("arch", ["resnet8", "torchvision:resnet18"])
def test_surrogate_rebuilds_resnets_exactly(tmp_path, arch):
    """ResNets exported with batch-norm folded (torch.onnx aliases shared weights through
    Identity nodes) and their QDQ INT8 artifacts: the rebuilt model computes what ONNX Runtime
    computes (INT8: the QDQ graph run unfused, i.e. the arithmetic the artifact specifies)."""
    import onnxruntime as ort
    import torch

    from edgebench.robustness.fakequant import torch_logits

    torch.manual_seed(0)
    if arch == "resnet8":
        from edgebench.subject.models import build

        model, shape = build("resnet8", 3, 10, 32), (1, 3, 32, 32)
    else:
        import torchvision

        model, shape = torchvision.models.resnet18(num_classes=10), (1, 3, 48, 48)
    x = np.random.default_rng(0).random((16, *shape[1:]), dtype=np.float32)
    fp32 = _export(model, tmp_path / "m.fp32.onnx", shape)
    int8 = _quantize(fp32, tmp_path / "m.onnx", x)
    sur = surrogate_from_onnx(fp32)
    assert sur.kind == "fp32-graph"
    assert np.abs(torch_logits(sur.module, x) - ort_logits(fp32, x)).max() < 1e-4
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    q = surrogate_from_onnx(int8)
    assert q.kind == "fake-quant-ste" and q.qdq_points > 10
    got = torch_logits(q.module, x)
    # float accumulation order differs; deep nets can flip a rounding by one step somewhere
    assert np.abs(got - ref).mean() < 2e-3 and np.mean(got.argmax(1) == ref.argmax(1)) >= 0.9
