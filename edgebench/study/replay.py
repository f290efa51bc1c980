"""Replay adversarial sets through a deployed artifact, and the rows that describe it.

:func:`robustness_rows` is the one place a candidate's replay predictions become the
``robustness`` rows of results.json; ``edgebench run`` and ``edgebench replay`` both use it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.errors import EdgebenchError


def base_meta(sets: list[Any]) -> dict[str, dict]:
    """Per set id: sample indices and the base model's clean and adversarial predictions."""
    return {s.id: {"indices": np.asarray(s.indices), "labels": np.asarray(s.labels),
                   "base_clean": np.asarray(s.base_clean_predictions), "base_adv": np.asarray(s.base_predictions)}
            for s in sets}


def robustness_rows(summaries: list[dict], meta: dict[str, dict], set_preds: dict[str, np.ndarray],
                    clean_preds: np.ndarray | None) -> list[dict]:
    """Rows {attack, norm, eps, id, accuracy, accuracy_ci95, transfer_success_rate, agreement, count}.

    *clean_preds* are the candidate's predictions on the whole evaluation set (indexed by each
    set's ``indices``); without them the transfer success rate is unmeasured (None).
    """
    from edgebench.robustness.metrics import agreement, transfer_success_rate, wilson_interval

    rows = []
    for s in summaries:
        if s["id"] not in set_preds:
            continue
        m = meta[s["id"]]
        adv = np.asarray(set_preds[s["id"]])
        labels = m["labels"]
        ok = int((adv == labels).sum())
        tsr = None
        if clean_preds is not None:
            tsr = transfer_success_rate(m["base_clean"], m["base_adv"], np.asarray(clean_preds)[m["indices"]], adv, labels)
        rows.append({
            "attack": s["attack"], "norm": s["norm"], "eps": s["eps"], "id": s["id"],
            "accuracy": ok / len(labels), "accuracy_ci95": list(wilson_interval(ok, len(labels))),
            "transfer_success_rate": tsr, "agreement": agreement(adv, m["base_adv"]), "count": int(len(labels)),
            "base_accuracy": s.get("base_accuracy"),
        })
    return rows


def replay_sets(artifact: Path, attacks_dir: Path, device_name: str = "local", threads: int | None = None,
                clean: Path | None = None) -> list[dict]:
    """Run every set in *attacks_dir* through *artifact* on the device; return robustness rows.

    The clean evaluation images (for the transfer success rate) come from *clean*, or from
    ``data/eval.npz`` beside the attack folder when it is part of a run folder.
    """
    from edgebench.devices.base import open_device
    from edgebench.devices.inventory import get_device
    from edgebench.robustness.store import load_folder

    if not Path(artifact).is_file():
        raise EdgebenchError(f"artifact not found: expected an ONNX file at {artifact}")
    sets = load_folder(attacks_dir, inputs=False)
    if not sets:
        raise EdgebenchError(f"{attacks_dir}: no adversarial sets listed in attacks.json")
    clean = clean or (Path(attacks_dir).parent / "data" / "eval.npz")
    job_sets = [{"name": s.id, "path": str(Path(attacks_dir) / f"{s.id}.npz"), "key": "x"} for s in sets]
    if clean.is_file():
        job_sets.insert(0, {"name": "clean", "path": str(clean), "key": "x"})
    spec = get_device(device_name)
    with tempfile.TemporaryDirectory(prefix="edgebench-replay-") as tmp, open_device(spec) as device:
        job = {"protocol": 1, "kind": "predict", "backend": "onnxruntime", "artifact": str(artifact),
               "options": {"threads": threads}, "sets": job_sets, "batch": 128, "result": str(Path(tmp) / "result.json")}
        result = device.run_job(job)
    preds = {k: np.asarray(v["predictions"]) for k, v in result["sets"].items()}
    summaries = [s.summary() for s in sets]
    return robustness_rows(summaries, base_meta(sets), preds, preds.get("clean"))
