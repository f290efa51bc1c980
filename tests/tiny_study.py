"""The smallest study settings the end-to-end tests share: a LeNet-5 trained one epoch on 400
MNIST images, 100 evaluation images, and a profile of a few batch-1 iterations (the tests check
what is measured and where, not how fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

TINY_MODEL = {"arch": "lenet5", "train_epochs": 1}
TINY_DATA = {"name": "mnist", "eval_count": 100, "calib_count": 32, "train_count": 400}
TINY_PROFILE = {
    "batches": [1],
    "iterations": 10,
    "min_duration_s": 0.0,
    "warmup_iters": 1,
    "warmup_s": 0.0,
    "threads": 1,
}


def run_study(
    study: dict, tmp_path: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess, Path]:
    """``edgebench run`` on *study* written to *tmp_path* (a fresh process, as a user runs it),
    with *args* (e.g. ``--engine ray``); the result and the run folder."""
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(path), "--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    return res, out
