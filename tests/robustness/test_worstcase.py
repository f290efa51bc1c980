"""Robust accuracy as the per-image worst case over every attack (robustness/worstcase.py), on
hand-built per-image outcomes whose answer is counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.robustness.metrics import wilson_interval
from edgebench.robustness.worstcase import Outcome, survivors, worst_case_rows

EPS = 8 / 255


def _o(row: str, setting: str, correct: list[int], indices: list[int] | None = None, eps: float = EPS) -> Outcome:
    idx = np.arange(len(correct)) if indices is None else np.asarray(indices)
    return Outcome(row, setting, "linf", eps, idx, np.asarray(correct, dtype=bool))


def test_an_image_survives_only_if_every_attack_on_it_failed() -> None:
    """Six images; image 5 is wrong clean. Transfer FGSM breaks 1, transfer PGD breaks 2,
    white-box (images 0-3 only) breaks 3: on the common images 0-3 only image 0 survives all."""
    y = np.array([0, 1, 2, 3, 4, 5])
    clean = np.array([0, 1, 2, 3, 4, 0])
    outcomes = [
        _o("fgsm-linf-8", "transfer", [1, 0, 1, 1, 1, 0]),
        _o("pgd-linf-8", "transfer", [1, 1, 0, 1, 0, 0]),
        _o("whitebox:pgd-linf-8", "whitebox", [1, 1, 1, 0], [0, 1, 2, 3]),
    ]
    (row,) = worst_case_rows(y, clean, outcomes)
    assert row["id"] == "worst-linf-8" and row["count"] == 4
    assert row["robust_accuracy"] == pytest.approx(1 / 4)
    assert row["robust_accuracy_ci95"] == pytest.approx(list(wilson_interval(1, 4)))
    assert row["by_setting"] == {"transfer": pytest.approx(2 / 4), "whitebox": pytest.approx(3 / 4)}
    assert row["clean_accuracy"] == 1.0
    assert row["images"] == "evaluation images 0-3"
    assert "4 images every attack covered" in row["note"] and "transfer 6" in row["note"]
    assert "whitebox 4" in row["note"]
    assert row["attacks"] == ["fgsm-linf-8", "pgd-linf-8", "whitebox:pgd-linf-8"]


def test_a_clean_error_is_never_robust_and_epsilons_are_kept_apart() -> None:
    y = np.array([0, 1, 2])
    clean = np.array([0, 1, 0])  # image 2 wrong clean
    outcomes = [
        _o("pgd-linf-8", "transfer", [1, 1, 1]),
        _o("pgd-linf-16", "transfer", [0, 1, 1], eps=16 / 255),
        _o("blackbox-square:square-linf", "blackbox", [1, 0], [0, 1], eps=16 / 255),
    ]
    rows = {r["id"]: r for r in worst_case_rows(y, clean, outcomes)}
    assert rows["worst-linf-8"]["robust_accuracy"] == pytest.approx(2 / 3)
    assert rows["worst-linf-16"]["robust_accuracy"] == 0.0 and rows["worst-linf-16"]["count"] == 2
    assert rows["worst-linf-16"]["by_setting"] == {"transfer": 0.5, "blackbox": 0.5}


def test_the_base_reference_is_read_on_the_candidates_images_only() -> None:
    y = np.arange(4)
    base = survivors(y, y.copy(), [_o("pgd-linf-8", "transfer", [1, 0, 1, 0])])
    cand = [_o("pgd-linf-8", "transfer", [1, 1, 1, 1]), _o("whitebox:pgd-linf-8", "whitebox", [0, 1], [0, 1])]
    (row,) = worst_case_rows(y, y.copy(), cand, reference=base)
    assert row["count"] == 2 and row["robust_accuracy"] == 0.5
    assert row["base_robust_accuracy"] == 0.5  # base images 0, 1: survived, broken


def test_white_box_or_transfer_is_never_weaker_than_transfer_alone() -> None:
    """By construction, on random outcomes: the worst case over both settings is at most the
    worst case over transfer alone and at most every single attack, on the same images."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, k = int(rng.integers(4, 40)), int(rng.integers(1, 40))
        k = min(k, n)
        y = rng.integers(0, 3, n)
        clean = np.where(rng.random(n) < 0.9, y, (y + 1) % 3)
        outcomes = [_o(f"t{i}", "transfer", list(rng.random(n) < 0.7)) for i in range(2)]
        outcomes.append(_o("whitebox:w", "whitebox", list(rng.random(k) < 0.6), list(range(k))))
        (row,) = worst_case_rows(y, clean, outcomes)
        assert row["robust_accuracy"] <= row["by_setting"]["transfer"] + 1e-12
        assert row["robust_accuracy"] <= row["by_setting"]["whitebox"] + 1e-12
        for o in outcomes:
            alone = np.mean(o.correct[:k] & (clean[:k] == y[:k]))
            assert row["robust_accuracy"] <= alone + 1e-12


def test_query_attack_records_become_per_image_outcomes(tmp_path) -> None:
    """A black-box record's distances (0: wrong clean; null: none found) at each of its epsilons:
    an image is broken at eps when an adversarial was confirmed within it."""
    from edgebench.study.store import RunStore
    from edgebench.study.whitebox import blackbox_outcomes

    store = RunStore(tmp_path / "run")
    rows = [{"eps": 1.0, "accuracy": None, "success_rate": None}, {"eps": 2.0, "accuracy": None, "success_rate": None}]
    store.save(
        "int8", "local", "blackbox", {"attack": "hsj", "norm": "l2", "distances": [0.0, None, 1.5], "rows": rows}
    )
    got = {o.eps: o for o in blackbox_outcomes(store, "int8", "local")}
    assert got[1.0].correct.tolist() == [False, True, True] and got[2.0].correct.tolist() == [False, True, False]
    assert got[1.0].setting == "blackbox" and got[1.0].indices.tolist() == [0, 1, 2]
