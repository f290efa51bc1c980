"""The adversarial set as data: :class:`AdversarialSet`, what crafting returns and the store
saves. A module of its own so that :mod:`~edgebench.robustness.attacks` (which makes sets) and
:mod:`~edgebench.robustness.store` (which saves, loads and resumes them) share the type
without importing each other."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class AdversarialSet:
    """One adversarial set crafted on the base model.

    ``x_adv`` is float32 (N, C, H, W); ``labels``/``indices``/predictions are int64 (N,);
    ``indices`` are the samples' positions in the evaluation set. ``eps`` is ``None`` for a
    minimal-perturbation set (``<attack>-<norm>-min``); ``distances`` (float32, ``inf`` where
    the attack failed) exist only for sets made by minimal-perturbation attacks.
    ``x_adv`` is ``None`` when loaded with ``inputs=False``.
    """

    id: str
    attack: str
    norm: str
    eps: float | None
    x_adv: np.ndarray | None
    labels: np.ndarray
    indices: np.ndarray
    base_predictions: np.ndarray
    base_clean_predictions: np.ndarray
    distances: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    model_fingerprint: str | None = None
    inputs_sha256: str | None = None

    @property
    def count(self) -> int:
        return int(len(self.labels))

    @property
    def base_accuracy(self) -> float:
        """Base model accuracy on the adversarial inputs (white-box adversarial accuracy)."""
        return float(np.mean(self.base_predictions == self.labels))

    @property
    def base_clean_accuracy(self) -> float:
        return float(np.mean(self.base_clean_predictions == self.labels))

    def median_distance(self) -> float | None:
        """Median distance over the samples the attack succeeded on (``None`` if none / no distances)."""
        if self.distances is None:
            return None
        ok = np.isfinite(self.distances) & (self.base_predictions != self.labels)
        return float(np.median(self.distances[ok])) if ok.any() else None

    def match(self) -> dict[str, Any]:
        """What must be equal for a stored set to be reused instead of crafted again."""
        return {
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "params": dict(self.params),
            "seed": int(self.seed),
            "count": self.count,
            "indices_sha256": array_sha256(self.indices.astype(np.int64)),
            "inputs_sha256": self.inputs_sha256,
            "model_fingerprint": self.model_fingerprint,
        }

    def summary(self, path: str | None = None) -> dict[str, Any]:
        """The row ``results.json`` lists under ``attacks`` (``path`` relative to the run)."""
        out: dict[str, Any] = {
            "id": self.id,
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "count": self.count,
            "base_accuracy": self.base_accuracy,
            "base_clean_accuracy": self.base_clean_accuracy,
            "path": path if path is not None else f"{self.id}.npz",
            "params": dict(self.params),
        }
        if self.distances is not None:
            out["median_distance"] = self.median_distance()
            out["success_rate"] = float(np.mean(self.base_predictions != self.labels))
        return out


def array_sha256(a: np.ndarray) -> str:
    """Content hash of an array's bytes (what a set's ``match`` records for its indices)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
