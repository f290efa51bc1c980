"""edgebench's CUDA *compute* latency (the torch backend, ``mode="compute"``: host clock around
the forward pass + ``torch.cuda.synchronize``) against a bare CUDA-event loop on the same module
and inputs: how much the harness adds. Goal: median ratio of p50s <= 1.02 per batch size.

The module is torchvision's ResNet-18 at 224 x 224 (random weights), saved as an ExportedProgram
(``.pt2``) per batch size and loaded the one way both sides share
(:func:`edgebench.backends.torch.load_module`). The two loops run in alternating rounds so they
meet the same clocks and temperatures; each round's ratio is edgebench's p50 over the bare p50.

    python benchmarks/cuda_compute_overhead.py --out OUT_DIR [--batches 1,32] [--rounds 5]

Writes ``cuda_compute_overhead.json`` and ``cuda_compute_overhead.md`` (a block for
benchmarks/RESULTS.md) into OUT_DIR. Without CUDA it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

GOAL = 1.02


def _export(batch: int, folder: Path) -> Path:
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(batch, 3, 224, 224)
    path = folder / f"resnet18-b{batch}.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    return path


def _bare_p50(module: object, x: object, iters: int, warmup: int) -> float:
    """p50 (ms) of CUDA events recorded around the module's forward pass, on the current stream."""
    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            module(x)  # type: ignore[operator]
            end.record()
            end.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(end))
    return float(np.percentile(times, 50))


def _edgebench_p50(path: Path, x: np.ndarray, iters: int, warmup: int) -> tuple[float, dict]:
    from edgebench.backends.options import BackendOptions, TimingBudget
    from edgebench.backends.torch import TorchBackend

    with TorchBackend(str(path), BackendOptions(device="cuda")) as be:
        res = be.time(
            [{"input": x}],
            TimingBudget(warmup_iters=warmup, warmup_s=0.2, iterations=iters, min_duration_s=0.5),
            mode="compute",
        )
        return float(res.summary()["p50"]), be.environment()


def measure(batches: list[int], rounds: int, iters: int, warmup: int) -> dict:
    import torch

    from edgebench.backends.torch import load_module

    out: dict = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "model": "torchvision resnet18, 224x224, random weights (.pt2)",
        "goal_ratio": GOAL,
        "rounds": rounds,
        "iterations": iters,
        "batches": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for batch in batches:
            path = _export(batch, Path(tmp))
            x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
            module, _, _ = load_module(path, "cuda")
            xt = torch.from_numpy(x).cuda()
            ours, bare, env = [], [], {}
            for _ in range(rounds):
                p50, env = _edgebench_p50(path, x, iters, warmup)
                ours.append(p50)
                bare.append(_bare_p50(module, xt, iters, warmup))
            ratios = [a / b for a, b in zip(ours, bare)]
            out["batches"][str(batch)] = {
                "edgebench_p50_ms": ours,
                "bare_cuda_event_p50_ms": bare,
                "ratio_per_round": ratios,
                "ratio_median": statistics.median(ratios),
                "meets_goal": statistics.median(ratios) <= GOAL,
                "gpu_max_memory_allocated_mb": env.get("gpu_max_memory_allocated_mb"),
            }
    return out


def markdown(r: dict) -> str:
    lines = [
        f"### CUDA compute latency: edgebench vs a bare CUDA-event loop ({r['gpu']})",
        "",
        f"{r['model']}; torch {r['torch']}, CUDA {r['cuda']}, cuDNN {r['cudnn']}; {r['rounds']} alternating "
        f"rounds of {r['iterations']} timed iterations each (`benchmarks/cuda_compute_overhead.py`).",
        "",
        "| batch | edgebench p50 (ms, median of rounds) | bare CUDA events p50 (ms) | ratio (median) | goal <= "
        f"{r['goal_ratio']} |",
        "|---|---|---|---|---|",
    ]
    for batch, b in r["batches"].items():
        lines.append(
            f"| {batch} | {statistics.median(b['edgebench_p50_ms']):.3f} | {statistics.median(b['bare_cuda_event_p50_ms']):.3f} "
            f"| {b['ratio_median']:.3f} | {'met' if b['meets_goal'] else 'NOT met'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"cuda_compute_overhead: skipped: no CUDA GPU here (torch {torch.__version__})")
        return 0
    r = measure([int(b) for b in args.batches.split(",")], args.rounds, args.iterations, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_compute_overhead.json").write_text(json.dumps(r, indent=2) + "\n")
    md = markdown(r)
    (args.out / "cuda_compute_overhead.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
