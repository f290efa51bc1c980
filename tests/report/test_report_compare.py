"""compare: injected regressions are found, improvements and noise within tolerance are not."""

from __future__ import annotations

import json

import pytest
from report_helpers import EVIL_NAME, candidate, entry, load_fixture

from edgebench.errors import EdgebenchError
from edgebench.report.compare import Tolerance, compare_exit_code, compare_results


def rows_for(diff: dict, candidate: str, metric: str) -> dict:
    return next(r for r in diff["rows"] if r["candidate"] == candidate and r["metric"] == metric)


def test_identical_runs_do_not_regress():
    a = load_fixture()
    diff = compare_results(a, load_fixture())
    assert diff["regressions"] == 0 and not diff["regressed"]
    assert diff["verdict_changes"] == [] and diff["only_in_a"] == [] and diff["only_in_b"] == []
    assert compare_exit_code(diff) == 0
    assert all(r["change"] in (0, None) for r in diff["rows"])
    assert "verdict" not in a["candidates"][0]["devices"]["local"]  # inputs untouched


def test_injected_latency_regression():
    a, b = load_fixture(), load_fixture()
    p99 = entry(a, "pruned-50")["latency_ms"]["p99"]
    entry(b, "pruned-50")["latency_ms"]["p99"] = p99 * 1.5
    diff = compare_results(a, b)
    row = rows_for(diff, "pruned-50", "latency_ms.p99")
    assert row["regressed"] and row["a"] == p99 and row["b"] == pytest.approx(p99 * 1.5)
    assert row["change_rel"] == pytest.approx(0.5)
    assert diff["regressions"] == 1 and compare_exit_code(diff) == 1
    # Within a looser tolerance it is not a regression.
    assert not compare_results(a, b, Tolerance(latency_rel=0.6))["regressed"]


def test_faster_is_not_a_regression():
    a, b = load_fixture(), load_fixture()
    entry(b, "base")["latency_ms"]["p50"] *= 0.5
    diff = compare_results(a, b)
    assert not rows_for(diff, "base", "latency_ms.p50")["regressed"] and not diff["regressed"]


def test_accuracy_robustness_memory_throughput_regressions():
    a, b = load_fixture(), load_fixture()
    entry(b, "base")["clean_accuracy"] -= 0.015  # within 2 pp
    entry(b, "base")["robustness"][0]["accuracy"] -= 0.04  # fgsm-linf-8, within 5 pp
    entry(b, "pruned-50")["clean_accuracy"] -= 0.03
    entry(b, "pruned-50")["robustness"][4]["accuracy"] -= 0.1  # pgd-linf-8
    entry(b, "int8")["memory_mb"]["peak_rss"] *= 1.3
    entry(b, "int8")["throughput_ips"] *= 0.5
    diff = compare_results(a, b)
    regressed = {(r["candidate"], r["metric"]) for r in diff["rows"] if r["regressed"]}
    assert regressed == {
        ("pruned-50", "clean_accuracy"),
        ("pruned-50", "robust_accuracy[pgd-linf-8]"),
        ("int8", "peak_memory_mb"),
        ("int8", "throughput_ips"),
    }
    base = rows_for(diff, "base", "clean_accuracy")
    assert base["change"] == pytest.approx(-0.015) and base["note"] == "worse, within tolerance"
    assert base["min_effect"] == pytest.approx(0.02)
    assert rows_for(diff, "base", "robust_accuracy[fgsm-linf-8]")["min_effect"] == pytest.approx(0.05)
    # pruned-50's accuracy drop (0.038) now fails its 0.02 budget: READY -> NOT READY.
    assert diff["verdict_changes"] == [
        {
            "candidate": "pruned-50",
            "device": "local",
            "a": "READY",
            "b": "NOT READY",
            "regressed": True,
            "recipe_changed": False,
        }
    ]
    assert diff["regressions"] == 5


def test_lost_measurement_regresses_new_one_does_not():
    a, b = load_fixture(), load_fixture()
    entry(b, "base")["latency_compute_ms"] = None
    entry(a, EVIL_NAME)["memory_mb"] = None
    entry(b, EVIL_NAME)["memory_mb"] = {
        "rss_before_load": None,
        "rss_after_load": None,
        "peak_rss": 100.0,
        "ru_maxrss": None,
    }
    diff = compare_results(a, b)
    lost = rows_for(diff, "base", "latency_compute_ms.p50")
    assert lost["regressed"] and lost["note"] == "no longer measured" and lost["b"] is None
    new = rows_for(diff, EVIL_NAME, "peak_memory_mb")
    assert not new["regressed"] and new["note"] == "newly measured"


def test_verdict_improvement_and_candidates_only_in_one_run():
    a, b = load_fixture(), load_fixture()
    rows = {r["id"]: r for r in entry(b, "int8")["robustness"]}
    rows["pgd-l2-1.0"]["accuracy"] = 0.6  # int8 becomes fully measured: UNMEASURED -> READY
    b["candidates"] = [c for c in b["candidates"] if c["name"] != EVIL_NAME]
    diff = compare_results(a, b)
    assert diff["verdict_changes"] == [
        {
            "candidate": "int8",
            "device": "local",
            "a": "UNMEASURED",
            "b": "READY",
            "regressed": False,
            "recipe_changed": False,
        }
    ]
    assert diff["only_in_a"] == [{"candidate": EVIL_NAME, "device": "local"}]
    assert not diff["regressed"]


def test_budget_change_is_flagged():
    a, b = load_fixture(), load_fixture()
    b["budgets"]["max_p99_latency_ms"] = 0.1
    diff = compare_results(a, b)
    assert diff["budgets_changed"]
    assert {(v["candidate"], v["b"]) for v in diff["verdict_changes"]} == {
        ("base", "NOT READY"),
        ("pruned-50", "NOT READY"),
        ("int8", "NOT READY"),
    }


def test_bad_tolerance():
    with pytest.raises(EdgebenchError, match="tolerance latency_rel"):
        Tolerance(latency_rel=-0.1)


def test_latency_rows_say_when_a_run_was_unstable() -> None:
    """A latency change measured with a CV above 10 % is shown as such (it may be host noise)."""
    import copy
    import json
    from pathlib import Path

    from edgebench.report.compare import Tolerance, compare_results

    a = json.loads((Path(__file__).parent / "data" / "results.json").read_text())
    b = copy.deepcopy(a)
    dev_b = b["candidates"][0]["devices"]["local"]
    dev_b["latency_ms"] = dict(dev_b["latency_ms"], p50=dev_b["latency_ms"]["p50"] * 2, unstable=True)
    a["candidates"][0]["devices"]["local"]["latency_ms"]["unstable"] = False
    rows = {(r["candidate"], r["metric"]): r for r in compare_results(a, b, Tolerance())["rows"]}
    name = a["candidates"][0]["name"]
    assert rows[(name, "latency_ms.p50")]["regressed"] and rows[(name, "latency_ms.p50")]["unstable_in"] == ["B"]
    assert rows[(name, "clean_accuracy")]["unstable_in"] == []


def test_one_image_is_never_a_regression() -> None:
    """An accuracy moves in steps of one image of its set: a single image flipping is within
    noise however small the tolerance; two images beyond the tolerance are a regression."""
    a, b = load_fixture(), load_fixture()
    for e in (entry(a, "base"), entry(b, "base")):
        e["eval_count"] = 20  # one image = 5 pp
        e["robustness"][0]["count"] = 20
    entry(b, "base")["clean_accuracy"] -= 0.05
    entry(b, "base")["robustness"][0]["accuracy"] -= 0.10
    tight = Tolerance(accuracy_abs=0.0, robustness_abs=0.0)
    diff = compare_results(a, b, tight)
    clean = rows_for(diff, "base", "clean_accuracy")
    assert not clean["regressed"] and clean["min_effect"] == pytest.approx(0.05)
    robust = rows_for(diff, "base", "robust_accuracy[fgsm-linf-8]")
    assert robust["regressed"] and robust["min_effect"] == pytest.approx(0.05)
    # The robustness tolerance applies to robust accuracy, not the accuracy one.
    assert not rows_for(compare_results(a, b, Tolerance(robustness_abs=0.1)), "base", robust["metric"])["regressed"]
    assert rows_for(compare_results(a, b, Tolerance(accuracy_abs=0.1)), "base", robust["metric"])["regressed"]


def _recipe_changed_runs() -> tuple[dict, dict]:
    """Issue 23: pruned-50 rebuilt from ratio 0.5 / 1 epoch to 0.3 / 5 epochs, 66.8 % slower."""
    a, b = load_fixture(), load_fixture()
    prune = candidate(b, "pruned-50")["recipe"]["prune"]
    prune.update(ratio=0.3, finetune_epochs=5)
    entry(b, "pruned-50")["latency_ms"]["p50"] *= 1.668
    candidate(b, "int8")["recipe"]["prune"] = {"ratio": 0.5}  # a step added
    return a, b


def test_recipe_change_is_noted_beside_the_candidate() -> None:
    from edgebench.report.compare_view import compare_markdown, compare_view

    a, b = _recipe_changed_runs()
    diff = compare_results(a, b)
    assert diff["recipe_changes"] == [
        {
            "candidate": "pruned-50",
            "changes": [
                {"key": "prune.ratio", "a": 0.5, "b": 0.3},
                {"key": "prune.finetune_epochs", "a": 1, "b": 5},
            ],
        },
        {"candidate": "int8", "changes": [{"key": "prune", "a": None, "b": {"ratio": 0.5}}]},
    ]
    assert {r["candidate"] for r in diff["rows"] if r["recipe_changed"]} == {"pruned-50", "int8"}
    row = rows_for(diff, "pruned-50", "latency_ms.p50")
    assert row["regressed"] and row["recipe_changed"]
    note = "pruned-50: recipe changed between the runs (prune.ratio 0.5 -> 0.3, prune.finetune_epochs 1 -> 5)"
    terminal = " ".join(str(x) for x in compare_view(diff, show_all=False))
    assert note in terminal and "int8: recipe changed between the runs (prune not applied -> applied)" in terminal
    md = compare_markdown(diff, show_all=False)
    assert note.replace(">", "&gt;") in md  # escaped; renders as ->
    md_row = next(x for x in md.splitlines() if x.startswith("| pruned-50 | local | latency_ms.p50"))
    assert "recipe changed" in md_row and "❌ yes" in md_row
    # Unchanged recipes: no note.
    same = compare_results(load_fixture(), load_fixture())
    assert same["recipe_changes"] == [] and "recipe changed" not in compare_markdown(same, show_all=True)


def test_markdown_escapes_candidate_names() -> None:
    from edgebench.report.compare_view import compare_markdown

    a, b = load_fixture(), load_fixture()
    entry(b, EVIL_NAME)["clean_accuracy"] -= 0.2
    md = compare_markdown(compare_results(a, b), show_all=False)
    assert "<script>" not in md and "&lt;script&gt;" in md and "1 regression(s)" in md


def test_cli_recipe_note_in_json_and_markdown_and_one_format(tmp_path) -> None:  # noqa: ANN001
    from report_helpers import write_run
    from typer.testing import CliRunner

    from edgebench.cli.main import app, main

    a, b = _recipe_changed_runs()
    ra, rb = str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b))
    res = CliRunner().invoke(app, ["compare", ra, rb, "--json"])
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and data["recipe_changes"][0]["candidate"] == "pruned-50"
    res = CliRunner().invoke(app, ["compare", ra, rb, "--markdown"])
    assert res.exit_code == 1 and res.stdout.startswith("## edgebench compare")
    assert "prune.finetune_epochs 1 -&gt; 5" in res.stdout
    assert main(["compare", ra, rb, "--json", "--markdown"]) == 2
