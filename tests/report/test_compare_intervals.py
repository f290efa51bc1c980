"""compare with confidence intervals: a latency change is a regression only when the two runs'
95 % intervals are disjoint in the worse direction; "within noise" otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from report_helpers import entry, load_fixture

from edgebench.measure.stats import summarize_latency
from edgebench.report.compare import BASE_METRICS, Tolerance, compare_results, judge_by_intervals, regressed

P99 = next(m for m in BASE_METRICS if m.name == "latency_ms.p99")


def _runs(samples_a: np.ndarray, samples_b: np.ndarray) -> tuple[dict, dict]:
    a, b = load_fixture(), load_fixture()
    entry(a, "base")["latency_ms"] = summarize_latency(samples_a)
    entry(b, "base")["latency_ms"] = summarize_latency(samples_b)
    return a, b


def _row(diff: dict, metric: str) -> dict:
    return next(r for r in diff["rows"] if r["candidate"] == "base" and r["metric"] == metric)


def test_noise_beyond_ten_percent_is_within_noise() -> None:
    """Two runs from one distribution whose p99s differ by more than 10 %: the old fixed
    tolerance called that a regression; the intervals overlap, so it is noise."""
    rng = np.random.default_rng(7)
    for _ in range(200):  # find such a pair; with 400 heavy-tailed samples it is common
        sa, sb = rng.lognormal(0.0, 0.6, 400), rng.lognormal(0.0, 0.6, 400)
        if np.percentile(sb, 99) > 1.10 * np.percentile(sa, 99):
            break
    a, b = _runs(sa, sb)
    row = _row(compare_results(a, b), "latency_ms.p99")
    assert regressed(P99, row["a"], row["b"], Tolerance())  # the 10 % rule would have flagged it
    assert row["judged_by"] == "intervals+tolerance" and not row["regressed"]
    assert row["note"].startswith("within noise")
    assert row["a_ci"] == entry(a, "base")["latency_ms"]["p99_ci"]


def test_a_real_slowdown_regresses_and_a_speedup_is_noted() -> None:
    rng = np.random.default_rng(8)
    base = rng.lognormal(0.0, 0.2, 2000)
    a, b = _runs(base, rng.lognormal(0.0, 0.2, 2000) * 1.3)
    diff = compare_results(a, b)
    for metric in ("latency_ms.p50", "latency_ms.p99"):
        row = _row(diff, metric)
        assert row["regressed"] and row["note"] == "worse: intervals disjoint"
        assert row["b_ci"][0] > row["a_ci"][1]
    assert diff["regressed"]
    a, b = _runs(base, rng.lognormal(0.0, 0.2, 2000) * 0.7)
    row = _row(compare_results(a, b), "latency_ms.p50")
    assert not row["regressed"] and row["note"] == "better: intervals disjoint"


def test_too_few_samples_for_p99_is_never_a_regression() -> None:
    """100 samples cannot bound p99 from above: even a large jump is not provably a regression."""
    rng = np.random.default_rng(9)
    a, b = _runs(rng.lognormal(0.0, 0.2, 100), rng.lognormal(0.0, 0.2, 100) * 1.2)
    row = _row(compare_results(a, b), "latency_ms.p99")
    assert entry(a, "base")["latency_ms"]["p99_insufficient"]
    assert not row["regressed"] and "too few samples" in row["note"]
    assert _row(compare_results(a, b), "latency_ms.p50")["regressed"]  # p50 has enough samples


def test_judge_by_intervals_directions() -> None:
    assert judge_by_intervals([1, 2], [3, 4]) == (True, "worse: intervals disjoint")
    assert judge_by_intervals([1, 3], [2, 4]) == (False, "within noise")
    assert judge_by_intervals([3, 4], [1, 2]) == (False, "better: intervals disjoint")
    assert judge_by_intervals([3, 4], [1, 2], lower_is_better=False)[0]  # higher is better: worse
    assert judge_by_intervals([1, None], [5, 6]) == (False, "within noise (too few samples to bound the interval)")


def test_results_without_intervals_fall_back_to_the_tolerance() -> None:
    a, b = load_fixture(), load_fixture()  # the fixture predates intervals
    entry(b, "base")["latency_ms"]["p99"] *= 1.5
    row = _row(compare_results(a, b), "latency_ms.p99")
    assert row["judged_by"] == "tolerance" and row["regressed"]


def test_cli_says_within_noise(tmp_path) -> None:  # noqa: ANN001
    from report_helpers import write_run
    from typer.testing import CliRunner

    from edgebench.cli.main import app

    rng = np.random.default_rng(7)
    for _ in range(200):
        sa, sb = rng.lognormal(0.0, 0.6, 400), rng.lognormal(0.0, 0.6, 400)
        if np.percentile(sb, 99) > 1.10 * np.percentile(sa, 99):
            break
    a, b = _runs(sa, sb)
    res = CliRunner().invoke(app, ["compare", str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b))])
    assert res.exit_code == 0, res.output
    assert "slower but within noise" in res.output and "0 regression(s)" in res.output
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--all"])
    assert "within noise" in res.output


def _tight(center: float, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Latencies of a quiet host: within-run spread far below a percent, so a drift between two
    runs of a few percent gives disjoint 95 % intervals."""
    return center * (1 + np.random.default_rng(seed).normal(0.0, 0.002, n))


def test_drift_of_two_percent_with_disjoint_intervals_is_not_a_regression() -> None:
    """Issue 23: `int8 latency_ms.p50 0.05475 -> 0.05578 +1.9% worse: intervals disjoint` was a
    regression. Outside noise, but below the 10 % minimum effect size: not one."""
    a, b = _runs(_tight(0.05475, seed=1), _tight(0.05578, seed=2))
    diff = compare_results(a, b)
    row = _row(diff, "latency_ms.p50")
    assert row["b_ci"][0] > row["a_ci"][1]  # the intervals are disjoint
    assert not row["regressed"] and row["note"] == "worse: intervals disjoint, within tolerance"
    assert row["min_effect"] == pytest.approx(0.1 * row["a"])
    assert not diff["regressed"]
    # A tolerance below the drift makes it one: the tolerance decides as well as the intervals.
    strict = _row(compare_results(a, b, Tolerance(latency_rel=0.01)), "latency_ms.p50")
    assert strict["regressed"] and strict["note"] == "worse: intervals disjoint"


def test_latency_tolerance_applies_where_intervals_exist(tmp_path) -> None:  # noqa: ANN001
    """Issue 23: `--latency-tolerance 0.5` left the same rows regressed. A 30 % slowdown with
    disjoint intervals regresses at the default 10 %, not with --latency-tolerance 0.5."""
    from report_helpers import write_run
    from typer.testing import CliRunner

    from edgebench.cli.main import app

    a, b = _runs(_tight(1.0, seed=3), _tight(1.3, seed=4))
    ra, rb = str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b))
    res = CliRunner().invoke(app, ["compare", ra, rb])
    assert res.exit_code == 1 and "latency_ms.p50" in res.output, res.output
    res = CliRunner().invoke(app, ["compare", ra, rb, "--latency-tolerance", "0.5"])
    assert res.exit_code == 0, res.output
    assert "within the minimum effect size" in res.output and "latency 50 %" in res.output


def test_speedup_regression_needs_disjoint_intervals_and_the_tolerance() -> None:
    """Speed-ups from interleaved rounds compare by their paired-round intervals: a drop inside
    the noise is not a regression, a drop beyond both the intervals and the tolerance is."""
    from edgebench.report.compare import BASE_METRICS, Tolerance, _judge
    from edgebench.results import DeviceEntry

    metric = next(m for m in BASE_METRICS if m.name == "speedup")

    def entry(ratio: float, lo: float, hi: float) -> DeviceEntry:
        sp = {"ratio": ratio, "ci95": [lo, hi], "rounds": 6, "round_ratios": [ratio] * 6, "method": "t"}
        return DeviceEntry.model_validate(
            {"latency_ms": None, "memory_mb": None, "clean_accuracy": None, "robustness": [], "speedup": sp}
        )

    a = entry(4.0, 3.6, 4.4)
    noisy = _judge(metric, a, entry(3.5, 3.0, 4.1), 4.0, 3.5, Tolerance())
    assert noisy["judged_by"] == "intervals+tolerance" and not noisy["regressed"]
    slower = _judge(metric, a, entry(2.0, 1.8, 2.2), 4.0, 2.0, Tolerance())
    assert slower["regressed"] and slower["note"].startswith("worse: intervals disjoint")
    tolerant = _judge(metric, a, entry(3.2, 3.1, 3.3), 4.0, 3.2, Tolerance(latency_rel=0.5))
    assert not tolerant["regressed"] and "within tolerance" in tolerant["note"]
