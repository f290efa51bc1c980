"""Assemble ``results.json`` from a run folder's measurement files (see docs/results.md).

Derived numbers (accuracy, confidence intervals, transfer rates, roofline, verdicts) are
recomputed here from the raw measurements every time, so they always agree with them. The
assembled object is validated by the typed model (:class:`edgebench.results.Results`) before it
is written, so every results.json matches the schema the reports read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.results import SCHEMA, validate_results
from edgebench.study.store import RunStore
from edgebench.util.io import atomic_write_json

log = logging.getLogger(__name__)

# a results.json record made from the assembled results (verdicts filled in) and the run folder
RecordFn = Callable[[dict, Path], Any]


def _latency(runs: list[dict], batch: int, mode: str) -> dict | None:
    for r in runs:
        if r.get("batch") == batch and r.get("mode") == mode and "latency_ms" in r:
            return r["latency_ms"]
    return None


def _profile_entry(profile: dict, manifest: dict, device_profile: dict) -> dict:
    from edgebench.measure.roofline import roofline

    runs = profile.get("runs", [])
    e2e = [r for r in runs if r.get("mode") == "end_to_end" and "latency_ms" in r]
    best = max((r["latency_ms"]["throughput_ips"] or 0.0 for r in e2e), default=None)
    lat1 = _latency(runs, 1, "end_to_end")
    comp1 = _latency(runs, 1, "compute")
    roof = None
    ref = comp1 or lat1
    if ref is not None and manifest.get("macs"):
        roof = roofline(manifest["macs"], ref["p50"], 1, manifest["artifact"]["precision"], device_profile)
    env = dict(profile.get("environment", {}))
    env["runtime"] = profile.get("runtime")
    return {
        "latency_ms": lat1,
        "latency_compute_ms": comp1,
        "throughput_ips": best,
        "batch_sweep": [r for r in runs if "latency_ms" in r],
        "memory_mb": profile.get("memory_mb"),
        "telemetry": profile.get("telemetry"),
        "op_profile": profile.get("op_profile"),
        "roofline": roof,
        "load_time_s": profile.get("load_time_s"),
        "cold_start": profile.get("cold_start"),
        "energy": next((r.get("energy") for r in e2e if r.get("batch") == 1), None),  # batch 1, end-to-end
        "speedup": next((r.get("speedup") for r in e2e if r.get("batch") == 1), None),
        "timing_pass": profile.get("interleaved"),
        "environment": env,
    }


def _replay_entry(replay: dict, y_eval: np.ndarray, base_clean: np.ndarray, sets: list) -> dict:
    from edgebench.robustness.metrics import accuracy_with_ci, robustness_auc, robustness_rows

    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    clean = preds.pop("clean")
    acc, ci = accuracy_with_ci(clean, y_eval)
    rows = robustness_rows(y_eval, base_clean, {s.id: s.base_predictions for s in sets}, clean, preds, sets)
    return {
        "clean_accuracy": acc,
        "clean_accuracy_ci95": list(ci),
        "eval_count": int(len(y_eval)),
        "fidelity": replay.get("fidelity"),
        "robustness": rows,
        "robustness_auc": robustness_auc(rows, acc),
    }


def _clean_pairs(store: RunStore, device: str, replay: dict, y_eval: np.ndarray) -> dict | None:
    """Base (on the same device) vs this candidate, right or wrong per evaluation image: what the
    accuracy-drop gate's paired interval reads. None without the base's replay there."""
    from edgebench.robustness.worstcase import pair_counts

    base = store.load("base", device, "replay")
    if base is None or "clean" not in base.get("sets", {}) or "clean" not in replay.get("sets", {}):
        return None
    b = np.asarray(base["sets"]["clean"]["predictions"])
    c = np.asarray(replay["sets"]["clean"]["predictions"])
    if b.shape != c.shape or b.shape != y_eval.shape:
        return None
    return pair_counts(b == y_eval, c == y_eval)


def assemble_results(
    run_dir: str | Path, write: bool = True, sets: list | None = None, records: Mapping[str, RecordFn] | None = None
) -> dict:
    """results.json from the run folder's files (plus *sets*: the adversarial sets' metadata when
    the caller already loaded and verified them; else they are loaded and verified here), plus
    *records*: name -> function of (results, run folder) for records the calling command adds
    after the verdicts (``edgebench search``: ``search``).

    Returns the JSON object as validated by :class:`edgebench.results.Results`; raises
    :class:`EdgebenchError` (naming the field path) when the files assemble into anything else."""
    from edgebench.devices.describe import device_profile
    from edgebench.devices.inventory import load_inventory
    from edgebench.report.gates import with_verdicts
    from edgebench.robustness.store import load_folder
    from edgebench.study.engines import skipped_reason
    from edgebench.study.environment import host_environment
    from edgebench.study.rounds import cell_record, more_outcomes
    from edgebench.study.whitebox import add_to_entry as add_whitebox
    from edgebench.study.whitebox import int8_error as whitebox_int8_error

    store = RunStore(run_dir)
    study = store.read_json("study.json") or {}
    env = store.read_json("environment.json")
    if env is None:
        env = host_environment()
        store.write_json("environment.json", env)
    subject = store.read_json("subject.json") or {}
    evald = store.load_arrays("eval")
    y_eval = evald["y"] if evald is not None else np.zeros(0, dtype=np.int64)
    if sets is None:
        sets = load_folder(store.attacks_dir, inputs=False) if (store.attacks_dir / "attacks.json").is_file() else []
    attack_rows = [s.summary(path=str((store.attacks_dir / f"{s.id}.npz").relative_to(store.root))) for s in sets]
    base_logits = store.load_arrays("base_logits")
    base_clean = base_logits["logits"].argmax(1) if base_logits is not None else None
    inventory = load_inventory()
    device_names = list(study.get("devices") or ["local"])
    devices = {}
    for name in device_names:
        spec = inventory.get(name)
        devices[name] = {
            "name": name,
            "kind": spec.kind if spec else None,
            "profile": device_profile(spec) if spec else {},  # local: measured peak (devices/describe.py)
        }
    candidates = []
    for cand in study.get("candidates", []):
        name = cand["name"]
        man_path = store.manifest_path(name)
        manifest = store.read_json(str(man_path.relative_to(store.root))) if man_path.is_file() else None
        entry: dict[str, Any] = {
            "name": name,
            "recipe": (manifest.get("recipe_resolved") if manifest else None)
            or {"prune": cand.get("prune"), "quantize": cand.get("quantize")},
            "artifact": manifest["artifact"] if manifest else None,
            "skipped": manifest.get("skipped") if manifest else None,
            "params": manifest.get("params") if manifest else None,
            "nonzero_params": manifest.get("nonzero_params") if manifest else None,
            "macs": manifest.get("macs") if manifest else None,
            "export_check": manifest.get("export_check") if manifest else None,
            "accuracy_control": manifest.get("accuracy_control") if manifest else None,
            "pruning": manifest.get("pruning") if manifest else None,
            "int8_error": whitebox_int8_error(store, name),  # host: fp32 vs INT8 activations, clean vs adversarial
            "devices": {},
        }
        for dev in device_names:
            d: dict[str, Any] = {"latency_ms": None, "memory_mb": None, "clean_accuracy": None, "robustness": []}
            profile = store.load(name, dev, "profile")
            replay = store.load(name, dev, "replay")
            blackbox = store.load(name, dev, "blackbox")
            skipped = skipped_reason(profile, replay, blackbox)
            if skipped:  # e.g. a TensorRT candidate on a device without TensorRT: UNMEASURED, with why
                d["unmeasured_reason"] = skipped
                profile = replay = blackbox = None
            if profile is not None and manifest is not None:
                d.update(_profile_entry(profile, manifest, devices[dev]["profile"]))
            if replay is not None and base_clean is not None:
                d.update(_replay_entry(replay, y_eval, base_clean, sets))
                d["clean_pairs"] = _clean_pairs(store, dev, replay, y_eval)
                is_base = not cand.get("prune") and not cand.get("quantize")
                more = more_outcomes(store, dev, y_eval)  # images adaptive sampling added
                add_whitebox(store, name, dev, y_eval, d, is_base, sets, more)  # white-box, sanity, worst case
            adaptive = cell_record(store, name, dev)
            if adaptive is not None:
                d["adaptive"] = adaptive
            if blackbox is not None:
                d["blackbox"] = {k: v for k, v in blackbox.items() if k not in ("distances", "queries", "runtime")}
            square = store.load(name, dev, "blackbox-square")  # score-based, on the engine's logits
            if square is not None:
                d["blackbox_square"] = {k: v for k, v in square.items() if k not in ("distances", "queries", "runtime")}
            entry["devices"][dev] = d
        candidates.append(entry)
    results = {
        "schema": SCHEMA,
        "run_id": store.root.name,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "study": study,
        "environment": env,
        "subject": subject,
        "budgets": study.get("budgets", {}),
        "attacks": attack_rows,
        "devices": devices,
        "candidates": candidates,
    }
    source = f"{store.results_path} (assembled)"
    results = with_verdicts(validate_results(results, source)).dump()  # the one place verdicts are made
    if records:
        for key, make in records.items():  # e.g. edgebench search: trials, Pareto front, recommendation
            results[key] = make(results, store.root)
        results = validate_results(results, source).dump()
    if write:
        atomic_write_json(store.results_path, results)
    return results
