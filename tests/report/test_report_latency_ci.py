"""The latency table shows p99's 95 % interval, and says when too few samples bound it."""

from __future__ import annotations

import numpy as np
from report_helpers import entry, load_fixture

from edgebench.measure.stats import summarize_latency
from edgebench.report.model import latency_table
from edgebench.results import validate_results


def _cell(table, candidate: str, key: str):  # noqa: ANN001, ANN202
    for row in table.rows:
        if row[0].value == candidate or row[0].text == candidate:
            for c in row:
                if c.key == key:
                    return c
    raise AssertionError((candidate, key))


def test_p99_interval_and_insufficient_flag() -> None:
    results = load_fixture()
    rng = np.random.default_rng(3)
    entry(results, "base")["latency_ms"] = summarize_latency(rng.lognormal(0, 0.2, 2000))
    entry(results, "int8")["latency_ms"] = summarize_latency(rng.lognormal(0, 0.2, 100))
    table = latency_table(validate_results(results), "local")
    lo, hi = entry(results, "base")["latency_ms"]["p99_ci"]
    ok = _cell(table, "base", "latency_ms.p99_ci")
    assert ok.text == f"{lo:.3f} .. {hi:.3f}" and ok.value == [lo, hi] and ok.status == ""
    few = _cell(table, "int8", "latency_ms.p99_ci")
    assert few.text.startswith("too few samples") and few.status == "unmeasured"
    legacy = _cell(table, "pruned-50", "latency_ms.p99_ci")  # results from before intervals
    assert legacy.status == "unmeasured" and legacy.value is None


def test_energy_cells_in_the_memory_table() -> None:
    from edgebench.report.model import memory_table

    results = load_fixture()
    entry(results, "base")["energy"] = {
        "power_mean_mw": 5000.0,
        "idle_power_mw": 3000.0,
        "gross_mj_per_item": 1.23456,
        "net_mj_per_item": 0.5,
        "samples": 40,
        "interval_ms": 10.0,
        "rail": "VDD_IN",
    }
    table = memory_table(validate_results(results), "local")
    assert _cell(table, "base", "energy.gross_mj_per_item").text == "1.2346"
    assert _cell(table, "base", "energy.net_mj_per_item").value == 0.5
    assert _cell(table, "int8", "energy.gross_mj_per_item").status == "unmeasured"  # never 0


def test_a_skipped_candidate_says_why_in_the_verdict() -> None:
    from edgebench.report.markdown import render_markdown
    from edgebench.report.model import verdict_table

    results = load_fixture()
    why = "engine tensorrt: device 'local' does not list the tensorrt runtime"
    entry(results, "int8").update(latency_ms=None, clean_accuracy=None, robustness=[], unmeasured_reason=why)
    cell = _cell(verdict_table(results, "local"), "int8", "verdict")
    assert cell.text == "UNMEASURED" and cell.detail == why
    assert why in render_markdown(results)
