"""Issue 23, item 5: every robustness number is compared on the images it was measured on.

Hand-made rows for the sanity checks (a curve that rises with epsilon, one that falls), the
per-row clean accuracy on exactly the attacked images, and the white-box image count against
``attacks.samples`` with a real model crafted on through its ONNX artifact.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.robustness.sanity import CHECKS, MASKING, UNBOUNDED_NOTE, sanity_checks


def _curve(accuracies: list[float], setting: str = "whitebox", count: int = 100) -> list[dict]:
    return [
        {"setting": setting, "attack": "fgsm", "norm": "linf", "eps": k / 255, "accuracy": a, "count": count}
        for k, a in zip((2, 4, 8, 16), accuracies)
    ]


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {c["check"]: c for c in sanity_checks(rows)}


def test_accuracy_rising_with_epsilon_warns_and_says_it_rises() -> None:
    check = _by_name(_curve([0.60, 0.40, 0.55, 0.20]))["accuracy_decreases"]
    assert check["status"] == "warn"
    # the label names the finding (a rise), never the expectation ("decreases")
    assert check["label"].startswith("accuracy rises with epsilon") and MASKING in check["label"]
    assert "decrease" not in check["label"]
    assert "0.400 at eps 4/255, 0.550 at eps 8/255" in check["detail"], check["detail"]
    bad = [p for p in check["numbers"] if not p["ok"]]
    assert [p["accuracy"] for p in bad] == [[0.40, 0.55]]


def test_accuracy_falling_with_epsilon_passes_without_a_label() -> None:
    check = _by_name(_curve([0.60, 0.40, 0.25, 0.05]))["accuracy_decreases"]
    assert check["status"] == "pass" and check["label"] == ""
    assert check["detail"] == "accuracy never rises with epsilon"
    assert all(p["ok"] for p in check["numbers"])


def test_a_rise_within_one_image_of_noise_passes() -> None:
    """On 16 images one image is 0.0625: a rise that small is sampling noise, not masking."""
    assert _by_name(_curve([0.50, 0.5625, 0.30, 0.10], count=16))["accuracy_decreases"]["status"] == "pass"
    assert _by_name(_curve([0.50, 0.6875, 0.30, 0.10], count=16))["accuracy_decreases"]["status"] == "warn"


def test_every_warning_label_names_what_was_found() -> None:
    rows = [
        {"setting": "transfer", "attack": "fgsm", "norm": "linf", "eps": 0.1, "accuracy": 0.2, "count": 100},
        {"setting": "transfer", "attack": "pgd", "norm": "linf", "eps": 0.1, "accuracy": 0.6, "count": 100},
        {"setting": "whitebox", "set": "pgd-linf-8", "attack": "pgd", "norm": "linf", "eps": 8 / 255,
         "accuracy": 0.9, "transfer_accuracy": 0.5, "count": 100},
        {"setting": "whitebox", "set": "pgd-linf-255", "attack": "pgd", "norm": "linf", "eps": 1.0,
         "accuracy": 0.4, "count": 16, "sanity_only": True},
    ]  # fmt: skip
    checks = _by_name(rows)
    for name in ("iterative_vs_single_step", "whitebox_vs_transfer", "unbounded_eps"):
        assert checks[name]["status"] == "warn"
        assert checks[name]["label"] == f"{CHECKS[name][1]}: {MASKING}"
    assert "on 16 images" in checks["unbounded_eps"]["detail"] and "255/255" in checks["unbounded_eps"]["detail"]
    assert "pgd-linf-255" in UNBOUNDED_NOTE and "masked" in UNBOUNDED_NOTE


def test_rows_carry_clean_accuracy_on_exactly_their_images() -> None:
    """Clean accuracy over 48 images is 0.229 while the 16 attacked ones are all wrong when clean:
    the row's own clean accuracy is what its accuracy must be read against."""
    from edgebench.robustness.metrics import robustness_rows

    class Set:
        id, attack, norm, eps = "fgsm-linf-8", "fgsm", "linf", 8 / 255
        indices = np.arange(16)

    y = np.zeros(48, dtype=int)
    clean = np.ones(48, dtype=int)
    clean[16:27] = 0  # 11 of 48 right (0.229), none of the first 16
    adv = np.zeros(16, dtype=int)
    adv[5:] = 1  # 5 of 16 right after the attack (0.312)
    (row,) = robustness_rows(y, clean, {Set.id: adv}, clean, {Set.id: adv}, [Set])
    assert row["count"] == 16 and row["accuracy"] == pytest.approx(5 / 16)
    assert row["clean_accuracy"] == 0.0
    assert float(np.mean(clean == y)) == pytest.approx(11 / 48)


@pytest.mark.slow
def test_whitebox_attacks_at_most_attacks_samples_images(tmp_path, digits_model, eval_batch) -> None:
    """``attacks.samples: 16`` with the default ``whitebox_samples`` (32): every white-box set,
    the sanity set included, holds the same 16 images the transfer sets hold, and the progress
    line says so."""
    from edgebench.export.onnx import export_onnx
    from edgebench.robustness.store import load_folder
    from edgebench.study.config import AttackConfig
    from edgebench.study.store import RunStore
    from edgebench.study.whitebox import craft_all, folder

    x, y = eval_batch
    x, y = x[:48], y[:48]
    cfg = AttackConfig.model_validate({"samples": 16, "suite": [{"name": "fgsm", "eps_255": [8]}]})
    assert cfg.whitebox_samples == 32
    artifact = export_onnx(digits_model.eval(), tmp_path / "cand.onnx", (1, 1, 8, 8))
    store = RunStore(tmp_path / "run")
    events: list[tuple[str, dict]] = []
    craft_all(store, [("cand", artifact, False)], x, y, cfg, 0, lambda kind, d: events.append((kind, d)))
    sets = load_folder(folder(store, "cand"))
    assert sorted(s.id for s in sets) == ["fgsm-linf-8", "pgd-linf-255"]
    for s in sets:
        assert s.indices.tolist() == list(range(16)), s.id
    task = next(d for kind, d in events if kind == "task")
    assert "(16 images: attacks.whitebox_samples 32 capped by attacks.samples)" in task["text"]
