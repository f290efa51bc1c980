"""Intervals for the difference of two accuracies, and how many images would decide a gate.

An accuracy drop (base minus candidate) is measured on the *same* images, so its interval is the
paired one when the per-image outcomes are known: Newcombe's method 10 (Newcombe 1998, "Improved
confidence intervals for the difference between binomial proportions based on paired data"),
which combines the two Wilson intervals with the phi correlation of the 2x2 table of outcomes.
Identical predictions give a tight interval around zero, as they should. Without the table
(only the two accuracies and their counts) the unpaired hybrid score interval (Newcombe's method
10 for independent samples) is used: wider, so never falsely decisive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgebench.robustness.metrics import wilson_interval

Z95 = 1.959964


@dataclass(frozen=True)
class Pairs:
    """Per-image outcomes of base and candidate on the same images: both right, base right only,
    candidate right only, both wrong."""

    both: int
    base_only: int
    cand_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.base_only + self.cand_only + self.neither


def _phi(p: Pairs) -> float:
    a, b, c, d = p.both, p.base_only, p.cand_only, p.neither
    den = (a + b) * (c + d) * (a + c) * (b + d)
    return 0.0 if den == 0 else (a * d - b * c) / math.sqrt(den)


def drop_interval(
    base_acc: float, base_n: int, cand_acc: float, cand_n: int, pairs: Pairs | None = None
) -> tuple[float, float]:
    """95 % interval of ``base_acc - cand_acc``: paired (Newcombe 10 with phi) when *pairs* is
    given, else the independent-samples hybrid score interval."""
    if pairs is not None:
        base_n = cand_n = pairs.n
        base_right, cand_right = pairs.both + pairs.base_only, pairs.both + pairs.cand_only
        base_acc, cand_acc = base_right / base_n, cand_right / cand_n
        phi = _phi(pairs)
    else:
        base_right, cand_right = round(base_acc * base_n), round(cand_acc * cand_n)
        phi = 0.0
    l1, u1 = wilson_interval(base_right, base_n)
    l2, u2 = wilson_interval(cand_right, cand_n)
    d = base_acc - cand_acc
    dl1, du1, dl2, du2 = base_acc - l1, u1 - base_acc, cand_acc - l2, u2 - cand_acc
    lower = d - math.sqrt(max(0.0, dl1 * dl1 - 2 * phi * dl1 * du2 + du2 * du2))
    upper = d + math.sqrt(max(0.0, du1 * du1 - 2 * phi * du1 * dl2 + dl2 * dl2))
    return max(-1.0, lower), min(1.0, upper)


def images_to_decide(value: float, budget: float, half_width: float, n: int) -> int | None:
    """About how many images would make an interval of *half_width* on *n* images clear the
    *budget* from *value* (half-widths shrink as 1/sqrt(n)); None when the value sits on the
    budget (no number of images decides it)."""
    gap = abs(value - budget)
    if gap < 1e-12 or n < 1:
        return None
    return max(n + 1, math.ceil(n * (half_width / gap) ** 2))


__all__ = ["Pairs", "drop_interval", "images_to_decide"]
