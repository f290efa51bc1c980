"""Speed-up with its interval from paired rounds, and the drift check, on hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from edgebench.measure.speedup import drift, paired_speedup, pass_drift, t975, with_speedups


def test_paired_speedup_by_hand() -> None:
    # per-round ratios 2, 2.2, 1.8 (base got slower in round 2, both faster in round 3)
    s = paired_speedup([10.0, 22.0, 9.0], [5.0, 10.0, 5.0])
    logs = [math.log(2.0), math.log(2.2), math.log(1.8)]
    mean = sum(logs) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / 2)
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2 df)
    assert s["ratio"] == pytest.approx(math.exp(mean))
    assert s["ci95"] == pytest.approx([math.exp(mean - half), math.exp(mean + half)])
    assert s["round_ratios"] == pytest.approx([2.0, 2.2, 1.8]) and s["rounds"] == 3


def test_drift_shared_by_both_cancels_in_the_pairs() -> None:
    # the device slows 3x over the pass; each round's ratio stays exactly 2
    base = [1.0 * (1 + 0.5 * r) for r in range(5)]
    cand = [b / 2 for b in base]
    s = paired_speedup(base, cand)
    assert s["ratio"] == pytest.approx(2.0) and s["ci95"] == pytest.approx([2.0, 2.0])
    d = drift(base, [1.0, 1.5, 2.0, 3.0, 4.0])
    assert d["drifted"] and d["change"] == pytest.approx(3.0 / 1.0 - 1)
    assert d["loadavg_first"] == 1.0 and d["loadavg_last"] == 4.0


def test_one_round_has_no_interval_and_steady_rounds_no_drift() -> None:
    assert paired_speedup([4.0], [2.0])["ci95"] == [None, None]
    assert not drift([1.0, 1.05, 0.97, 1.02, 1.0, 1.01])["drifted"]
    with pytest.raises(ValueError):
        paired_speedup([1.0, 2.0], [1.0])


def test_t_table() -> None:
    assert t975(1) == pytest.approx(12.706) and t975(5) == pytest.approx(2.571) and t975(200) == 1.96


def test_runs_pair_by_batch_and_mode() -> None:
    base = [
        {"batch": 1, "mode": "compute", "round_p50_ms": [4.0, 4.0]},
        {"batch": 8, "mode": "compute", "round_p50_ms": [16.0, 16.0]},
    ]
    runs = [
        {"batch": 8, "mode": "compute", "round_p50_ms": [4.0, 4.0]},
        {"batch": 32, "mode": "compute", "round_p50_ms": [1.0, 1.0]},
    ]
    out = with_speedups(runs, base)
    assert out[0]["speedup"]["ratio"] == pytest.approx(4.0) and out[1]["speedup"] is None
    assert all(r["speedup"] is None for r in with_speedups(runs, None))
    d = pass_drift(base, [{"loadavg_1m": 0.5}, {"loadavg_1m": 0.7}])
    assert d is not None and d["batch"] == 1 and not d["drifted"]
