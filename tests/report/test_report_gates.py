"""Budgets -> gates -> verdicts, every branch, on the hand-written fixture (which holds no
verdicts: :func:`judged` evaluates them once, as assembly does for a real run)."""

from __future__ import annotations

import pytest
from caveat_helpers import add_masked_whitebox, set_accuracy, spiky_latency
from report_helpers import EVIL_NAME, entry

from edgebench.errors import EXIT_INCONCLUSIVE, EXIT_NOT_READY, EXIT_OK, EXIT_UNMEASURED, EdgebenchError
from edgebench.report.gates import (
    base_candidate,
    budgets_of,
    exit_code,
    gate_outcome,
    judged,
    verdict_for,
    verdict_status,
    verdicts,
    with_verdicts,
)
from edgebench.report.model import verdict_table
from edgebench.results import SCHEMA, Gate, Results, validate_results
from edgebench.study.config import study_from_dict


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
    verdict = verdict_of(results, EVIL_NAME)
    assert (verdict["status"], verdict["gates"]) == ("READY", [])
    assert [c["kind"] for c in verdict["caveats"]] == ["unstable"]  # CV 37 %: said even with no latency gate


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


# --------------------------------------------------------------------------- unstable latency


def test_a_pass_on_an_unstable_latency_is_not_a_pass(results):
    lat = entry(results, "pruned-50")["latency_ms"] = spiky_latency(5)
    assert lat["unstable"] and lat["cv"] > 4 and lat["p99"] < 1.0 < lat["max"]  # the p99 alone would pass
    verdict = verdict_of(results, "pruned-50")
    g = {x["name"]: x for x in verdict["gates"]}["p99_latency_ms"]
    assert (g["value"], g["status"], g["unstable"]) == (lat["p99"], "unmeasured", True)
    assert "would not hold" in g["detail"] and "20.000 ms" in g["detail"]
    assert verdict["status"] == "UNMEASURED"
    assert [c["kind"] for c in verdict["caveats"]] == ["unstable"]
    # the identical next run: a few more spikes reach p99, a failure the measurement can prove
    lat = entry(results, "pruned-50")["latency_ms"] = spiky_latency(15)
    g = gates_of(results, "pruned-50")["p99_latency_ms"]
    assert (g["value"], g["status"], g["unstable"]) == (lat["p99"], "fail", True)
    assert status_of(results, "pruned-50") == "NOT READY"


def test_an_unstable_latency_passes_only_when_every_iteration_does(results):
    entry(results, "pruned-50")["latency_ms"] = spiky_latency(5)
    results["budgets"]["max_p99_latency_ms"] = 25.0  # above even the 20 ms spikes
    verdict = verdict_of(results, "pruned-50")
    g = {x["name"]: x for x in verdict["gates"]}["p99_latency_ms"]
    assert (g["status"], g["unstable"]) == ("pass", True) and "passes all the same" in g["detail"]
    assert verdict["status"] == "READY" and [c["label"] for c in verdict["caveats"]] == ["unstable latency"]
    # and the verdict table never shows it as a plain pass
    row = next(r for r in verdict_table(results, "local").rows if r[0].text == "pruned-50")
    cell = next(c for c in row if c.key == "p99_latency_ms")
    assert cell.text.endswith("pass (unstable)") and cell.status == "warn"
    assert next(c for c in row if c.key == "caveats").text == "unstable latency"


def test_a_stable_latency_has_no_unstable_flag(results):
    g = gates_of(results, "pruned-50")["p99_latency_ms"]
    assert "unstable" not in g and g["status"] == "pass"
    assert verdict_of(results, "pruned-50")["caveats"] == []


# --------------------------------------------------------------------------- accuracy floor, chance


def caveats_of(results: dict, name: str) -> list[tuple[str, str]]:
    return [(c["kind"], c["label"]) for c in verdict_of(results, name)["caveats"]]


def test_a_base_at_chance_is_flagged_on_every_verdict(results):
    set_accuracy(results, "base", 0.113)  # random weights: 11.3 % on 10 classes
    assert caveats_of(results, "base") == [("chance", "base at chance")]
    for name in ("pruned-50", "int8", EVIL_NAME):
        assert ("chance", "base at chance") in caveats_of(results, name)
    detail = verdict_of(results, "int8")["caveats"][-1]["detail"]
    assert "11.3%" in detail and "chance 10.0% (10 classes)" in detail and "min_accuracy" in detail
    # without an accuracy floor the gates still pass: the caveat is what says it
    assert status_of(results, "base") == "READY"


def test_min_accuracy_makes_a_chance_level_base_not_ready(results):
    set_accuracy(results, "base", 0.113)
    results["budgets"]["min_accuracy"] = 0.5
    g = gates_of(results, "base")["clean_accuracy"]
    assert (g["value"], g["threshold"], g["status"]) == (0.113, 0.5, "fail")
    assert status_of(results, "base") == "NOT READY"
    assert gates_of(results, "pruned-50")["clean_accuracy"]["status"] == "pass"  # 98.0 % >= 50 %


def test_min_accuracy_is_a_floor_judged_with_its_interval(results):
    """98.0 % on 256 images has the Wilson interval 95.5 % .. 99.2 %: above a 95 % floor, under a
    99.5 % one, and undecided at 98 % (the value on the floor: no number of images decides it)."""
    results["budgets"]["min_accuracy"] = 0.95
    assert gates_of(results, "pruned-50")["clean_accuracy"]["status"] == "pass"
    results["budgets"]["min_accuracy"] = 0.995
    assert gates_of(results, "pruned-50")["clean_accuracy"]["status"] == "fail"
    results["budgets"]["min_accuracy"] = 0.98
    g = gates_of(results, "pruned-50")["clean_accuracy"]
    assert (
        g["status"] == "inconclusive" and g["images"] == 256 and g["ci95"] == pytest.approx([0.9551, 0.9916], abs=1e-4)
    )
    assert "images_to_decide" not in g and "sits on the budget" in g["detail"]
    assert status_of(results, "pruned-50") == "INCONCLUSIVE"
    results["budgets"]["min_accuracy"] = 0.981
    set_accuracy(results, "pruned-50", None)
    assert gates_of(results, "pruned-50")["clean_accuracy"]["status"] == "unmeasured"
    header = verdict_table(results, "local").columns
    assert "clean accuracy \u2265 98.1%" in header and "p99 latency \u2264 1.000 ms" in header


def test_a_candidate_at_chance_is_flagged_itself(results):
    set_accuracy(results, "int8", 0.09)
    assert caveats_of(results, "int8") == [("chance", "at chance")]
    assert all(k != "chance" for k, _ in caveats_of(results, "pruned-50"))


@pytest.mark.parametrize(
    "accuracy, ci, flagged",
    [
        (0.3, True, False),  # well above chance: the interval excludes 10 %
        (0.02, True, True),  # below chance, interval and all
        (0.113, False, True),  # no interval stored: Wilson from eval_count
        (0.988, True, False),
    ],
)
def test_chance_is_judged_on_the_interval(results, accuracy, ci, flagged):
    set_accuracy(results, "pruned-50", accuracy, ci)
    assert (("chance", "at chance") in caveats_of(results, "pruned-50")) is flagged


def test_min_accuracy_budget_is_a_fraction(results):
    results["budgets"]["min_accuracy"] = 90
    with pytest.raises(EdgebenchError, match=r"budget min_accuracy: expected a number in \[0, 1\] or null, found 90"):
        judged(results)
    with pytest.raises(EdgebenchError, match=r"budgets\.min_accuracy: expected a number in \[0, 1\] or null"):
        study_from_dict({"budgets": {"min_accuracy": 90}})
    assert study_from_dict({"budgets": {"min_accuracy": 0.9}}).budgets.min_accuracy == 0.9
    assert study_from_dict({}).budgets.min_accuracy is None  # no floor unless asked


# --------------------------------------------------------------------------- sanity checks


def test_failed_sanity_checks_are_caveats(results):
    add_masked_whitebox(results, "pruned-50")
    warned = [c["check"] for c in entry(results, "pruned-50")["sanity"] if c["status"] == "warn"]
    assert warned == ["unbounded_eps"]
    verdict = verdict_of(results, "pruned-50")
    assert [(c["kind"], c["label"]) for c in verdict["caveats"]] == [
        ("sanity", "accuracy above 5% at eps 255/255: possible gradient masking (unbounded_eps)")
    ]
    assert "0.406" in verdict["caveats"][0]["detail"]
    assert verdict["status"] == "READY"  # a caveat changes no verdict: it is shown beside it
    assert verdict_of(results, "base")["caveats"] == []


# --------------------------------------------------------------------------- stored verdicts, exit codes


def test_verdicts_from_before_caveats_are_judged_again(results):
    """A results.json assembled before verdicts carried caveats gets them, and the current gates."""
    entry(results, "pruned-50")["latency_ms"] = spiky_latency(5)
    assembled = with_verdicts(validate_results(results)).dump()
    for cand in assembled["candidates"]:
        for e in cand["devices"].values():
            del e["verdict"]["caveats"]
            for g in e["verdict"]["gates"]:
                g.pop("unstable", None)
                g["status"] = "pass" if g["name"] == "p99_latency_ms" and g["status"] == "unmeasured" else g["status"]
    assert stored(judged(assembled), "pruned-50") == "UNMEASURED"
    assert [c["kind"] for c in verdicts(assembled)[1]["caveats"]] == ["unstable"]


def test_nothing_measured_fails_the_default_gate(results):
    for c in results["candidates"]:
        c["devices"] = {}  # never measured on the run's device
    assert {v["status"] for v in verdicts(results)} == {"UNMEASURED"}
    assert exit_code(results) == EXIT_UNMEASURED
    assert gate_outcome(results, "not-ready")[1].startswith("every verdict is UNMEASURED")
    assert exit_code(results, "unmeasured") == EXIT_UNMEASURED
    assert exit_code(results, "never") == EXIT_OK


def _worst_row(eps: int, robust: float, base: float, pairs: dict | None, count: int = 256) -> dict:
    return {
        "id": f"worst-linf-{eps}", "norm": "linf", "eps": eps / 255, "robust_accuracy": robust,
        "robust_accuracy_ci95": None, "count": count, "images": f"evaluation images 0-{count - 1}",
        "clean_accuracy": 0.98, "attacks": [f"pgd-linf-{eps}"], "by_setting": {"transfer": robust}, "note": "",
        "base_robust_accuracy": base, "pairs": pairs,
    }  # fmt: skip


def test_robustness_gate_judges_the_per_example_worst_case(results):
    """With worst-case rows (an image counts only when it survives every attack at an epsilon),
    the robustness gate judges them: an ensemble that breaks more images than any single attack
    fails a candidate that every per-attack row would pass."""
    per_attack = gates_of(results, "pruned-50")["robustness_drop"]
    assert per_attack["status"] == "pass" and per_attack["value"] < 0.05  # each attack alone: within 5 pp
    # 128 of 256 images survive every attack on base, 102 on pruned-50; 26 more broken, none fewer
    entry(results, "pruned-50")["robust_accuracy"] = [
        _worst_row(8, 102 / 256, 128 / 256, {"both": 102, "base_only": 26, "cand_only": 0, "neither": 128}),
        _worst_row(2, 238 / 256, 240 / 256, {"both": 238, "base_only": 2, "cand_only": 0, "neither": 16}),
    ]
    g = gates_of(results, "pruned-50")["robustness_drop"]
    assert g["value"] == pytest.approx(26 / 256) and g["status"] == "fail"
    assert g["ci95"][0] > 0.05  # the whole paired interval is over the 5 pp budget
    assert g["detail"].startswith("worst case at worst-linf-8: base 50.0% vs 39.8% on 256 images")
    assert status_of(results, "pruned-50") == "NOT READY"


def test_three_verdict_states_from_paired_intervals(results):
    """READY only when the whole interval of the drop is within budget, NOT READY when all of it is
    over, INCONCLUSIVE otherwise, with about how many images would decide it."""
    e = entry(results, "pruned-50")
    # clean: base right on 253, pruned-50 on 251; 2 images changed outcome, none the other way
    e["clean_pairs"] = {"both": 251, "base_only": 2, "cand_only": 0, "neither": 3}
    g = gates_of(results, "pruned-50")["accuracy_drop"]
    assert g["status"] == "inconclusive" and g["images"] == 256
    lo, hi = g["ci95"]
    assert lo < 0.0078 < 0.02 < hi  # 0.8 pp drop, interval reaching past the 2 pp budget
    assert g["images_to_decide"] > 256 and f"about {g['images_to_decide']} images would decide it" in g["detail"]
    assert status_of(results, "pruned-50") == "INCONCLUSIVE"
    results["budgets"]["max_accuracy_drop"] = 0.03
    assert gates_of(results, "pruned-50")["accuracy_drop"]["status"] == "pass"
    assert status_of(results, "pruned-50") == "READY"
    e["clean_pairs"] = {"both": 241, "base_only": 12, "cand_only": 0, "neither": 3}
    e["clean_accuracy"] = 241 / 256
    results["budgets"]["max_accuracy_drop"] = 0.01
    assert gates_of(results, "pruned-50")["accuracy_drop"]["status"] == "fail"  # 4.7 pp, all of it over 1 pp


def test_fail_on_inconclusive(results):
    entry(results, "pruned-50")["clean_pairs"] = {"both": 251, "base_only": 2, "cand_only": 0, "neither": 3}
    for name in ("int8", EVIL_NAME):  # leave pruned-50 the only undecided verdict that is not NOT READY
        results["candidates"] = [c for c in results["candidates"] if c["name"] != name]
    assert gate_outcome(results, "not-ready") == (EXIT_OK, "")
    code, why = gate_outcome(results, "inconclusive")
    assert code == EXIT_INCONCLUSIVE and "1 verdict(s) INCONCLUSIVE" in why
    assert gate_outcome(results, "unmeasured")[0] == EXIT_INCONCLUSIVE
