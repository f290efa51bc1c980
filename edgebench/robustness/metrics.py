"""Robustness and fidelity metrics, pure numpy (definitions in docs/results.md).

All predictions are integer class ids (argmax of logits); all functions take numpy arrays and
return plain Python floats/dicts ready for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from edgebench.errors import EdgebenchError


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion *successes*/*n* (z=1.96: 95 %).

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"wilson_interval: expected n >= 1, found {n!r}")
    if int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: expected 0 <= successes <= n={n}, found {successes!r}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _as_pred(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise EdgebenchError(f"{name}: expected a 1-D array of class ids, found shape {arr.shape}")
    return arr


def _same_len(**arrays: np.ndarray) -> int:
    lens = {k: len(v) for k, v in arrays.items()}
    if len(set(lens.values())) != 1:
        raise EdgebenchError(f"metrics: expected arrays of equal length, found {lens}")
    return next(iter(lens.values()))


def accuracy_with_ci(predictions: np.ndarray, labels: np.ndarray, z: float = 1.96) -> tuple[float, tuple[float, float]]:
    """Top-1 accuracy and its Wilson interval."""
    p, y = _as_pred(predictions, "predictions"), _as_pred(labels, "labels")
    n = _same_len(predictions=p, labels=y)
    if n == 0:
        raise EdgebenchError("accuracy: expected at least one sample, found none")
    k = int(np.sum(p == y))
    return k / n, wilson_interval(k, n, z)


def transfer_success_rate(
    base_clean_pred: np.ndarray,
    base_adv_pred: np.ndarray,
    cand_clean_pred: np.ndarray,
    cand_adv_pred: np.ndarray,
    labels: np.ndarray,
) -> float | None:
    """Of the examples that fooled the base model and that the candidate classified correctly
    when clean, the share the candidate also misclassifies. ``None`` when none qualifies.

    An example *fooled the base* when the base classified its clean input correctly and its
    adversarial input wrongly (a clean error is not something the attack did).
    """
    bc, ba = _as_pred(base_clean_pred, "base_clean_pred"), _as_pred(base_adv_pred, "base_adv_pred")
    cc, ca = _as_pred(cand_clean_pred, "cand_clean_pred"), _as_pred(cand_adv_pred, "cand_adv_pred")
    y = _as_pred(labels, "labels")
    _same_len(base_clean_pred=bc, base_adv_pred=ba, cand_clean_pred=cc, cand_adv_pred=ca, labels=y)
    qualifies = (bc == y) & (ba != y) & (cc == y)
    n = int(qualifies.sum())
    if n == 0:
        return None
    return float(np.sum(ca[qualifies] != y[qualifies]) / n)


def agreement(cand_adv_pred: np.ndarray, base_adv_pred: np.ndarray) -> float:
    """Share of adversarial examples on which the candidate predicts what the base predicted."""
    c, b = _as_pred(cand_adv_pred, "cand_adv_pred"), _as_pred(base_adv_pred, "base_adv_pred")
    n = _same_len(cand_adv_pred=c, base_adv_pred=b)
    if n == 0:
        raise EdgebenchError("agreement: expected at least one sample, found none")
    return float(np.mean(c == b))


def fidelity(base_logits: np.ndarray, cand_logits: np.ndarray) -> dict[str, float]:
    """Output fidelity against the base on the same inputs (what Polygraphy compares):
    top-1 agreement and the max / mean absolute logit difference."""
    b, c = np.asarray(base_logits, dtype=np.float64), np.asarray(cand_logits, dtype=np.float64)
    if b.ndim != 2 or b.shape != c.shape or len(b) == 0:
        raise EdgebenchError(
            f"fidelity: expected two logit arrays of the same (N, classes) shape, found {b.shape} and {c.shape}"
        )
    diff = np.abs(b - c)
    return {
        "top1_agreement": float(np.mean(b.argmax(1) == c.argmax(1))),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
    }


def robustness_curve_auc(
    epsilons: Sequence[float], accuracies: Sequence[float], clean_accuracy: float | None = None
) -> float:
    """Normalized area under the accuracy-vs-epsilon curve, in [0, 1].

    The curve starts at (0, *clean_accuracy*) (or at the eps=0 point already in the lists),
    is joined by straight lines (trapezoid rule) through the points sorted by epsilon, and its
    area is divided by the largest epsilon. 1.0 = accuracy 1 everywhere up to the largest
    epsilon; a model that breaks at once scores near 0. Only curves over the same epsilon grid
    are comparable.
    """
    eps = [float(e) for e in epsilons]
    acc = [float(a) for a in accuracies]
    if len(eps) != len(acc) or not eps:
        raise EdgebenchError(
            f"robustness AUC: expected as many accuracies as epsilons (>= 1), found {len(acc)} and {len(eps)}"
        )
    if any(e < 0 or not math.isfinite(e) for e in eps) or any(not 0 <= a <= 1 for a in acc):
        raise EdgebenchError("robustness AUC: expected epsilons >= 0 and accuracies in [0, 1]")
    if clean_accuracy is not None:
        if 0.0 in eps:
            raise EdgebenchError(
                "robustness AUC: give the clean accuracy either as clean_accuracy or as an eps=0 point, not both"
            )
        eps, acc = [0.0] + eps, [float(clean_accuracy)] + acc
    elif 0.0 not in eps:
        raise EdgebenchError(
            "robustness AUC: expected the clean accuracy (clean_accuracy= or an eps=0 point), found neither"
        )
    if len(set(eps)) != len(eps):
        raise EdgebenchError(f"robustness AUC: expected distinct epsilons, found {sorted(eps)}")
    order = np.argsort(eps)
    e, a = np.asarray(eps)[order], np.asarray(acc)[order]
    if e[-1] == 0:
        raise EdgebenchError("robustness AUC: expected at least one epsilon > 0")
    area = float(np.sum((e[1:] - e[:-1]) * (a[1:] + a[:-1]) / 2.0))
    return area / float(e[-1])


class SetInfo(Protocol):
    """What :func:`robustness_rows` needs to know about a set (``AdversarialSet`` has it)."""

    id: str
    attack: str
    norm: str
    eps: float | None
    indices: np.ndarray


def robustness_rows(
    labels: np.ndarray,
    base_clean_pred: np.ndarray,
    base_adv_preds: Mapping[str, np.ndarray],
    cand_clean_pred: np.ndarray,
    cand_adv_preds: Mapping[str, np.ndarray],
    sets: Iterable[SetInfo],
    z: float = 1.96,
) -> list[dict[str, Any]]:
    """The ``robustness`` rows of results.json for one candidate on one device.

    *labels*, *base_clean_pred* and *cand_clean_pred* cover the whole evaluation set;
    *base_adv_preds[id]* / *cand_adv_preds[id]* are predictions on the rows of set *id*,
    whose ``indices`` say which evaluation samples those rows came from. A set the candidate
    has no predictions for is left out (unmeasured, not zero).
    """
    y = _as_pred(labels, "labels")
    bc, cc = _as_pred(base_clean_pred, "base_clean_pred"), _as_pred(cand_clean_pred, "cand_clean_pred")
    n_eval = _same_len(labels=y, base_clean_pred=bc, cand_clean_pred=cc)
    rows: list[dict[str, Any]] = []
    for s in sets:
        if s.id not in cand_adv_preds:
            continue
        if s.id not in base_adv_preds:
            raise EdgebenchError(f"robustness: expected the base model's predictions on set {s.id!r}, found none")
        idx = np.asarray(s.indices)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n_eval)):
            raise EdgebenchError(
                f"robustness: set {s.id!r} indices must lie in [0, {n_eval}), found {idx.min() if len(idx) else ''}..{idx.max() if len(idx) else ''}"
            )
        ba = _as_pred(base_adv_preds[s.id], f"base predictions on {s.id}")
        ca = _as_pred(cand_adv_preds[s.id], f"candidate predictions on {s.id}")
        if len(ba) != len(idx) or len(ca) != len(idx):
            raise EdgebenchError(
                f"robustness: set {s.id!r} has {len(idx)} samples, found {len(ba)} base and {len(ca)} candidate predictions"
            )
        ys = y[idx]
        acc, ci = accuracy_with_ci(ca, ys, z)
        rows.append(
            {
                "attack": s.attack,
                "norm": s.norm,
                "eps": None if s.eps is None else float(s.eps),
                "id": s.id,
                "accuracy": acc,
                "accuracy_ci95": [ci[0], ci[1]],
                "transfer_success_rate": transfer_success_rate(bc[idx], ba, cc[idx], ca, ys),
                "agreement": agreement(ca, ba),
                "count": int(len(idx)),
                # the candidate on the clean versions of exactly these images: what this row's
                # accuracy is compared with (the whole-set clean accuracy may cover more images)
                "clean_accuracy": float(np.mean(cc[idx] == ys)),
            }
        )
    return rows


def robustness_auc(rows: Iterable[Mapping[str, Any]], clean_accuracy: float) -> dict[str, float]:
    """``{"<attack>-<norm>": AUC}`` from :func:`robustness_rows` output (rows with an eps)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("eps") is None or r.get("accuracy") is None:
            continue
        curves.setdefault(f"{r['attack']}-{r['norm']}", []).append((float(r["eps"]), float(r["accuracy"])))
    return {
        key: robustness_curve_auc([e for e, _ in pts], [a for _, a in pts], clean_accuracy)
        for key, pts in curves.items()
    }
