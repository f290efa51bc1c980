"""Adaptive sampling (``attacks: {adaptive: true}``) on a real small study: a candidate whose
robustness verdict is INCONCLUSIVE on 8 attacked images gets new images in rounds until it is
decided, or until the cap; the worst case it is judged on is recomputed here from the replays
on disk; a re-run resumes without crafting again; and the study keys are checked when read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE

from edgebench.errors import EdgebenchError
from edgebench.study.config import study_from_dict
from edgebench.study.pipeline import Pipeline
from edgebench.study.rounds import read_record
from edgebench.study.store import RunStore

SET = "pgd-linf-32"
STUDY: dict[str, Any] = {
    "name": "adaptive",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "profile": TINY_PROFILE,
    # pruned without fine-tuning: its per-image outcomes under attack differ from the base's
    "candidates": ["base", {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 0}}}],
    "attacks": {
        "samples": 16,  # transfer sets on images 0-15
        "whitebox_samples": 8,  # white-box on 0-7: the worst case rests on 8 images
        "suite": [{"name": "pgd", "norm": "linf", "eps_255": [32], "steps": 5}],
    },
    "budgets": {
        "max_p99_latency_ms": None,
        "max_peak_memory_mb": None,
        "max_accuracy_drop": None,
        "max_robustness_drop": 0.2,
    },
}


def study(budget: float, **attacks: Any) -> dict:
    return {
        **STUDY,
        "attacks": {**STUDY["attacks"], **attacks},
        "budgets": {**STUDY["budgets"], "max_robustness_drop": budget},
    }


def run(folder: Path, data: dict) -> dict:
    return Pipeline(study_from_dict(data), folder).run()


def entry(results: dict, name: str = "pruned-50") -> dict:
    return next(c for c in results["candidates"] if c["name"] == name)["devices"]["local"]


def gate(results: dict, name: str = "pruned-50") -> dict:
    return next(g for g in entry(results, name)["verdict"]["gates"] if g["name"] == "robustness_drop")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The study without adaptive sampling: pruned-50 INCONCLUSIVE on its 8 attacked images."""
    folder = tmp_path_factory.mktemp("adaptive") / "plain"
    results = run(folder, STUDY)
    return folder, results


def copy_of(plain: tuple[Path, dict], tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(plain[0], out)
    return out


def sets_on_disk(folder: Path) -> dict[str, int]:
    """Every adversarial set file under *folder* and when it was written."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.npz")) if "attacks" in p.parts
    }


def preds(store: RunStore, cand: str, kind: str, set_id: str) -> np.ndarray | None:
    rec = store.load(cand, "local", kind)
    got = None if rec is None else rec["sets"].get(set_id)
    return None if got is None else np.asarray(got["predictions"])


def independent_worst_case(folder: Path, cand: str, n: int) -> np.ndarray:
    """Per image 0..n-1: right clean, under the transfer set and under the white-box set, read
    straight from the replays of the run and of its rounds (no results.json code)."""
    store = RunStore(folder)
    y = store.load_arrays("eval")["y"]
    clean = preds(store, cand, "replay", "clean") == y
    transfer = np.full(len(y), -1)
    whitebox = np.full(len(y), -1)
    p = preds(store, cand, "replay", SET)
    transfer[: len(p)] = p
    w = preds(store, cand, "replay-whitebox", SET)
    if w is not None:
        whitebox[: len(w)] = w
    for rnd in (read_record(store) or {}).get("rounds", []):
        rs = RunStore(folder / "adaptive" / f"round-{rnd['round']}")
        s, e = rnd["start"], rnd["end"]
        if (t := preds(rs, cand, "replay", SET)) is not None:
            assert len(t) == e - s
            transfer[s:e] = np.where(transfer[s:e] < 0, t, transfer[s:e])
        if (w := preds(rs, cand, "replay-whitebox", SET)) is not None:
            whitebox[s:e] = w
    ok = clean & (transfer == y) & ((whitebox == y) | (cand == "base"))
    assert (transfer[:n] >= 0).all() and (cand == "base" or (whitebox[:n] >= 0).all())
    return ok[:n]


def test_the_plain_study_leaves_the_pruned_candidate_undecided(plain):
    _, results = plain
    g = gate(results)
    assert entry(results)["verdict"]["status"] == "INCONCLUSIVE" and g["status"] == "inconclusive"
    assert g["images"] == 8 and g["images_to_decide"] > 8
    assert "adaptive" not in entry(results) and not (plain[0] / "adaptive").exists()


def test_adaptive_sampling_adds_new_images_until_the_verdict_is_decided(plain, tmp_path):
    folder = copy_of(plain, tmp_path)
    before = sets_on_disk(folder)
    results = run(folder, study(0.2, adaptive=True, adaptive_max_images=60))  # the same folder, adaptive on
    e, g = entry(results), gate(results)
    a = e["adaptive"]
    assert e["verdict"]["status"] in ("READY", "NOT READY") and g["status"] in ("pass", "fail")
    assert (a["outcome"], a["images_before"], a["cap"]) == ("decided", 8, 60)
    assert 8 < a["images"] <= 60 and a["added"] == a["images"] - 8 and a["rounds"] >= 1
    assert g["images"] == a["images"]  # the verdict rests on the images added
    # nothing crafted before was crafted again: the rounds only added sets
    assert {k: v for k, v in sets_on_disk(folder).items() if k in before} == before
    # the rounds attacked new images: disjoint, after the 8 the plain study attacked, from the evaluation set
    record = read_record(RunStore(folder))
    spans = sorted((r["start"], r["end"]) for r in record["rounds"])
    assert spans[0][0] == 8 and all(a1 == b0 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    y = RunStore(folder).load_arrays("eval")
    for rnd in record["rounds"]:
        rs = RunStore(folder / "adaptive" / f"round-{rnd['round']}")
        assert np.array_equal(rs.load_arrays("eval")["x"], y["x"][rnd["start"] : rnd["end"]])
        assert rnd["transfer"] == (rnd["start"] >= 16)  # transfer sets exist on 0-15 already
    # the worst case it is judged on: recomputed from the replays on disk, base and candidate
    row = next(r for r in e["robust_accuracy"] if r["id"] == "worst-linf-32")
    n = a["images"]
    cand_ok, base_ok = independent_worst_case(folder, "pruned-50", n), independent_worst_case(folder, "base", n)
    assert row["count"] == n and row["images"] == f"evaluation images 0-{n - 1}"
    assert row["robust_accuracy"] == pytest.approx(cand_ok.mean())
    assert row["base_robust_accuracy"] == pytest.approx(base_ok.mean())
    assert row["pairs"]["base_only"] == int(np.sum(base_ok & ~cand_ok))
    assert row["pairs"]["cand_only"] == int(np.sum(~base_ok & cand_ok))
    # the report says how many images the verdict rests on and what adaptive sampling added
    md = (folder / "report.md").read_text()
    assert f"attacked {n} (adaptive: +{n - 8} in {a['rounds']} round" in md and "decided)" in md
    html = (folder / "report.html").read_text()
    assert f'data-key="images" data-value="{n}"' in html or f'data-value="{n}" data-key="images"' in html


def test_a_rerun_resumes_without_crafting_again(plain, tmp_path):
    folder = copy_of(plain, tmp_path)
    data = study(0.2, adaptive=True, adaptive_max_images=60)
    first = run(folder, data)
    crafted = sets_on_disk(folder / "adaptive")
    record = read_record(RunStore(folder))
    # an interrupted round: its last replay of the candidate lost, and not recorded as done
    last = record["rounds"][-1]
    lost = folder / "adaptive" / f"round-{last['round']}" / "measurements" / "pruned-50"
    shutil.rmtree(lost)
    last["measured"]["pruned-50"] = []
    (folder / "adaptive" / "record.json").write_text(json.dumps(record))
    again = run(folder, data)
    assert sets_on_disk(folder / "adaptive") == crafted  # replayed again, never crafted again
    assert (lost / "local" / "replay-whitebox.json").is_file()
    assert len(read_record(RunStore(folder))["rounds"]) == len(record["rounds"])  # no round added
    assert entry(again)["adaptive"] == entry(first)["adaptive"]
    assert entry(again)["robust_accuracy"] == entry(first)["robust_accuracy"]


def test_the_cap_is_respected_and_said(plain, tmp_path):
    folder = copy_of(plain, tmp_path)
    # a 0 pp budget: the estimate asks for far more than 12 images
    results = run(folder, study(0.0, adaptive=True, adaptive_max_images=12))
    a, g = entry(results)["adaptive"], gate(results)
    assert entry(results)["verdict"]["status"] == "INCONCLUSIVE" and g["images_to_decide"] > 12
    assert (a["outcome"], a["images"], a["added"], a["cap"]) == ("cap", 12, 4, 12)
    assert g["images"] == 12
    record = read_record(RunStore(folder))
    assert max(r["end"] for r in record["rounds"]) == 12
    for rnd in record["rounds"]:  # no set covers an image past the cap
        for p in (folder / "adaptive" / f"round-{rnd['round']}").rglob("*.npz"):
            if "attacks" in p.parts:
                with np.load(p) as z:
                    assert len(z["indices"]) == rnd["end"] - rnd["start"] <= 12 - 8
    assert "cap reached" in (folder / "report.md").read_text()


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"attacks": {"adaptive_max_images": 64}},
            "attacks.adaptive_max_images: expected it with adaptive: true, found adaptive: false and 64",
        ),
        (
            {"attacks": {"adaptive": True, "adaptive_max_images": 32}},
            "attacks.adaptive_max_images: expected more than the 32 images the robustness gate already rests on "
            "(attacks.whitebox_samples), found 32",
        ),
        (
            {"attacks": {"adaptive": True, "adaptive_max_images": 256, "settings": ["transfer"]}},
            "attacks.adaptive_max_images: expected more than the 256 images the robustness gate already rests on "
            "(attacks.samples), found 256",
        ),
        (
            {"attacks": {"adaptive": True, "adaptive_max_images": 2000}},
            "attacks.adaptive_max_images: expected at most data.eval_count = 1000",
        ),
        (
            {"attacks": {"adaptive": True}, "blackbox": {"enabled": True}},
            "attacks.adaptive: expected blackbox.enabled: false",
        ),
        ({"attacks": {"adaptive": "yes"}}, "attacks.adaptive: expected true or false, found 'yes'"),
        (
            {"attacks": {"adaptive": True, "adaptive_max_images": 0}},
            "attacks.adaptive_max_images: expected a value >= 1",
        ),
    ],
)
def test_adaptive_keys_are_checked_when_the_study_is_read(data: dict, message: str) -> None:
    with pytest.raises(EdgebenchError) as err:
        study_from_dict(data)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_adaptive_is_off_by_default_and_binds_run_folders_as_before() -> None:
    cfg = study_from_dict({})
    assert cfg.attacks.adaptive is False and cfg.attacks.adaptive_max_images is None
    assert "adaptive" not in cfg.to_dict()["attacks"]  # a folder made before adaptive sampling resumes
    on = study_from_dict({"attacks": {"adaptive": True, "adaptive_max_images": 64}})
    assert on.to_dict()["attacks"]["adaptive_max_images"] == 64
    assert study_from_dict(on.to_dict()) == on
