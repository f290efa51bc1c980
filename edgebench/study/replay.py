"""``edgebench replay`` on plain files: adversarial sets through a deployed artifact, on a device."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.agent.protocol import InputSet, PredictJob
from edgebench.backends.options import BackendOptions
from edgebench.errors import EdgebenchError


def scatter_base_clean(sets: list, n_eval: int) -> np.ndarray:
    """The base model's clean predictions over the evaluation set, from the sets' own records
    (-1 where no set covers a sample)."""
    out = np.full(n_eval, -1, dtype=np.int64)
    for s in sets:
        out[np.asarray(s.indices)] = np.asarray(s.base_clean_predictions)
    return out


def replay_sets(
    artifact: Path, attacks_dir: Path, device_name: str = "local", threads: int | None = None, clean: Path | None = None
) -> list[dict]:
    """Run every set in *attacks_dir* and the clean images through *artifact* on the device;
    return the robustness rows (see :func:`edgebench.robustness.metrics.robustness_rows`).

    The clean evaluation images (``x``, ``y``; needed for the transfer success rate) come from
    *clean*, or from ``data/eval.npz`` beside the attack folder inside a run folder.
    """
    from edgebench.devices.inventory import get_device
    from edgebench.devices.registry import open_device
    from edgebench.export.onnx import check_onnx
    from edgebench.robustness.metrics import robustness_rows
    from edgebench.robustness.store import load_folder

    check_onnx(artifact)  # missing or corrupt: one clear line before anything is sent to a device
    sets = load_folder(attacks_dir, inputs=False)
    if not sets:
        raise EdgebenchError(f"{attacks_dir}: no adversarial sets listed in attacks.json")
    clean = clean or (Path(attacks_dir).parent / "data" / "eval.npz")
    if not clean.is_file():
        raise EdgebenchError(
            f"clean evaluation images not found at {clean}: pass --clean EVAL.npz (arrays x, y) — the images the sets "
            "were crafted from, which the transfer success rate needs"
        )
    with np.load(clean, allow_pickle=False) as d:
        if "y" not in d.files:
            raise EdgebenchError(f"{clean}: expected arrays 'x' and 'y', found {d.files}")
        labels = d["y"]
    job_sets = [InputSet("clean", str(clean))]
    job_sets += [InputSet(s.id, str(Path(attacks_dir) / f"{s.id}.npz")) for s in sets]
    with open_device(get_device(device_name)) as device:
        job = PredictJob(artifact=str(artifact), sets=tuple(job_sets), options=BackendOptions(threads=threads))
        result = device.run_job(job)
    preds = {k: np.asarray(v["predictions"]) for k, v in result["sets"].items()}
    rows = robustness_rows(
        labels,
        scatter_base_clean(sets, len(labels)),
        {s.id: s.base_predictions for s in sets},
        preds["clean"],
        {s.id: preds[s.id] for s in sets},
        sets,
    )
    base_acc = {s.id: s.base_accuracy for s in sets}
    for r in rows:
        r["base_accuracy"] = base_acc[r["id"]]
    return rows
