"""The whole pipeline on a real (small) study: build, attack, profile, replay, report; then resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from edgebench.results import SCHEMA, validate_results
from edgebench.study.config import load_study
from edgebench.study.pipeline import Pipeline

STUDY = {
    "name": "itest",
    "model": {"arch": "lenet5", "train_epochs": 2},
    "data": {"name": "mnist", "eval_count": 200, "calib_count": 64, "train_count": 800},
    "candidates": [
        "base",
        {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}},
        {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 64}},
        {"name": "pruned-75", "parent": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}},
        {
            "name": "pruned-50+int8",
            "prune": {"ratio": 0.5, "finetune": {"epochs": 1}},
            "quantize": {"preset": "ort-cpu", "calib_samples": 64},
        },
    ],
    "attacks": {
        "samples": 32,
        "suite": [
            {"name": "fgsm", "eps_255": [8, 32]},
            {"name": "pgd", "norm": "linf", "eps_255": [8, 32], "steps": 5},
        ],
    },
    "blackbox": {
        "enabled": True,
        "samples": 3,
        "pool": 16,
        "max_queries": 60,
        "gradient_queries": 10,
        "square": {"eps_255": [32], "max_queries": 30},
    },
    "profile": {
        "batches": [1, 4],
        "iterations": 20,
        "min_duration_s": 0.0,
        "warmup_iters": 2,
        "warmup_s": 0.0,
        "threads": 1,
        "rounds": 3,
    },
    "budgets": {
        "max_p99_latency_ms": 1000.0,
        "max_peak_memory_mb": 4096,
        "max_accuracy_drop": 0.5,
        "max_robustness_drop": 0.5,
    },
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    study = folder / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    out = folder / "out"
    Pipeline(load_study(study), out).run()
    return out


def test_results_follow_the_schema(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert validate_results(results).dump() == results  # the typed model reads back every key it wrote
    assert results["schema"] == SCHEMA
    assert results["environment"]["versions"]["onnxruntime"] and results["environment"]["host"]["cpu_model"]
    names = [c["name"] for c in results["candidates"]]
    assert names == ["base", "pruned-50", "int8", "pruned-75", "pruned-50+int8"]
    assert {a["id"] for a in results["attacks"]} == {"fgsm-linf-8", "fgsm-linf-32", "pgd-linf-8", "pgd-linf-32"}
    by = {c["name"]: c for c in results["candidates"]}
    for c in results["candidates"]:
        art = c["artifact"]
        assert (run_dir / art["path"]).is_file() and len(art["sha256"]) == 64 and art["size_bytes"] > 0
        assert c["params"] > 0 and c["macs"] > 0 and c["export_check"]["onnx_checker"] == "passed"
        d = c["devices"]["local"]
        lat = d["latency_ms"]
        for key in ("min", "mean", "std", "p50", "p90", "p95", "p99", "max"):
            assert lat[key] > 0
        assert d["latency_compute_ms"]["p50"] > 0 and d["throughput_ips"] > 0
        assert d["memory_mb"]["peak_rss"] > 0
        assert 0.0 <= d["clean_accuracy"] <= 1.0
        transfer = [r for r in d["robustness"] if r["setting"] == "transfer"]
        whitebox = [r for r in d["robustness"] if r["setting"] == "whitebox"]
        assert [r["id"] for r in transfer] == [a["id"] for a in results["attacks"]]
        assert whitebox and all(r["id"].startswith("whitebox:") for r in whitebox)  # both threat models, named
        for row in transfer:
            assert set(row) >= {"attack", "norm", "eps", "accuracy", "transfer_success_rate", "agreement"}
        # white-box: the same suite crafted on this candidate, plus the eps = 1 sanity set
        assert {r["set"] for r in whitebox} == {r["set"] for r in transfer} | {"pgd-linf-255"}
        assert all(r["id"] == f"whitebox:{r['set']}" for r in whitebox)
        assert d["surrogate"]["kind"] == ("fake-quant-ste" if "int8" in c["name"] else "fp32-graph")
        assert d["surrogate"]["top1_agreement"] > 0.9
        checks = {s["check"]: s for s in d["sanity"]}
        assert {"iterative_vs_single_step", "whitebox_vs_transfer", "unbounded_eps", "surrogate_agreement"} <= set(
            checks
        )
        assert all(s["status"] in ("pass", "warn") for s in d["sanity"])
        assert checks["unbounded_eps"]["status"] == "pass"
        assert (c["int8_error"] is not None) == ("int8" in c["name"])
        assert d["verdict"]["status"] in ("READY", "NOT READY", "INCONCLUSIVE", "UNMEASURED")
        assert d["environment"]["runtime"]["backend"] == "onnxruntime"
        bb = d["blackbox"]  # the decision-based attack ran against this very artifact, through the agent
        assert bb["attack"] == "hsj" and bb["count"] == 3 and bb["max_queries"] == 60
        assert 0 < bb["queries_total"] <= 3 * 60 + 16 and len(bb["rows"]) == 3
        sq = d["blackbox_square"]  # the score-based attack, on this artifact's logits through the agent
        assert sq["attack"] == "square" and sq["count"] == 3 and sq["max_queries"] == 30
        assert 0 < sq["queries_total"] <= 3 * 30 and len(sq["rows"]) == 1
    # what compression does, measured: pruning halves channels (fewer MACs), int8 shrinks the file
    assert by["pruned-50"]["macs"] < 0.6 * by["base"]["macs"]
    # an iterative grid: pruned-75 continues from pruned-50's model (half of its channels again)
    assert by["pruned-75"]["recipe"]["parent"] == "pruned-50"
    assert by["pruned-75"]["macs"] < 0.6 * by["pruned-50"]["macs"]
    assert by["int8"]["artifact"]["size_bytes"] < 0.5 * by["base"]["artifact"]["size_bytes"]
    assert by["base"]["export_check"]["max_abs_diff"] < 1e-4
    assert by["int8"]["export_check"]["top1_agreement"] > 0.9 and by["int8"]["export_check"]["max_abs_diff"] is None
    # the base replayed on its own exported engine agrees with PyTorch
    base = by["base"]["devices"]["local"]
    assert base["fidelity"]["top1_agreement"] > 0.99
    base_transfer = [r for r in base["robustness"] if r["setting"] == "transfer"]
    assert all(r["agreement"] > 0.95 for r in base_transfer)
    # a stronger attack hurts at least as much on the base model
    acc = {r["id"]: r["accuracy"] for r in base_transfer}
    assert acc["pgd-linf-32"] <= acc["pgd-linf-8"] + 1e-9


def test_reports_are_rendered(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    md = (run_dir / "report.md").read_text()
    assert "pruned-50+int8" in html and "pruned-50+int8" in md
    for title in (
        "Threat models side by side",
        "Sanity checks on the attacks",
        "INT8 error localisation",
        "Speed-up over base",
    ):
        assert title in md and title in html
    assert 'data-key="sanity.status"' in html and 'data-key="whitebox.accuracy"' in html
    assert 'data-key="speedup.ci95"' in html and "3 paired rounds" in md


def test_verdicts_read_paired_per_image_outcomes(run_dir: Path) -> None:
    """Each candidate's clean and worst-case outcomes against base, per image, agree with the
    accuracies they summarize; the accuracy and robustness gates judge with their intervals."""
    results = json.loads((run_dir / "results.json").read_text())
    base = next(c for c in results["candidates"] if c["name"] == "base")["devices"]["local"]
    for cand in results["candidates"][1:]:
        e = cand["devices"]["local"]
        p = e["clean_pairs"]
        n = sum(p.values())
        assert n == e["eval_count"]
        assert (p["both"] + p["base_only"]) / n == pytest.approx(base["clean_accuracy"])
        assert (p["both"] + p["cand_only"]) / n == pytest.approx(e["clean_accuracy"])
        for row in e["robust_accuracy"]:
            q = row["pairs"]
            assert sum(q.values()) == row["count"]
            assert (q["both"] + q["cand_only"]) / row["count"] == pytest.approx(row["robust_accuracy"])
        gates = {g["name"]: g for g in e["verdict"]["gates"]}
        assert gates["accuracy_drop"]["images"] == n and len(gates["accuracy_drop"]["ci95"]) == 2
        assert gates["robustness_drop"]["ci95"] is not None


def test_latency_comes_from_interleaved_rounds(run_dir: Path) -> None:
    """Every candidate timed in one pass of rotating rounds; speed-ups over base with intervals."""
    results = json.loads((run_dir / "results.json").read_text())
    names = [c["name"] for c in results["candidates"]]
    rounds = STUDY["profile"]["rounds"]
    for cand in results["candidates"]:
        entry = cand["devices"]["local"]
        tp = entry["timing_pass"]
        assert tp["models"] == names and tp["rounds"] == rounds and tp["sessions"] == "shared"
        orders = [m["order"] for m in tp["round_meta"]]
        assert orders[0] == names and orders[1] == names[1:] + names[:1]
        for run in entry["batch_sweep"]:
            assert len(run["round_p50_ms"]) == rounds
            assert run["latency_ms"]["samples"] >= rounds * 2  # pooled over the rounds
        solo = json.loads((run_dir / "measurements" / cand["name"] / "local" / "profile-solo.json").read_text())
        assert solo["runs"] == [] and solo["memory_mb"]["peak_rss"] > 0 and solo["cold_start"]
        assert entry["memory_mb"] == solo["memory_mb"]  # memory from its own process, not the shared one
        if cand["name"] == "base":
            assert entry["speedup"] is None
            continue
        sp = entry["speedup"]
        lo, hi = sp["ci95"]
        assert lo <= sp["ratio"] <= hi and len(sp["round_ratios"]) == rounds
        base_rounds = next(c for c in results["candidates"] if c["name"] == "base")["devices"]["local"]
        run1 = next(r for r in base_rounds["batch_sweep"] if r["batch"] == 1 and r["mode"] == "end_to_end")
        mine = next(r for r in entry["batch_sweep"] if r["batch"] == 1 and r["mode"] == "end_to_end")
        assert sp["round_ratios"] == pytest.approx([b / c for b, c in zip(run1["round_p50_ms"], mine["round_p50_ms"])])


def test_rerun_resumes_without_measuring_again(run_dir: Path) -> None:
    files = sorted((run_dir / "measurements").rglob("*.json")) + sorted((run_dir / "artifacts").glob("*"))
    files += sorted((run_dir / "attacks").glob("*.npz"))
    before = {f: os.stat(f).st_mtime_ns for f in files}
    Pipeline(load_study(Path(run_dir).parent / "study.yaml"), run_dir).run()
    after = {f: os.stat(f).st_mtime_ns for f in files}
    assert before == after


def test_a_lost_measurement_is_measured_again_and_nothing_else(run_dir: Path) -> None:
    target = run_dir / "measurements" / "int8" / "local" / "profile.json"
    others = [f for f in (run_dir / "measurements").rglob("*.json") if f != target]
    before = {f: os.stat(f).st_mtime_ns for f in others}
    target.unlink()
    Pipeline(load_study(Path(run_dir).parent / "study.yaml"), run_dir).run()
    assert target.is_file()
    assert {f: os.stat(f).st_mtime_ns for f in others} == before
    # re-timed in a pass of its own with base as the reference (base's own profile untouched)
    again = json.loads(target.read_text())
    assert again["interleaved"]["models"] == ["base", "int8"]
    assert all(r["speedup"]["rounds"] == STUDY["profile"]["rounds"] for r in again["runs"])


def test_standalone_replay_matches_the_run(run_dir: Path) -> None:
    """`edgebench replay` on the run's files gives the rows the pipeline recorded."""
    from edgebench.study.replay import replay_sets

    results = json.loads((run_dir / "results.json").read_text())
    int8 = next(c for c in results["candidates"] if c["name"] == "int8")
    rows = replay_sets(run_dir / int8["artifact"]["path"], run_dir / "attacks", "local")
    recorded = {r["id"]: r for r in int8["devices"]["local"]["robustness"] if r["setting"] == "transfer"}
    assert {r["id"] for r in rows} == set(recorded)
    for r in rows:
        for key in ("accuracy", "transfer_success_rate", "agreement", "count"):
            assert r[key] == recorded[r["id"]][key]


def test_replay_and_fidelity_numbers_match_an_independent_computation(run_dir: Path) -> None:
    """Every candidate's clean accuracy, fidelity and robustness rows, recomputed here with plain
    numpy from the run's saved arrays and this test's own ONNX Runtime session on each artifact
    (not through the agent, the store or the metrics module)."""
    import numpy as np
    import onnxruntime as ort

    results = json.loads((run_dir / "results.json").read_text())
    with np.load(run_dir / "data" / "eval.npz") as d:
        x_eval, y_eval = d["x"], d["y"]
    with np.load(run_dir / "data" / "base_logits.npz") as d:
        base_logits = d["logits"].astype(np.float64)
    base_clean = base_logits.argmax(1)
    sets = {}
    for a in results["attacks"]:
        with np.load(run_dir / a["path"]) as z:
            sets[a["id"]] = {k: z[k] for k in ("x", "labels", "indices", "base_predictions")}
        np.testing.assert_array_equal(sets[a["id"]]["labels"], y_eval[sets[a["id"]]["indices"]])

    for cand in results["candidates"]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(run_dir / cand["artifact"]["path"]), so, providers=["CPUExecutionProvider"])

        def logits(x: np.ndarray, sess: ort.InferenceSession = sess) -> np.ndarray:
            return sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)

        got = cand["devices"]["local"]
        clean = logits(x_eval)
        clean_pred = clean.argmax(1)
        assert got["clean_accuracy"] == pytest.approx(float(np.mean(clean_pred == y_eval)), abs=1e-12)
        diff = np.abs(clean - base_logits)
        fid = got["fidelity"]
        assert fid["top1_agreement"] == pytest.approx(float(np.mean(clean_pred == base_clean)), abs=1e-12)
        assert fid["max_abs_logit_diff"] == pytest.approx(float(diff.max()), abs=1e-4)
        assert fid["mean_abs_logit_diff"] == pytest.approx(float(diff.mean()), abs=1e-5)
        rows = {r["id"]: r for r in got["robustness"] if r["setting"] == "transfer"}
        assert set(rows) == set(sets)
        for sid, s in sets.items():
            idx, y, base_adv = s["indices"], s["labels"], s["base_predictions"]
            adv = logits(s["x"]).argmax(1)
            fooled_base = (base_clean[idx] == y) & (base_adv != y) & (clean_pred[idx] == y)
            transfer = float(np.mean(adv[fooled_base] != y[fooled_base])) if fooled_base.any() else None
            r = rows[sid]
            assert r["count"] == len(idx)
            assert r["accuracy"] == pytest.approx(float(np.mean(adv == y)), abs=1e-12), (cand["name"], sid)
            assert r["agreement"] == pytest.approx(float(np.mean(adv == base_adv)), abs=1e-12), (cand["name"], sid)
            assert r["transfer_success_rate"] == pytest.approx(transfer, abs=1e-12), (cand["name"], sid)
