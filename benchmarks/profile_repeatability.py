"""Repeatability: five consecutive ``edgebench profile`` runs of torchvision resnet18 (224x224,
batch 1, 2 threads) on the local device, each a fresh agent process, as a user would run them.

Reports every run's p50 (compute and end-to-end) and max/min of the p50s. Target: <= 1.10.

    python benchmarks/profile_repeatability.py [--runs 5] [--min-duration 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--min-duration", type=float, default=3.0)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from edgebench.study.profile import ProfileRequest, profile

    req = ProfileRequest(
        model="torchvision:resnet18",
        backend="onnxruntime",
        input_shape=(1, 3, 224, 224),
        threads=args.threads,
        warmup=10,
        iterations=args.iterations,
        min_duration_s=args.min_duration,
    )
    profile(ProfileRequest(**{**req.__dict__, "min_duration_s": 0.0, "iterations": 1}))  # export into the cache first
    p50 = {"end_to_end": [], "compute": []}
    cvs = {"end_to_end": [], "compute": []}
    loads = []
    for _ in range(args.runs):
        out = profile(req)
        loads.append(os.getloadavg()[0])
        for run in out["runs"]:
            p50[run["mode"]].append(run["latency_ms"]["p50"])
            cvs[run["mode"]].append(run["latency_ms"]["cv"])
    env = out["environment"]
    print(
        f"host: {env.get('cpu_model')}, {env.get('cpu_cores_logical')} logical cores, "
        f"{env['runtime']['backend']} {env['runtime']['version']}, threads {args.threads}; "
        f"1-min load average after each run: {', '.join(f'{x:.1f}' for x in loads)}"
    )
    print("| mode | p50 per run (ms) | CV per run | max/min |")
    print("|---|---|---|---|")
    rows = {}
    for mode in ("compute", "end_to_end"):
        ratio = max(p50[mode]) / min(p50[mode])
        rows[mode] = {"p50_ms": p50[mode], "cv": cvs[mode], "max_over_min": ratio}
        print(
            f"| {mode} | {', '.join(f'{v:.2f}' for v in p50[mode])} | "
            f"{', '.join(f'{c * 100:.0f}%' for c in cvs[mode])} | {ratio:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "load_average": loads}, indent=2))


if __name__ == "__main__":
    main()
