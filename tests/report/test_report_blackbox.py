"""The black-box attack on the deployed engine shows in both reports, and only when it ran."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from edgebench.report.markdown import render_markdown
from edgebench.report.model import blackbox_table, build_report
from edgebench.results import validate_results

FIXTURE = Path(__file__).parent / "data" / "results.json"
BB = {
    "attack": "hsj",
    "norm": "l2",
    "count": 8,
    "attacked": 7,
    "clean_accuracy": 0.875,
    "max_queries": 400,
    "queries_total": 2950,
    "queries_mean": 360.125,
    "budget_exhausted": 7,
    "median_distance": 2.125,
    "rows": [
        {"eps": 1.0, "accuracy": 0.75, "success_rate": 0.14},
        {"eps": 3.0, "accuracy": 0.25, "success_rate": 0.71},
    ],
    "history": [[100, 4.0], [400, 2.125]],
}


def test_blackbox_table_only_when_measured() -> None:
    results = json.loads(FIXTURE.read_text())
    assert blackbox_table(validate_results(results), "local") is None
    with_bb = copy.deepcopy(results)
    with_bb["candidates"][0]["devices"]["local"]["blackbox"] = BB
    table = blackbox_table(validate_results(with_bb), "local")
    assert table is not None and table.columns[-2:] == ("Accuracy at eps 1", "Accuracy at eps 3")
    first = {c.key: c.value for c in table.rows[0]}
    assert first["blackbox.median_distance"] == 2.125 and first["blackbox.accuracy@3"] == 0.25
    second = {c.key: c for c in table.rows[1]}
    assert second["blackbox.median_distance"].status == "unmeasured"  # not run there: unmeasured, not 0
    keys = [t.key for s in build_report(with_bb).sections for t in s.tables]
    assert "blackbox-local" in keys


def test_blackbox_in_markdown() -> None:
    results = json.loads(FIXTURE.read_text())
    results["candidates"][0]["devices"]["local"]["blackbox"] = BB
    md = render_markdown(results)
    assert "Black-box attack on the deployed engine" in md and "360.1" in md
