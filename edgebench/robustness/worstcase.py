"""Robust accuracy as RobustBench and AutoAttack define it: the share of images the deployed
engine still classifies correctly after *every* attack at an epsilon (per-example worst case),
not attack by attack.

Each attack contributes an :class:`Outcome`: which evaluation images it ran on and whether the
engine was still right on each. Attacks cover different images (transfer sets the first
``attacks.samples``, white-box sets the first ``whitebox_samples`` of those, black-box its own
``blackbox.samples``), so an epsilon's row is computed on the images *every* one of its attacks
covered, and says which. An image counts only if it is also right clean. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebench.robustness.metrics import wilson_interval

SETTING_ORDER = ("transfer", "whitebox", "divergence", "blackbox")


@dataclass(frozen=True, eq=False)
class Outcome:
    """One attack's per-image result on a deployed engine.

    ``indices``: the evaluation images it ran on; ``correct``: the engine's answer on each
    adversarial input was the true label (for a query attack: no adversarial found within eps).
    """

    row: str
    setting: str
    norm: str
    eps: float
    indices: np.ndarray
    correct: np.ndarray


@dataclass(frozen=True, eq=False)
class Survivors:
    """Per epsilon: the images every attack covered and which of them survived all attacks."""

    norm: str
    eps: float
    indices: np.ndarray
    survived: np.ndarray
    by_setting: dict[str, np.ndarray]
    attacks: tuple[str, ...]
    coverage: dict[str, int]


def eps_key(norm: str, eps: float) -> tuple[str, float]:
    """Epsilons from different files compare equal after rounding (8/255 written twice)."""
    return norm, round(float(eps), 9)


def row_id(norm: str, eps: float) -> str:
    """``worst-linf-8`` (Linf in 1/255 units), ``worst-l2-0.5``: the set ids' convention."""
    value = eps * 255.0 if norm == "linf" else eps
    return f"worst-{norm}-{round(value, 4):g}"


def survivors(labels: np.ndarray, clean_pred: np.ndarray, outcomes: Iterable[Outcome]) -> dict[tuple, Survivors]:
    """Per ``(norm, eps)``: the common images of its attacks and which survived every one (and
    every attack of each setting alone, on the same images)."""
    y, clean = np.asarray(labels), np.asarray(clean_pred)
    groups: dict[tuple, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(eps_key(o.norm, o.eps), []).append(o)
    out: dict[tuple, Survivors] = {}
    for key, group in groups.items():
        common = np.asarray(sorted(set.intersection(*(set(np.asarray(o.indices).tolist()) for o in group))))
        common = common.astype(np.int64)
        ok = clean[common] == y[common]
        by_setting: dict[str, np.ndarray] = {}
        survived = ok.copy()
        for o in group:
            pos = {int(i): k for k, i in enumerate(np.asarray(o.indices))}
            right = np.asarray(o.correct, dtype=bool)[[pos[int(i)] for i in common]]
            survived &= right
            by_setting[o.setting] = by_setting.get(o.setting, ok.copy()) & right
        out[key] = Survivors(
            norm=group[0].norm,
            eps=float(group[0].eps),
            indices=common,
            survived=survived,
            by_setting=by_setting,
            attacks=tuple(o.row for o in group),
            coverage={o.row: int(len(o.indices)) for o in group},
        )
    return out


def extended(outcomes: Sequence[Outcome], more: Sequence[Outcome]) -> list[Outcome]:
    """*outcomes* with the images of *more* (the same attacks, ``row``, on further images: adaptive
    sampling's rounds) appended; an image already in an outcome keeps its first result, and an
    outcome of *more* whose attack is not in *outcomes* is dropped."""
    out = []
    for o in outcomes:
        idx, ok = [np.asarray(o.indices, dtype=np.int64)], [np.asarray(o.correct, dtype=bool)]
        seen = set(idx[0].tolist())
        for m in more:
            if m.row != o.row:
                continue
            mi = np.asarray(m.indices, dtype=np.int64)
            new = np.asarray([int(i) not in seen for i in mi], dtype=bool)
            idx.append(mi[new])
            ok.append(np.asarray(m.correct, dtype=bool)[new])
            seen.update(mi[new].tolist())
        out.append(
            o if len(idx) == 1 else Outcome(o.row, o.setting, o.norm, o.eps, np.concatenate(idx), np.concatenate(ok))
        )
    return out


def describe_images(indices: np.ndarray) -> str:
    """``evaluation images 0-31`` for a prefix, else how many and the range they span."""
    if not len(indices):
        return "no image common to every attack"
    if np.array_equal(indices, np.arange(len(indices))):
        return f"evaluation images 0-{len(indices) - 1}"
    return f"{len(indices)} evaluation images in {int(indices[0])}-{int(indices[-1])}"


def _coverage_note(s: Survivors, settings: Mapping[str, str]) -> str:
    """Which images each setting covered, when they differ from the common ones."""
    per: dict[str, set[int]] = {}
    for row, count in s.coverage.items():
        per.setdefault(settings[row], set()).add(count)
    parts = [
        f"{setting} {'/'.join(str(c) for c in sorted(per[setting]))}" for setting in SETTING_ORDER if setting in per
    ]
    if all(c == len(s.indices) for cs in per.values() for c in cs):
        return f"every attack covered the same {len(s.indices)} images"
    return f"computed on the {len(s.indices)} images every attack covered ({', '.join(parts)} images attacked)"


def pair_counts(base_ok: np.ndarray, cand_ok: np.ndarray) -> dict[str, int]:
    """Per-image outcomes of base and candidate on the same images, as a 2x2 table: both right,
    base right only, candidate right only, neither (the paired interval of their difference)."""
    b, c = np.asarray(base_ok, dtype=bool), np.asarray(cand_ok, dtype=bool)
    return {
        "both": int(np.sum(b & c)),
        "base_only": int(np.sum(b & ~c)),
        "cand_only": int(np.sum(~b & c)),
        "neither": int(np.sum(~b & ~c)),
    }


def worst_case_rows(
    labels: np.ndarray,
    clean_pred: np.ndarray,
    outcomes: Sequence[Outcome],
    reference: Mapping[tuple, Survivors] | None = None,
    z: float = 1.96,
) -> list[dict[str, Any]]:
    """The ``robust_accuracy`` rows of one candidate on one device, by norm then epsilon.

    *reference*: the base's :func:`survivors`; where the base's common images include this
    row's, ``base_robust_accuracy`` is the base's worst case on exactly this row's images.
    """
    settings = {o.row: o.setting for o in outcomes}
    rows = []
    for key, s in sorted(survivors(labels, clean_pred, outcomes).items(), key=lambda kv: kv[0]):
        n = len(s.indices)
        k = int(s.survived.sum())
        row: dict[str, Any] = {
            "id": row_id(s.norm, s.eps),
            "norm": s.norm,
            "eps": s.eps,
            "robust_accuracy": k / n if n else None,
            "robust_accuracy_ci95": list(wilson_interval(k, n, z)) if n else None,
            "count": n,
            "images": describe_images(s.indices),
            "clean_accuracy": float(np.mean(np.asarray(clean_pred)[s.indices] == np.asarray(labels)[s.indices]))
            if n
            else None,
            "attacks": list(s.attacks),
            "by_setting": {
                st: float(np.mean(s.by_setting[st])) if n else None for st in SETTING_ORDER if st in s.by_setting
            },
            "note": _coverage_note(s, settings),
        }
        ref = (reference or {}).get(key)
        if ref is not None and n:
            pos = {int(i): j for j, i in enumerate(ref.indices)}
            if all(int(i) in pos for i in s.indices):
                base_survived = ref.survived[[pos[int(i)] for i in s.indices]]
                row["base_robust_accuracy"] = float(np.mean(base_survived))
                row["pairs"] = pair_counts(base_survived, s.survived)
        rows.append(row)
    return rows


__all__ = [
    "Outcome",
    "Survivors",
    "describe_images",
    "eps_key",
    "extended",
    "pair_counts",
    "row_id",
    "survivors",
    "worst_case_rows",
]
