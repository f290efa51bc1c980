"""Budgets -> gates -> verdicts, every branch, on the hand-written fixture (which holds no
verdicts: :func:`judged` evaluates them once, as assembly does for a real run)."""

from __future__ import annotations

import pytest
from report_helpers import EVIL_NAME, entry

from edgebench.errors import EXIT_NOT_READY, EXIT_OK, EXIT_UNMEASURED, EdgebenchError
from edgebench.report.gates import (
    base_candidate,
    budgets_of,
    exit_code,
    judged,
    verdict_for,
    verdict_status,
    verdicts,
    with_verdicts,
)
from edgebench.results import SCHEMA, Gate, Results, validate_results


def verdict_of(results: dict, name: str, device: str = "local") -> dict:
    typed = validate_results(results)
    cand = next(c for c in typed.candidates if c.name == name)
    return verdict_for(typed, cand, device).model_dump(mode="json", exclude_unset=True)


def gates_of(results: dict, name: str, device: str = "local") -> dict[str, dict]:
    return {g["name"]: g for g in verdict_of(results, name, device)["gates"]}


def status_of(results: dict, name: str, device: str = "local") -> str:
    return verdict_of(results, name, device)["status"]


def stored(results: Results, name: str, device: str = "local") -> str:
    verdict = next(c for c in results.candidates if c.name == name).devices[device].verdict
    assert verdict is not None
    return verdict.status


def test_fixture_verdicts(results):
    typed = validate_results(results)
    out = with_verdicts(typed)
    assert out is not typed and all(e.verdict is None for c in typed.candidates for e in c.devices.values())
    got = {c.name: stored(out, c.name) for c in out.candidates}
    assert got == {"base": "READY", "pruned-50": "READY", "int8": "UNMEASURED", EVIL_NAME: "NOT READY"}
    dumped = out.dump()  # stored where results.json has always held them
    assert dumped["candidates"][3]["devices"]["local"]["verdict"]["status"] == "NOT READY"
    assert validate_results(dumped) == out


def test_stored_verdicts_are_read_not_evaluated_again(results):
    """A results.json as assembled holds its verdicts: the report, verdicts() and the exit code
    read them (here one is edited by hand to show it is the stored one that is read)."""
    assembled = with_verdicts(validate_results(results)).dump()
    assembled["candidates"][3]["devices"]["local"]["verdict"]["status"] = "READY"
    typed = judged(assembled)
    assert stored(typed, EVIL_NAME) == "READY"
    assert {v["status"] for v in verdicts(typed)} == {"READY", "UNMEASURED"}
    assert exit_code(assembled, "not-ready") == EXIT_OK
    assert judged(typed) is typed  # nothing to evaluate


def test_verdicts_judged_against_other_budgets_are_evaluated_again(results):
    """Budgets edited in results.json after assembly: the verdicts follow the budgets it holds."""
    assembled = with_verdicts(validate_results(results)).dump()
    assert stored(judged(assembled), "base") == "READY"
    assembled["budgets"]["max_p99_latency_ms"] = 0.1  # base p99 0.186 ms
    typed = judged(assembled)
    verdict = typed.candidates[0].devices["local"].verdict
    assert verdict is not None and verdict.status == "NOT READY"
    assert [(g.threshold, g.status) for g in verdict.gates if g.name == "p99_latency_ms"] == [(0.1, "fail")]
    assembled["budgets"]["max_p99_latency_ms"] = None
    verdict = judged(assembled).candidates[0].devices["local"].verdict
    assert verdict is not None and verdict.status == "READY"
    assert [g.name for g in verdict.gates] == ["peak_memory_mb", "accuracy_drop", "robustness_drop"]


def test_gate_values_are_the_measured_numbers(results):
    g = gates_of(results, "pruned-50")
    e = entry(results, "pruned-50")
    base = entry(results, "base")
    assert g["p99_latency_ms"]["value"] == e["latency_ms"]["p99"]
    assert g["p99_latency_ms"]["threshold"] == 1.0
    assert g["peak_memory_mb"]["value"] == e["memory_mb"]["peak_rss"]
    assert g["accuracy_drop"]["value"] == pytest.approx(base["clean_accuracy"] - e["clean_accuracy"])
    drops = {r["id"]: b["accuracy"] - r["accuracy"] for r, b in zip(e["robustness"], base["robustness"])}
    assert g["robustness_drop"]["value"] == pytest.approx(max(drops.values()))
    assert g["robustness_drop"]["detail"] == "worst: " + max(drops, key=drops.get)
    assert all(x["status"] == "pass" for x in g.values())


def test_base_own_drops_are_zero(results):
    g = gates_of(results, "base")
    assert g["accuracy_drop"]["value"] == 0.0
    assert g["robustness_drop"]["value"] == 0.0


def test_failure_wins_over_unmeasured(results):
    g = gates_of(results, EVIL_NAME)
    assert g["p99_latency_ms"]["status"] == "fail"
    assert g["peak_memory_mb"] == {"name": "peak_memory_mb", "value": None, "threshold": 250.0, "status": "unmeasured"}
    assert status_of(results, EVIL_NAME) == "NOT READY"


def test_unmeasured_latency_never_passes(results):
    entry(results, "pruned-50")["latency_ms"] = None  # a latency is all its statistics or null
    g = gates_of(results, "pruned-50")
    assert g["p99_latency_ms"]["status"] == "unmeasured"
    assert status_of(results, "pruned-50") == "UNMEASURED"


def test_single_failing_gate_makes_not_ready(results):
    entry(results, "pruned-50")["latency_ms"]["p99"] = 1.5
    assert gates_of(results, "pruned-50")["p99_latency_ms"]["status"] == "fail"
    assert status_of(results, "pruned-50") == "NOT READY"


def test_value_equal_to_budget_passes(results):
    entry(results, "base")["clean_accuracy"] = 0.98
    entry(results, "pruned-50")["clean_accuracy"] = 0.96  # 0.98 - 0.96 = 0.020000000000000018
    g = gates_of(results, "pruned-50")["accuracy_drop"]
    assert g["value"] > 0.02 and g["status"] == "pass"
    entry(results, "pruned-50")["clean_accuracy"] = 0.9599
    assert gates_of(results, "pruned-50")["accuracy_drop"]["status"] == "fail"


def test_memory_never_falls_back_to_ru_maxrss(results):
    """ru_maxrss is inherited across fork on Linux (the host's high-water mark, not the agent's):
    without the sampler's peak the gate is unmeasured, never passed on the parent's number."""
    mem = entry(results, "pruned-50")["memory_mb"]
    mem["peak_rss"] = None
    assert mem["ru_maxrss"] is not None
    g = gates_of(results, "pruned-50")["peak_memory_mb"]
    assert g["value"] is None and g["status"] == "unmeasured"
    mem["ru_maxrss"] = 300.0  # over the 250 MB budget: still not the agent's number
    assert gates_of(results, "pruned-50")["peak_memory_mb"]["status"] == "unmeasured"
    mem["peak_rss"] = 300.0
    assert gates_of(results, "pruned-50")["peak_memory_mb"]["status"] == "fail"


def test_accuracy_drop_unmeasured_without_base_accuracy(results):
    entry(results, "base")["clean_accuracy"] = None
    for name in ("base", "pruned-50"):
        g = gates_of(results, name)["accuracy_drop"]
        assert g["value"] is None and g["status"] == "unmeasured"


def test_no_base_candidate(results):
    results["candidates"] = [c for c in results["candidates"] if c["name"] != "base"]
    assert base_candidate(validate_results(results)) is None
    g = gates_of(results, "pruned-50")
    assert g["accuracy_drop"]["status"] == "unmeasured"
    assert g["accuracy_drop"]["detail"] == "no base candidate to compare with"
    assert g["robustness_drop"]["status"] == "unmeasured"
    assert status_of(results, "pruned-50") == "UNMEASURED"


def test_base_found_by_recipe_when_not_named_base(results):
    next(c for c in results["candidates"] if c["name"] == "base")["name"] = "reference"
    assert base_candidate(validate_results(results)).name == "reference"  # type: ignore[union-attr]
    assert gates_of(results, "pruned-50")["accuracy_drop"]["value"] == pytest.approx(0.988 - 0.980)


def test_partial_robustness_lower_bound_cannot_pass(results):
    # int8 lacks pgd-l2-1.0; the measured drops are small -> unmeasured, not pass.
    g = gates_of(results, "int8")["robustness_drop"]
    assert g["status"] == "unmeasured"
    assert "pgd-l2-1.0" in g["detail"]
    assert g["value"] == pytest.approx(0.004)


def test_partial_robustness_can_prove_a_failure(results):
    rows = {r["id"]: r for r in entry(results, "int8")["robustness"]}
    rows["pgd-linf-8"]["accuracy"] = 0.30  # base 0.512 -> drop 0.212 > 0.05
    g = gates_of(results, "int8")["robustness_drop"]
    assert g["status"] == "fail" and g["value"] == pytest.approx(0.212)
    assert status_of(results, "int8") == "NOT READY"


def test_robustness_row_missing_entirely_is_unmeasured(results):
    e = entry(results, "pruned-50")
    e["robustness"] = [r for r in e["robustness"] if r["id"] != "fgsm-linf-8"]
    g = gates_of(results, "pruned-50")["robustness_drop"]
    assert g["status"] == "unmeasured" and "fgsm-linf-8" in g["detail"]


def test_robustness_without_any_attack_is_unmeasured(results):
    results["attacks"] = []
    for c in results["candidates"]:
        c["devices"]["local"]["robustness"] = []
    g = gates_of(results, "pruned-50")["robustness_drop"]
    assert g["value"] is None and g["status"] == "unmeasured"


def test_robustness_ids_from_base_when_attacks_missing(results):
    results["attacks"] = []
    g = gates_of(results, "int8")["robustness_drop"]
    assert g["status"] == "unmeasured" and "pgd-l2-1.0" in g["detail"]


def test_null_budget_means_no_gate(results):
    results["budgets"]["max_peak_memory_mb"] = None
    names = [g["name"] for g in verdict_of(results, EVIL_NAME)["gates"]]
    assert names == ["p99_latency_ms", "accuracy_drop", "robustness_drop"]


def test_no_budgets_is_ready_with_no_gates(results):
    results["budgets"] = {}
    results["study"]["budgets"] = None
    assert verdict_of(results, EVIL_NAME) == {"status": "READY", "gates": []}


def test_budgets_are_the_ones_results_holds(results):
    results["budgets"] = {"max_p99_latency_ms": 0.1}
    assert budgets_of(validate_results(results))["max_p99_latency_ms"] == 0.1
    assert status_of(results, "base") == "NOT READY"  # p99 0.186 > 0.1


@pytest.mark.parametrize(
    "budgets, needle",
    [
        ({"max_latency": 1.0}, "unknown budget 'max_latency'"),
        ({"max_p99_latency_ms": -1}, "expected a number >= 0"),
        ({"max_p99_latency_ms": "fast"}, "budgets.max_p99_latency_ms: expected a number, found 'fast'"),
        ({"max_p99_latency_ms": True}, "budgets.max_p99_latency_ms: expected a number, found true"),
        ([1, 2], "budgets: expected a mapping"),
    ],
)
def test_bad_budgets_are_user_errors(results, budgets, needle):
    results["budgets"] = budgets
    with pytest.raises(EdgebenchError, match=needle.replace("(", r"\(")):
        judged(results)


def test_bad_results_are_user_errors():
    with pytest.raises(EdgebenchError, match="run_id: expected a value, found nothing"):
        judged({"schema": SCHEMA})
    with pytest.raises(EdgebenchError, match="JSON object"):
        judged([])  # type: ignore[arg-type]


def test_device_never_measured_gets_an_unmeasured_verdict(results):
    results["devices"]["jetson"] = {"name": "jetson", "kind": "ssh", "profile": {}}
    typed = judged(results)
    for c in typed.candidates:
        v = c.devices["jetson"].verdict
        assert v is not None and v.status == "UNMEASURED"
        assert {g.status for g in v.gates} == {"unmeasured"}
    assert len(verdicts(typed)) == 8


def test_boolean_is_not_a_measurement(results):
    entry(results, "base")["latency_ms"]["p99"] = True
    with pytest.raises(EdgebenchError, match=r"latency_ms\.p99: expected a number, found true"):
        judged(results)


def test_verdict_status_rules():
    def gates(*statuses: str) -> list[Gate]:
        return [Gate.model_validate({"name": "g", "value": None, "threshold": 1, "status": s}) for s in statuses]

    assert verdict_status([]) == "READY"
    assert verdict_status(gates("pass", "unmeasured")) == "UNMEASURED"
    assert verdict_status(gates("unmeasured", "fail")) == "NOT READY"
    assert verdict_status(gates("pass")) == "READY"


def test_exit_codes(results):
    assert exit_code(results, "never") == EXIT_OK
    assert exit_code(results, "not-ready") == EXIT_NOT_READY
    assert exit_code(results, "unmeasured") == EXIT_NOT_READY
    results["candidates"] = [c for c in results["candidates"] if c["name"] != EVIL_NAME]
    assert exit_code(results, "not-ready") == EXIT_OK
    assert exit_code(results, "unmeasured") == EXIT_UNMEASURED
    results["candidates"] = [c for c in results["candidates"] if c["name"] != "int8"]
    assert exit_code(results, "unmeasured") == EXIT_OK
    with pytest.raises(EdgebenchError, match="--fail-on"):
        exit_code(results, "sometimes")


def test_exit_code_judges_a_file_without_verdicts(results):
    # A hand-written results.json holds no verdicts: an absent verdict is never read as READY.
    assert exit_code(results, "not-ready") == EXIT_NOT_READY
