"""``seeds:``: a study run once per seed through the real CLI, each seed's run in its own folder,
and the top-level results and report showing mean and spread computed from the per-seed numbers
(checked here against numbers computed by hand from those per-seed files); ``reductions:``
shown in the report."""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE, run_study

from edgebench.errors import EdgebenchError
from edgebench.study.config import study_from_dict
from edgebench.study.seeds import seed_config, spread

REDUCTION = "CW-L2: 5 x 50 steps [paper: 9 x 5000]"
STUDY = {
    "name": "seeded",
    "seed": 0,
    "seeds": [3, 5],
    "reductions": [REDUCTION],
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": [
        "base",
        {
            "name": "sparse-50",
            "prune": {"ratio": 0.5, "structured": False, "global_pruning": True, "finetune": {"epochs": 1}},
        },
    ],
    "attacks": {
        "samples": 40,
        "settings": ["transfer"],
        "suite": [{"name": "pgd", "norm": "linf", "eps_255": [16], "steps": 3}],
    },
    "devices": ["local"],
    "profile": {**TINY_PROFILE, "rounds": 2},
}


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc, out = run_study(STUDY, tmp_path_factory.mktemp("seeded"), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["seeds"]["seeds"] == [3, 5]  # --json prints the top-level results
    return out


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _entry(results: dict, cand: str) -> dict:
    c = next(c for c in results["candidates"] if c["name"] == cand)
    return c["devices"]["local"]


def _both_correct_by_hand(folder: Path, cand: str, set_id: str) -> float:
    y = np.load(folder / "data" / "eval.npz")["y"]
    s = np.load(folder / "attacks" / f"{set_id}.npz")
    replay = json.loads((folder / "measurements" / cand / "local" / "replay.json").read_text())
    cand_pred = np.asarray(replay["sets"][set_id]["predictions"])
    ys = y[s["indices"]]
    return float(np.mean((s["base_predictions"] == ys) & (cand_pred == ys)))


def test_each_seed_is_a_whole_run_with_its_own_seed(seeded_run: Path) -> None:
    for seed in (3, 5):
        res = _results(seeded_run / f"seed-{seed}")
        assert res["study"]["seed"] == seed and "seeds" not in res["study"]
        prune = next(c for c in res["study"]["candidates"] if c["name"] == "sparse-50")["prune"]
        assert prune["seed"] == seed and prune["finetune"]["seed"] == seed  # shifted by seed - study seed (0)
    # different seeds: a different split, a different base
    a, b = (np.load(seeded_run / f"seed-{s}" / "data" / "eval.npz")["y"] for s in (3, 5))
    assert not np.array_equal(a, b)


def test_mean_and_spread_are_those_of_the_per_seed_numbers(seeded_run: Path) -> None:
    top = _results(seeded_run)
    per = {s: _results(seeded_run / f"seed-{s}") for s in (3, 5)}
    stats = {(st["candidate"], st["key"]): st for st in top["seeds"]["stats"]}
    assert top["seeds"]["runs"] == ["seed-3", "seed-5"]
    checked = 0
    for cand in ("base", "sparse-50"):
        clean = [_entry(per[s], cand)["clean_accuracy"] for s in (3, 5)]
        row = [next(r for r in _entry(per[s], cand)["robustness"] if r["id"] == "pgd-linf-16") for s in (3, 5)]
        acc = [r["accuracy"] for r in row]
        both = [_both_correct_by_hand(seeded_run / f"seed-{s}", cand, "pgd-linf-16") for s in (3, 5)]
        for key, values in (
            ("clean", clean),
            ("transfer:pgd-linf-16:accuracy", acc),
            ("transfer:pgd-linf-16:both_correct", both),
        ):
            st = stats[(cand, key)]
            assert st["values"] == pytest.approx(values), (cand, key)
            assert st["mean"] == pytest.approx(statistics.mean(values)), (cand, key)
            assert st["std"] == pytest.approx(statistics.stdev(values)), (cand, key)
            assert (st["min"], st["max"], st["n"]) == (min(values), max(values), 2)
            checked += 1
    assert checked == 6
    # both correct is no larger than either model's own accuracy on those examples
    for s in (3, 5):
        assert stats[("sparse-50", "transfer:pgd-linf-16:both_correct")]["values"][[3, 5].index(s)] <= min(
            _entry(per[s], "sparse-50")["robustness"][0]["accuracy"],
            _entry(per[s], "base")["robustness"][0]["accuracy"],
        )
    sparsity = stats[("sparse-50", "sparsity")]["values"]
    assert all(0.45 < v < 0.5 for v in sparsity)  # the classifier and biases are not pruned


def test_the_report_shows_the_spread_and_the_reductions(seeded_run: Path) -> None:
    md = (seeded_run / "report.md").read_text()
    assert "## Reductions" in md and REDUCTION in md
    assert "Mean and spread over 2 seed(s)" in md
    top = _results(seeded_run)
    st = next(s for s in top["seeds"]["stats"] if s["candidate"] == "sparse-50" and s["key"] == "clean")
    line = next(ln for ln in md.splitlines() if ln.startswith("| sparse-50 | clean accuracy |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:6] == [
        f"{100 * st['values'][0]:.1f}%",
        f"{100 * st['values'][1]:.1f}%",
        f"{100 * st['mean']:.1f}%",
        f"{100 * st['std']:.1f}%",
    ]
    # each seed's own report shows the reductions too
    assert REDUCTION in (seeded_run / "seed-3" / "report.md").read_text()


def test_spread_by_hand() -> None:
    assert spread([0.5, None, 0.7]) == pytest.approx(
        {"n": 2, "mean": 0.6, "std": statistics.stdev([0.5, 0.7]), "min": 0.5, "max": 0.7}
    )
    assert spread([0.9])["std"] is None and spread([None])["mean"] is None


def test_seed_config_shifts_the_compression_seeds() -> None:
    cfg = study_from_dict({**STUDY, "seed": 1})
    one = seed_config(cfg, 5)
    assert one.seed == 5 and one.seeds is None
    p = next(c for c in one.candidates if c.name == "sparse-50").prune
    assert p is not None and (p.seed, p.finetune.seed) == (4, 4)
    assert one.reductions == (REDUCTION,)


@pytest.mark.parametrize(("seeds", "found"), [([], "[]"), ([1, 1], "[1, 1]"), (["a"], "['a']"), (3, "3")])
def test_bad_seeds_are_one_line(seeds: object, found: str) -> None:
    with pytest.raises(EdgebenchError) as err:
        study_from_dict({"seeds": seeds}, "s.yaml")
    msg = str(err.value)
    assert (
        "\n" not in msg and "seeds" in msg and "expected a non-empty list of distinct integers" in msg and found in msg
    )


def test_a_study_without_seeds_binds_as_before() -> None:
    d = study_from_dict({"name": "x"}).to_dict()
    assert "seeds" not in d and "reductions" not in d


def _with_minimal_sets(template: dict, base_median: float, cand_median: float) -> dict:
    """*template* (a real per-seed results.json) with a CW set: the base's record and the
    candidate's white-box row carry the median distances."""
    res = copy.deepcopy(template)
    res["attacks"].append(
        {
            "id": "cw-l2-min",
            "attack": "cw",
            "norm": "l2",
            "eps": None,
            "count": 40,
            "base_accuracy": 0.1,
            "path": "attacks/cw-l2-min.npz",
            "params": {},
            "median_distance": base_median,
        }
    )
    row = {"setting": "whitebox", "set": "cw-l2-min", "attack": "cw", "norm": "l2", "eps": None}
    row |= {"id": "whitebox:cw-l2-min", "accuracy": 0.1, "accuracy_ci95": [0.0, 0.2], "count": 40}
    for c in res["candidates"]:
        extra = {} if c["name"] == "base" else {"median_distance": cand_median}
        c["devices"]["local"]["robustness"].append({**row, **extra})
    return res


def test_minimal_attack_medians_include_the_bases_own_set(seeded_run: Path, tmp_path: Path) -> None:
    """The base's white-box rows are its transfer sets; its median distance is read from their record."""
    from edgebench.study.seeds import seed_record

    cfg = study_from_dict({**STUDY, "seeds": [0, 1]})
    template = _results(seeded_run / "seed-3")
    per = [_with_minimal_sets(template, 2.0, 1.5), _with_minimal_sets(template, 3.0, 1.0)]
    rec = seed_record(cfg, tmp_path, per)
    stats = {(s["candidate"], s["key"]): s for s in rec["stats"]}
    base = stats[("base", "whitebox:cw-l2-min:median_distance")]
    assert base["values"] == [2.0, 3.0] and base["mean"] == pytest.approx(2.5)
    assert stats[("sparse-50", "whitebox:cw-l2-min:median_distance")]["values"] == [1.5, 1.0]


def test_a_damaged_seed_result_is_one_line(tmp_path: Path) -> None:
    """A seed's results.json missing or damaged (a copy cut short) is a user error naming it."""
    from edgebench.errors import EdgebenchError
    from edgebench.study.config import study_from_dict
    from edgebench.study.seeds import write_seed_results

    cfg = study_from_dict({"name": "a", "seeds": [0, 1]})
    with pytest.raises(EdgebenchError, match=r"seed 0's results not found: expected a file at .*seed-0/results\.json"):
        write_seed_results(cfg, tmp_path)
    (tmp_path / "seed-0").mkdir()
    (tmp_path / "seed-0" / "results.json").write_text('{"run_id": tr')
    with pytest.raises(EdgebenchError, match=r"seed 0's results .*seed-0/results\.json is not valid JSON"):
        write_seed_results(cfg, tmp_path)
