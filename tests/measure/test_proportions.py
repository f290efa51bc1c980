"""Intervals of an accuracy drop: Newcombe's hybrid score interval checked against the values
Newcombe (1998) published, and the paired version's behaviour on tables worked by hand."""

from __future__ import annotations

import pytest

from edgebench.measure.proportions import Pairs, drop_interval, images_to_decide


@pytest.mark.parametrize(
    ("p1", "n1", "p2", "n2", "published"),
    [
        (56 / 70, 70, 48 / 80, 80, (0.0524, 0.3339)),  # Newcombe 1998, Stat Med 17:873, Table II (a), method 10
        (9 / 10, 10, 3 / 10, 10, (0.1705, 0.8090)),  # same table, example (b)
    ],
)
def test_unpaired_matches_newcombe_published(p1: float, n1: int, p2: float, n2: int, published: tuple) -> None:
    lo, hi = drop_interval(p1, n1, p2, n2)
    assert (round(lo, 4), round(hi, 4)) == published


def test_paired_identical_predictions_give_a_tight_interval_around_zero() -> None:
    # 256 images, base and candidate right on the same 240: no image changed its outcome
    paired = drop_interval(0, 0, 0, 0, Pairs(both=240, base_only=0, cand_only=0, neither=16))
    unpaired = drop_interval(240 / 256, 256, 240 / 256, 256)
    assert paired[0] <= 0.0 <= paired[1]
    assert paired[1] - paired[0] < 0.35 * (unpaired[1] - unpaired[0])  # Wilson asymmetry keeps it above 0


def test_paired_without_correlation_is_the_unpaired_interval() -> None:
    # phi = 0 when (both * neither) == (base_only * cand_only): 25/25/25/25
    pairs = Pairs(both=25, base_only=25, cand_only=25, neither=25)
    assert drop_interval(0, 0, 0, 0, pairs) == pytest.approx(drop_interval(0.5, 100, 0.5, 100))


def test_paired_reads_the_discordant_images() -> None:
    # base right on 6 images the candidate gets wrong, never the other way: a real drop of 6/100
    lo, hi = drop_interval(0, 0, 0, 0, Pairs(both=88, base_only=6, cand_only=0, neither=6))
    assert 0.0 < lo < 0.06 < hi


def test_images_to_decide() -> None:
    # a drop of 1 pp against a 2 pp budget, half-width 3 pp on 100 images: (3/1)^2 x 100 = 900
    assert images_to_decide(0.01, 0.02, 0.03, 100) == 900
    assert images_to_decide(0.02, 0.02, 0.03, 100) is None
