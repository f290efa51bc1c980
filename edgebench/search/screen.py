"""The cheap screen: a trial's exported artifact scored on the host before any device time.

Clean accuracy on the evaluation set and mean accuracy over the adversarial sets (crafted on
base), both through ONNX Runtime on this host's CPU, plus MACs and artifact size from the
manifest. Device measurements are reserved for the trials that do well here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _predict(session: object, x: np.ndarray, batch: int = 256) -> np.ndarray:
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    out = [session.run(None, {name: x[i : i + batch]})[0].argmax(1) for i in range(0, len(x), batch)]  # type: ignore[attr-defined]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def screen_artifact(run_dir: Path, manifest: dict, sets: list) -> dict:
    """Host numbers for one built candidate: ``clean_accuracy``, ``robust_accuracy`` (mean over
    *sets*, the adversarial sets loaded with inputs), ``macs``, ``size_bytes``."""
    import onnxruntime as ort

    from edgebench.study.store import RunStore

    store = RunStore(run_dir)
    arrays = store.load_arrays("eval")
    assert arrays is not None, "eval arrays are written by the subject stage"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        str(run_dir / manifest["artifact"]["path"]), opts, providers=["CPUExecutionProvider"]
    )
    clean = float(np.mean(_predict(session, arrays["x"].astype(np.float32)) == arrays["y"]))
    robust = [float(np.mean(_predict(session, s.x_adv.astype(np.float32)) == s.labels)) for s in sets]
    return {
        "clean_accuracy": clean,
        "robust_accuracy": float(np.mean(robust)) if robust else None,
        "macs": manifest.get("macs"),
        "size_bytes": manifest["artifact"]["size_bytes"],
    }
