"""Adaptive sampling's rounds on disk, and what results.json reads of them.

A round attacks evaluation images ``start..end-1`` that no earlier stage attacked. It is a run
folder of its own, so the stage functions run in it unchanged (:mod:`edgebench.study.adaptive`)::

    adaptive/record.json                     the plan: rounds (images, members, what is measured) and cells
    adaptive/round-<k>/data/eval.npz         the round's images (base_logits.npz: the base's outputs on them)
    adaptive/round-<k>/artifacts/<c>.json    the candidates' manifests, pointing at ../../artifacts/<c>.onnx
    adaptive/round-<k>/attacks/...           transfer sets on the round's images (rounds past attacks.samples)
    adaptive/round-<k>/attacks/whitebox/<c>/ white-box sets crafted on the round's images
    adaptive/round-<k>/measurements/<c>/<device>/replay*.json

Inside a round, images are numbered from 0; :func:`more_outcomes` shifts them by ``start`` so
that the per-image outcomes join the main run's (:func:`edgebench.robustness.worstcase.extended`).
Only what a round records as measured (``measured``: candidate -> devices, written after each
replay finishes) enters results.json, so an interrupted round changes nothing until it resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgebench.robustness.worstcase import Outcome
from edgebench.study.store import RunStore
from edgebench.study.whitebox import MoreFn, divergence_rows, transfer_outcomes, whitebox_rows
from edgebench.util.io import atomic_write_json, read_json

SCHEMA = "edgebench.adaptive/1"
FOLDER = "adaptive"


def record_path(store: RunStore) -> Path:
    return store.root / FOLDER / "record.json"


def read_record(store: RunStore) -> dict[str, Any] | None:
    """The adaptive record of the run folder (None: adaptive sampling never ran there)."""
    path = record_path(store)
    return read_json(path, "adaptive sampling record") if path.is_file() else None


def write_record(store: RunStore, record: dict[str, Any]) -> None:
    atomic_write_json(record_path(store), record)


def round_store(store: RunStore, number: int) -> RunStore:
    """The run folder of round *number*."""
    return RunStore(store.root / FOLDER / f"round-{number}")


def _shifted(o: Outcome, start: int) -> Outcome:
    return Outcome(o.row, o.setting, o.norm, o.eps, np.asarray(o.indices, dtype=np.int64) + start, o.correct)


def round_outcomes(
    store: RunStore, rnd: dict[str, Any], candidate: str, device: str, y_eval: np.ndarray
) -> list[Outcome]:
    """Per-image outcomes of *candidate*'s engine on *device* over one round's images, numbered
    as in the run's evaluation set: transfer sets (when the round crafted them), white-box and
    divergence sets (none when the candidate is not measured there)."""
    from edgebench.robustness.store import load_folder

    if device not in (rnd.get("measured") or {}).get(candidate, []):
        return []
    rs = round_store(store, int(rnd["round"]))
    replay = rs.load(candidate, device, "replay")
    if replay is None:
        return []
    start, end = int(rnd["start"]), int(rnd["end"])
    y = y_eval[start:end]
    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    clean = preds.pop("clean")
    sets = load_folder(rs.attacks_dir, inputs=False) if (rs.attacks_dir / "attacks.json").is_file() else []
    outcomes = transfer_outcomes(sets, preds, y)
    _, sur, wb = whitebox_rows(rs, candidate, device, y, clean, preds)
    _, div = divergence_rows(rs, candidate, device, y, clean, sur)
    return [_shifted(o, start) for o in outcomes + wb + div]


def more_outcomes(store: RunStore, device: str, y_eval: np.ndarray) -> MoreFn | None:
    """Per candidate name, the outcomes adaptive sampling added on *device* (None: no rounds)."""
    record = read_record(store)
    if not record or not record.get("rounds"):
        return None
    rounds = list(record["rounds"])

    def more(candidate: str) -> list[Outcome]:
        return [o for rnd in rounds for o in round_outcomes(store, rnd, candidate, device, y_eval)]

    return more


def cell_record(store: RunStore, candidate: str, device: str) -> dict[str, Any] | None:
    """``DeviceEntry.adaptive``: what adaptive sampling did for this candidate on this device
    (None when its verdict never needed it)."""
    record = read_record(store)
    cell = ((record or {}).get("cells") or {}).get(candidate, {}).get(device)
    if cell is None:
        return None
    keys = ("images_before", "images", "added", "rounds", "cap", "outcome", "detail")
    return {k: cell[k] for k in keys if k in cell}


__all__ = [
    "FOLDER",
    "SCHEMA",
    "cell_record",
    "more_outcomes",
    "read_record",
    "record_path",
    "round_outcomes",
    "round_store",
    "write_record",
]
