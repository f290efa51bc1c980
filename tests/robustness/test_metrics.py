"""Metrics against hand-computed values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.robustness.metrics import (
    accuracy_with_ci,
    agreement,
    fidelity,
    robustness_auc,
    robustness_curve_auc,
    robustness_rows,
    transfer_success_rate,
    wilson_interval,
)


@dataclass(frozen=True)
class SetMeta:
    """A plain SetInfo (what robustness_rows reads of an adversarial set), for hand-made sets."""

    id: str
    attack: str
    norm: str
    eps: float | None
    indices: np.ndarray


LABELS = np.array([0, 1, 2, 3, 4, 5])
BASE_CLEAN = np.array([0, 1, 2, 3, 4, 0])  # wrong on sample 5
CAND_CLEAN = np.array([0, 1, 2, 3, 0, 5])  # wrong on sample 4


def test_wilson_interval_known_values():
    # 8/10: p=0.8, centre=(0.8+1.96^2/20)/(1+1.96^2/10)=0.71674, half=0.22658
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490157, abs=1e-6) and hi == pytest.approx(0.943319, abs=1e-6)
    # 0/10 is not degenerate: upper bound z^2/(n+z^2) = 3.8416/13.8416
    assert wilson_interval(0, 10) == (0.0, pytest.approx(3.8416 / 13.8416, abs=1e-9))
    assert wilson_interval(10, 10) == (pytest.approx(1 - 3.8416 / 13.8416, abs=1e-9), 1.0)
    # a wider z widens it
    assert wilson_interval(8, 10, z=2.576)[0] < lo
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_accuracy_with_ci():
    acc, ci = accuracy_with_ci(np.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 1]), np.ones(10, dtype=int))
    assert acc == 0.8 and ci == wilson_interval(8, 10)
    with pytest.raises(EdgebenchError, match="equal length"):
        accuracy_with_ci(np.ones(3), np.ones(4))


def test_transfer_success_rate_follows_the_definition():
    base_adv = np.array([9, 9, 2, 9, 9, 9])  # fools the base on 0, 1, 3, 4 (5 was already wrong clean)
    cand_adv = np.array([9, 1, 9, 9, 9, 9])
    # qualifying: fooled the base AND candidate right when clean -> samples 0, 1, 3 (4 is wrong clean)
    # of those the candidate misclassifies 0 and 3 -> 2/3
    assert transfer_success_rate(BASE_CLEAN, base_adv, CAND_CLEAN, cand_adv, LABELS) == pytest.approx(2 / 3)
    # nothing fooled the base: no example qualifies -> None, not 0
    assert transfer_success_rate(BASE_CLEAN, BASE_CLEAN, CAND_CLEAN, cand_adv, LABELS) is None
    # a candidate that copies the base's adversarial decisions has transfer rate 1
    assert transfer_success_rate(BASE_CLEAN, base_adv, CAND_CLEAN, base_adv, LABELS) == 1.0


def test_agreement_and_fidelity():
    assert agreement(np.array([9, 1, 9, 9, 9, 9]), np.array([9, 9, 2, 9, 9, 9])) == pytest.approx(4 / 6)
    f = fidelity(np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([[1.5, 2.0], [0.0, 1.0]]))
    assert f == {"top1_agreement": 0.5, "max_abs_logit_diff": 3.0, "mean_abs_logit_diff": 1.125}
    with pytest.raises(EdgebenchError, match="same \\(N, classes\\) shape"):
        fidelity(np.zeros((2, 3)), np.zeros((2, 4)))


def test_robustness_curve_auc():
    # points (0, 1.0), (0.1, 0.5), (0.2, 0.0): trapezoids 0.075 + 0.025 = 0.1, over range 0.2 -> 0.5
    assert robustness_curve_auc([0.2, 0.1], [0.0, 0.5], clean_accuracy=1.0) == pytest.approx(0.5)
    assert robustness_curve_auc([0.0, 0.1, 0.2], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert robustness_curve_auc([0.1, 0.3], [1.0, 1.0], clean_accuracy=1.0) == pytest.approx(1.0)
    with pytest.raises(EdgebenchError, match="clean accuracy"):
        robustness_curve_auc([0.1], [0.5])
    with pytest.raises(EdgebenchError, match="as many accuracies as epsilons"):
        robustness_curve_auc([0.1, 0.2], [0.5], clean_accuracy=1.0)


def test_robustness_rows_map_set_rows_to_eval_samples():
    sets = [
        SetMeta("pgd-linf-8", "pgd", "linf", 8 / 255, np.array([0, 1, 3, 4])),
        SetMeta("pgd-linf-16", "pgd", "linf", 16 / 255, np.array([0, 1, 3, 4])),
        SetMeta("cw-l2-min", "cw", "l2", None, np.array([2, 5])),
        SetMeta("fgsm-linf-8", "fgsm", "linf", 8 / 255, np.array([0])),  # not replayed on the candidate
    ]
    base_adv = {
        "pgd-linf-8": np.array([9, 9, 9, 9]),
        "pgd-linf-16": np.array([9, 9, 9, 9]),
        "cw-l2-min": np.array([7, 7]),
        "fgsm-linf-8": np.array([0]),
    }
    cand_adv = {
        "pgd-linf-8": np.array([9, 1, 3, 4]),
        "pgd-linf-16": np.array([9, 9, 9, 4]),
        "cw-l2-min": np.array([2, 7]),
    }
    rows = robustness_rows(LABELS, BASE_CLEAN, base_adv, CAND_CLEAN, cand_adv, sets)
    assert [r["id"] for r in rows] == ["pgd-linf-8", "pgd-linf-16", "cw-l2-min"]
    r = rows[0]
    # labels of the set: [0, 1, 3, 4]; candidate right on 1, 3, 4 -> 0.75
    # qualifying for transfer: base fooled on all four, candidate right clean on 0, 1, 3 -> fooled on 0 -> 1/3
    assert r == {
        "attack": "pgd",
        "norm": "linf",
        "eps": 8 / 255,
        "id": "pgd-linf-8",
        "accuracy": 0.75,
        "accuracy_ci95": list(wilson_interval(3, 4)),
        "transfer_success_rate": pytest.approx(1 / 3),
        "agreement": 0.25,
        "count": 4,
        "clean_accuracy": 0.75,  # the candidate on clean 0, 1, 3, 4: wrong on 4 only
    }
    assert rows[1]["accuracy"] == 0.25 and rows[1]["transfer_success_rate"] == 1.0
    # cw set: samples 2 and 5; the base was wrong clean on 5, so only sample 2 qualifies; the candidate resists
    assert rows[2]["eps"] is None and rows[2]["accuracy"] == 0.5 and rows[2]["transfer_success_rate"] == 0.0
    assert rows[2]["clean_accuracy"] == 1.0  # clean on its own two images, not on all six (5/6)
    # AUC per attack-norm over the eps rows, with the clean accuracy at eps 0:
    # (0,5/6) (8/255,0.75) (16/255,0.25) -> [(5/6+0.75)/2 + (0.75+0.25)/2] * (8/255) / (16/255)
    auc = robustness_auc(rows, clean_accuracy=5 / 6)
    assert auc == {"pgd-linf": pytest.approx(((5 / 6 + 0.75) / 2 + 0.5) / 2)}
    with pytest.raises(EdgebenchError, match="has 4 samples, found 4 base and 3 candidate"):
        robustness_rows(LABELS, BASE_CLEAN, base_adv, CAND_CLEAN, {"pgd-linf-8": np.array([1, 2, 3])}, sets)
    with pytest.raises(EdgebenchError, match="base model's predictions on set 'x'"):
        robustness_rows(
            LABELS, BASE_CLEAN, {}, CAND_CLEAN, {"x": np.array([1])}, [SetMeta("x", "pgd", "linf", 0.1, np.array([0]))]
        )


def test_robustness_rows_accept_adversarial_sets(digits_model, eval_batch):
    # the lead's pipeline passes AdversarialSet objects straight in
    from edgebench.robustness.attacks import AttackSpec, craft

    x, y = eval_batch
    sets = craft(digits_model, x[:16], y[:16], AttackSpec("fgsm", "linf", (0.2,)), indices=np.arange(16) + 10)
    labels = np.concatenate([np.zeros(10, dtype=np.int64), y[:16]])
    clean = np.concatenate([np.zeros(10, dtype=np.int64), sets[0].base_clean_predictions])
    preds = {s.id: s.base_predictions for s in sets}
    rows = robustness_rows(labels, clean, preds, clean, preds, sets)
    assert rows[0]["accuracy"] == pytest.approx(float(np.mean(sets[0].base_predictions == y[:16])))
    assert rows[0]["accuracy"] == sets[0].base_accuracy and rows[0]["agreement"] == 1.0
    assert rows[0]["count"] == 16  # rows 10..25 of the evaluation set, through the indices
