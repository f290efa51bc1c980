"""``edgebench search`` end to end on a real tiny study (LeNet-5 on the MNIST subset, the local
CPU): Optuna trials built and screened on the host, the best measured, the Pareto front and the
recommendation in results.json and the report; then resume, more trials, an impossible budget,
and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE

from edgebench.search.record import pareto_ranks
from edgebench.search.run import JOURNAL, select_survivors

STUDY = {
    "name": "search",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": ["base"],
    "attacks": {"samples": 16, "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": {**TINY_PROFILE, "profile_ops": False},
    "budgets": {
        "max_p99_latency_ms": 1000.0,
        "max_peak_memory_mb": 4096,
        "max_accuracy_drop": 0.5,
        "max_robustness_drop": 0.5,
    },
    "search": {
        "trials": 3,
        "keep": 0.5,
        "space": {"prune_ratio": [0.1, 0.6], "criterion": ["l1", "l2"], "quantize": ["ort-cpu", "none"], "epochs": [0]},
    },
}


def _search(study: dict, folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    path = folder / f"study-{len(list(folder.glob('study-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(study))
    return subprocess.run(
        [sys.executable, "-m", "edgebench", "search", str(path), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )


def _stamps(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (out / "measurements").glob("*/*/*.json")}


def _journal_trials(out: Path, study: str = "search") -> int:
    """Trials in the run folder's Optuna journal (read back with Optuna itself)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    return len(optuna.load_study(study_name=f"edgebench-{study}", storage=storage).trials)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("search")
    out = folder / "run"
    res = _search(STUDY, folder, out)
    assert res.returncode == 0, res.stderr[-3000:]
    return folder, out


@pytest.mark.slow
def test_search_builds_screens_measures_and_recommends(searched: tuple[Path, Path]) -> None:
    _, out = searched
    results = json.loads((out / "results.json").read_text())
    record = results["search"]
    trials = record["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    names = {c["name"] for c in results["candidates"]}
    assert {t["name"] for t in trials} <= names and "base" in names  # every trial is a candidate
    for t in trials:
        assert t["name"].startswith(f"t{t['number']:03d}-p")
        assert 0.1 <= t["params"]["prune_ratio"] <= 0.6 and t["params"]["criterion"] in ("l1", "l2")
        assert 0.0 <= t["screen"]["clean_accuracy"] <= 1.0 and t["screen"]["macs"] > 0
    # successive halving: ceil(0.5 * 3) = 2 trials measured on the device, the third only screened
    measured = [t["name"] for t in trials if t["measured"]]
    assert sorted(measured) == sorted(record["survivors"]) and len(measured) == 2
    assert not list((out / "measurements").glob(f"{next(t['name'] for t in trials if not t['measured'])}/*"))
    # the recommendation: the fastest READY candidate measured on the device, with its margins
    by_name = {c["name"]: c["devices"]["local"] for c in results["candidates"]}
    ready = {n: e["latency_ms"]["p99"] for n, e in by_name.items() if e["verdict"]["status"] == "READY"}
    rec = record["recommended"]["local"]
    assert rec["candidate"] == min(ready, key=ready.get)
    assert rec["margins"]["p99_latency_ms"] == pytest.approx(1000.0 - ready[rec["candidate"]])
    # the Pareto front: measured candidates no other one beats on every objective
    front = {p["candidate"] for p in record["pareto"]["local"]}
    assert rec["candidate"] in front and front <= set(measured) | {"base"}
    md = (out / "report.md").read_text()
    assert "Pareto front on local" in md and f"local: recommended {rec['candidate']}" in md
    html = (out / "report.html").read_text()
    assert "Pareto front on local" in html and f"recommended {rec['candidate']}" in html


@pytest.mark.slow
def test_search_resumes_and_adds_only_missing_trials(searched: tuple[Path, Path]) -> None:
    folder, out = searched
    assert _journal_trials(out) == 3
    stamps = _stamps(out)
    again = _search(STUDY, folder, out, "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _journal_trials(out) == 3  # no trial asked again
    assert _stamps(out) == stamps  # nothing measured again
    more = dict(STUDY, search=dict(STUDY["search"], trials=4))
    grown = _search(more, folder, out, "--quiet")
    assert grown.returncode == 0, grown.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())["search"]
    assert [t["number"] for t in record["trials"]] == [0, 1, 2, 3] and _journal_trials(out) == 4
    assert all(_stamps(out)[p] == s for p, s in stamps.items())  # earlier measurements kept as they were


@pytest.mark.slow
def test_impossible_budget_reports_the_closest(searched: tuple[Path, Path]) -> None:
    folder, out = searched
    stamps = _stamps(out)
    strict = dict(STUDY, budgets=dict(STUDY["budgets"], max_p99_latency_ms=0.000001))
    res = _search(strict, folder, out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _stamps(out) == stamps  # a budget change re-judges, it does not re-measure
    results = json.loads((out / "results.json").read_text())
    record = results["search"]
    assert record["recommended"]["local"] is None
    closest = record["closest"]["local"]
    assert closest["misses"] == ["p99_latency_ms"]
    fastest = min(
        (c for c in results["candidates"] if c["devices"]["local"].get("latency_ms")),
        key=lambda c: c["devices"]["local"]["latency_ms"]["p99"],
    )
    assert closest["candidate"] == fastest["name"]
    line = f"local: no candidate meets the budgets; closest is {closest['candidate']}"
    assert line in " ".join(res.stdout.split()) and line in (out / "report.md").read_text()


# No trial can meet the accuracy budget (30 % pruned, not fine-tuned, against max_accuracy_drop
# 0.01) and no candidates are listed; 5 trials over 4 recipes, so Optuna repeats at least one.
INFEASIBLE = {
    **{k: v for k, v in STUDY.items() if k != "candidates"},
    "name": "infeasible",
    "model": dict(TINY_MODEL, train_epochs=3),
    "budgets": dict(STUDY["budgets"], max_accuracy_drop=0.01, max_robustness_drop=1.0),
    "search": {
        "trials": 5,
        "keep": 0.5,
        "space": {"prune_ratio": 0.3, "criterion": ["l1", "random"], "quantize": ["ort-cpu", "none"], "epochs": [0]},
    },
}


@pytest.mark.slow
def test_search_without_feasible_trial_measures_least_violating_and_reuses_repeats(tmp_path: Path) -> None:
    from edgebench.search.record import violation

    out = tmp_path / "run"
    res = _search(INFEASIBLE, tmp_path, out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Warning" not in res.stderr, res.stderr  # Optuna's FutureWarning/ExperimentalWarning stay ours
    results = json.loads((out / "results.json").read_text())
    record = results["search"]
    trials = record["trials"]
    assert len(trials) == 5 and not any(t["feasible"] for t in trials), trials
    # without candidates: base and the trials only (no implicit int8 needing 128 calibration images)
    distinct = list(dict.fromkeys(t["name"] for t in trials))
    assert [c["name"] for c in results["candidates"]] == ["base", *distinct]
    # a repeated recipe names the first trial's candidate: neither built nor screened again
    repeats = [t for t in trials if not t["name"].startswith(f"t{t['number']:03d}-")]
    assert repeats and len(distinct) == 5 - len(repeats)
    for t in repeats:
        first = next(f for f in trials if f["name"] == t["name"])
        assert first["number"] < t["number"] and first["params"] == t["params"] and first["screen"] == t["screen"]
        assert not list((out / "artifacts").glob(f"t{t['number']:03d}-*"))
    assert _journal_trials(out, "infeasible") == 5
    # measured: the least violating distinct trials (Optuna's order for infeasible trials)
    assert len(distinct) >= 2 and len(record["survivors"]) == -(-len(distinct) // 2)
    by_name = {t["name"]: t for t in reversed(trials)}
    left = [n for n in distinct if n not in record["survivors"]]
    assert max(violation(by_name[n]) for n in record["survivors"]) <= min(violation(by_name[n]) for n in left)
    assert {t["name"] for t in trials if t["measured"]} == set(record["survivors"])
    # base is READY; no trial is, so the closest one is named: the measured trial missing least
    assert record["recommended"]["local"]["candidate"] == "base"
    closest = record["closest"]["local"]
    assert (
        closest is not None and closest["candidate"] in record["survivors"] and closest["misses"] == ["accuracy_drop"]
    )
    device_acc = {c["name"]: c["devices"]["local"]["clean_accuracy"] for c in results["candidates"]}
    assert device_acc[closest["candidate"]] == max(device_acc[n] for n in record["survivors"])
    flat = " ".join(res.stdout.split())  # the recommendation is a result: stdout
    assert (
        "local: recommended base (" in flat and f"no trial meets the budgets: closest is {closest['candidate']}" in flat
    )
    # the Search section opens with the recommendation, before the Pareto front and the trials
    md = (out / "report.md").read_text()
    search = md[md.index("## Search") :]
    assert search.index("### Recommendation") < search.index("### Pareto front on local") < search.index("### Trials")
    assert search.split("###")[1].startswith(" Recommendation") and closest["candidate"] in search.split("###")[1]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"trials": 3, "space": {}}, "search.space: expected a non-empty mapping"),
        ({"trials": 3, "space": {"criterion": []}}, "search.space.criterion: expected a non-empty list"),
        ({"trials": 0, "space": {"epochs": [0, 1]}}, "search.trials: expected a value >= 1, found 0"),
        ({"space": {"quantize": ["int4"]}}, "search.space.quantize: unknown ['int4']"),
    ],
)
def test_bad_search_section_is_one_line(tmp_path: Path, search: dict, expected: str) -> None:
    res = _search(dict(STUDY, search=search), tmp_path, tmp_path / "run")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.stderr
    assert not (tmp_path / "run").exists()


def test_study_without_search_section_is_one_line(tmp_path: Path) -> None:
    study = {k: v for k, v in STUDY.items() if k != "search"}
    res = _search(study, tmp_path, tmp_path / "run")
    assert res.returncode == 2 and "expected a 'search:' section" in res.stderr.strip().splitlines()[-1]


def _trial(n: int, macs: int, acc: float, rob: float, cons: tuple[float, ...] = (0.0,), name: str = "") -> dict:
    screen = {"macs": macs, "clean_accuracy": acc, "robust_accuracy": rob, "size_bytes": 1000}
    feasible = all(c <= 0 for c in cons)
    return {"number": n, "name": name or f"t{n}", "screen": screen, "constraints": list(cons), "feasible": feasible}


def test_survivors_are_feasible_non_dominated_first() -> None:
    trials = [
        _trial(0, 100, 0.9, 0.5),
        _trial(1, 50, 0.8, 0.4),
        _trial(2, 100, 0.8, 0.4),
        _trial(3, 10, 0.99, 0.9, cons=(0.01,)),
    ]
    assert pareto_ranks([[100, -0.9], [50, -0.8], [100, -0.8]]) == [0, 0, 1]
    assert select_survivors(trials, 0.5) == ["t1", "t0"]  # t3 dominates all but breaks a budget
    assert select_survivors(trials, 0.01) == ["t1"]
    assert select_survivors(trials, 1.0) == ["t1", "t0", "t2", "t3"]


def test_survivors_without_feasible_trial_are_the_least_violating() -> None:
    """The issue's run: no trial feasible; t000-t002 have better objectives (fewer MACs, t000 even
    dominating) but violate by up to 0.55, t003 (accuracy 0.931 against 0.975) by 0.044 only: as
    Optuna's constrained NSGA-II/TPE rank them, t003 comes first, then the next least violating."""
    trials = [
        _trial(0, 10, 0.40, 0.30, cons=(0.525, 0.2)),
        _trial(1, 20, 0.30, 0.20, cons=(0.55, 0.3)),
        _trial(2, 30, 0.38, 0.35, cons=(0.545, 0.0)),
        _trial(3, 90, 0.931, 0.5, cons=(0.044, -0.1)),
    ]
    assert select_survivors(trials, 0.5) == ["t3", "t2"]  # violations 0.044, 0.545 (t000: 0.725)
    assert select_survivors(trials, 0.25) == ["t3"]


def test_survivors_count_a_repeated_recipe_once() -> None:
    """A trial repeating an earlier recipe names the earlier candidate: measured once, and the
    share is of the distinct candidates."""
    trials = [_trial(0, 50, 0.9, 0.5), _trial(1, 50, 0.9, 0.5, name="t0"), _trial(2, 100, 0.8, 0.4)]
    assert select_survivors(trials, 0.5) == ["t0"]
    assert select_survivors(trials, 1.0) == ["t0", "t2"]


def test_search_study_without_candidates_holds_base_only() -> None:
    """Without ``candidates:`` a search study lists base alone (no implicit int8 whose 128
    calibration images exceed a small calib_count); a plain study keeps the default lineup."""
    from edgebench.study.config import DEFAULT_CANDIDATES, study_from_dict

    study = {k: v for k, v in STUDY.items() if k != "candidates"}
    assert study["data"]["calib_count"] < 128
    assert [c.name for c in study_from_dict(study).candidates] == ["base"]
    plain = {k: v for k, v in study.items() if k != "search"}
    plain["data"] = dict(plain["data"], calib_count=128)
    assert [c.name for c in study_from_dict(plain).candidates] == list(DEFAULT_CANDIDATES)


def test_help_names_the_objectives_the_readme_names() -> None:
    """``search --help`` and the README's search section list the same objectives, the ones
    Optuna is given (:data:`OBJECTIVES`)."""
    import re

    from edgebench.search.run import OBJECTIVES

    labels = {"macs": "MACs", "clean_accuracy": "clean accuracy", "robust_accuracy": "robust accuracy"}
    labels["size_bytes"] = "artifact size"
    expected = [labels[k] for k, _ in OBJECTIVES]
    res = subprocess.run([sys.executable, "-m", "edgebench", "search", "--help"], capture_output=True, text=True)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Search: which compression to ship") :]
    for text in (res.stdout, section):
        flat = " ".join(text.replace("│", " ").split())
        found = re.search(r"multi-objective on the host: ([^;]*);", flat)
        assert found is not None and found.group(1).split(", ") == expected, flat[:600]


@pytest.mark.slow
def test_search_killed_mid_trial_resumes(tmp_path: Path) -> None:
    """A search killed while building its trials: the re-run keeps the finished trials, closes the
    interrupted one as failed, asks new ones up to ``trials``, and measures only complete trials."""
    import signal
    import time

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    args = [sys.executable, "-m", "edgebench", "search", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if list((out / "artifacts").glob("t001-*")):  # trial 0 told; trial 1 being exported
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    done = json.loads((out / "search" / "trials.json").read_text())
    stamps = {t["name"]: (out / "artifacts" / f"{t['name']}.onnx").stat().st_mtime_ns for t in done}
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert again.returncode == 0, again.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    trials = results["search"]["trials"]
    assert len(trials) == 3 and {t["name"] for t in done} <= {t["name"] for t in trials}
    assert not any(t["name"].startswith("t001-") for t in trials)  # the interrupted trial: failed, replaced
    for name, stamp in stamps.items():  # finished trials kept, not rebuilt
        assert (out / "artifacts" / f"{name}.onnx").stat().st_mtime_ns == stamp
    assert _journal_trials(out) >= 3
    assert {c["name"] for c in results["candidates"]} == {"base"} | {t["name"] for t in trials}
    for cand in results["candidates"]:  # nothing half-done left in the study: every candidate judged
        measured = cand["name"] == "base" or cand["name"] in results["search"]["survivors"]
        assert (cand["devices"]["local"]["latency_ms"] is not None) == measured
