"""How much of the measurement loop is spent outside the agent (issue: assemble once).

A 20-set, 4-candidate study on 224x224 RGB inputs (a small strided CNN given as a Python model
source; sklearn's digits upscaled to 224x224, 3 channels), transfer setting, on the local
device. The pipeline records, per device, the loop's wall time and the part spent inside agent
jobs (``Pipeline.timing``); everything else is host work between measurements (assembling
results.json, verifying sets, loading arrays). Goal: less than 5 % outside the agent.

    python benchmarks/measure_loop_overhead.py [--samples 32] [--out /tmp/loop-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small strided CNN for 3x224x224 inputs (random weights: this measures the harness)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=4, padding=3), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))
'''


def write_inputs(folder: Path, n_eval: int, n_calib: int) -> dict[str, str]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    x = np.repeat(np.repeat(np.repeat(x, 28, axis=2), 28, axis=3), 3, axis=1)  # 8x8 -> 3x224x224
    y = d.target.astype(np.int64)
    out = {}
    for role, sl in (("eval", slice(0, n_eval)), ("calib", slice(n_eval, n_eval + n_calib))):
        out[role] = str(folder / f"{role}.npz")
        np.savez(out[role], x=x[sl], y=y[sl])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=32, help="images per adversarial set")
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgebench-loop-overhead"))
    args = ap.parse_args()

    from edgebench.study.config import load_study
    from edgebench.study.pipeline import Pipeline

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    (args.out / "net224.py").write_text(MODEL)
    data = write_inputs(args.out, n_eval=64, n_calib=32)
    eps = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    study = {
        "name": "loop-overhead",
        "model": {"python": f"{args.out / 'net224.py'}:Net"},
        "data": {**data, "eval_count": 64, "calib_count": 32},
        "candidates": [
            "base",
            {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 0}}},
            {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}},
            {
                "name": "pruned-50+int8",
                "prune": {"ratio": 0.5, "finetune": {"epochs": 0}},
                "quantize": {"preset": "ort-cpu", "calib_samples": 32},
            },
        ],
        "attacks": {
            "samples": args.samples,
            "settings": ["transfer"],
            "suite": [
                {"name": "fgsm", "eps_255": eps},
                {"name": "pgd", "norm": "linf", "eps_255": eps, "steps": 2},
            ],
        },
        "profile": {"batches": [1], "iterations": 30, "min_duration_s": 0.3, "threads": 2, "profile_ops": False},
        "budgets": {"max_p99_latency_ms": None, "max_accuracy_drop": None, "max_robustness_drop": None},
    }
    path = args.out / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    pipe = Pipeline(load_study(path), args.out / "run")
    t0 = time.perf_counter()
    pipe.run()
    total = time.perf_counter() - t0
    sets = json.loads((args.out / "run" / "results.json").read_text())["attacks"]
    set_mb = sum(os.path.getsize(args.out / "run" / s["path"]) for s in sets) / 1e6
    for dev, t in pipe.timing.items():
        outside = t["loop_s"] - t["agent_jobs_s"]
        print(
            f"{dev}: {len(sets)} sets ({set_mb:.0f} MB), 4 candidates: measurement loop {t['loop_s']:.2f} s, "
            f"agent jobs {t['agent_jobs_s']:.2f} s, outside the agent {outside:.2f} s "
            f"= {100 * outside / t['loop_s']:.1f} % (goal < 5 %); whole run {total:.1f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
