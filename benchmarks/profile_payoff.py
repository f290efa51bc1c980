"""Payoff: torchvision resnet18 (224x224, batch 1, 2 threads, random weights) pruned 50 %
(structured, L1 magnitude, round_to 8, no fine-tune) + INT8 (ONNX Runtime static QDQ, U8
activations, S8 per-channel weights, calibrated on random [0,1) images), against the base
model on ONNX Runtime fp32 (target >= 5x) and on torch eager fp32 (target >= 10x).

All three run in the same process, interleaved over rounds (median of the round p50s), through
edgebench's own backends (end-to-end latency: host arrays in and out) on the same random inputs.
Torch eager = the ``torch.export`` program's module run eagerly by ``TorchBackend``.

    python benchmarks/profile_payoff.py [--rounds 5] [--seconds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import onnxruntime
    import torch
    import torchvision

    from edgebench.backends.onnxruntime import OnnxRuntimeBackend
    from edgebench.backends.options import BackendOptions, TimingBudget
    from edgebench.backends.torch import TorchBackend
    from edgebench.compress.finetune import FinetuneSpec
    from edgebench.compress.prune import PruneSpec, prune
    from edgebench.compress.quantize import QuantSpec, quantize_static
    from edgebench.export.onnx import export_onnx
    from edgebench.measure.onnx_stats import onnx_stats

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    shape = (1, 3, 224, 224)
    tmp = Path(tempfile.mkdtemp(prefix="edgebench-payoff-"))
    base = torchvision.models.resnet18(weights=None).eval()
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(base, (example,))
    torch.export.save(ep, str(tmp / "base.pt2"))
    pruned = prune(base, PruneSpec(ratio=0.5, criterion="l1", round_to=8, finetune=FinetuneSpec(epochs=0)), example)
    base_onnx = export_onnx(base, tmp / "base-fp32.onnx", shape)
    pruned_onnx = export_onnx(pruned, tmp / "pruned50-fp32.onnx", shape)
    calib = np.random.default_rng(1).random((args.calib, *shape[1:]), dtype=np.float32)
    pruned_int8 = quantize_static(
        pruned_onnx, tmp / "pruned50-int8.onnx", calib, QuantSpec(preset="ort-cpu", calib_samples=args.calib)
    )
    x = np.random.default_rng(2).random((8, *shape[1:]), dtype=np.float32)

    opts = BackendOptions(threads=args.threads)
    backends = {
        "torch eager fp32 (base)": TorchBackend(str(tmp / "base.pt2"), opts).open(),
        "onnxruntime fp32 (base)": OnnxRuntimeBackend(str(base_onnx), opts).open(),
        "onnxruntime int8 (pruned 50 % + int8)": OnnxRuntimeBackend(str(pruned_int8), opts).open(),
    }
    macs = {"base": onnx_stats(base_onnx).macs, "pruned": onnx_stats(pruned_int8).macs}
    budget = TimingBudget(warmup_iters=10, warmup_s=0.5, iterations=20, min_duration_s=args.seconds)
    p50s: dict[str, list[float]] = {k: [] for k in backends}
    try:
        feeds = {k: [{b.input_specs()[0].name: x[i : i + 1]} for i in range(len(x))] for k, b in backends.items()}
        for r in range(args.rounds):
            order = list(backends) if r % 2 == 0 else list(reversed(backends))
            for k in order:
                p50s[k].append(backends[k].time(feeds[k], budget, mode="end_to_end").summary()["p50"])
    finally:
        for b in backends.values():
            b.close()
    med = {k: float(np.median(v)) for k, v in p50s.items()}
    small = med["onnxruntime int8 (pruned 50 % + int8)"]
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, threads {args.threads}, "
        f"{args.rounds} rounds x >= {args.seconds} s each; 1-min load average at the end {os.getloadavg()[0]:.1f}"
    )
    print(
        f"MACs/image: base {macs['base']:,}, pruned {macs['pruned']:,}; sizes: base ONNX "
        f"{base_onnx.stat().st_size / 1048576:.1f} MiB, pruned+int8 {pruned_int8.stat().st_size / 1048576:.1f} MiB"
    )
    print("| model | round p50s (ms) | median p50 ms | speed-up of pruned+int8 |")
    print("|---|---|---|---|")
    for k, v in p50s.items():
        print(f"| {k} | {', '.join(f'{t:.2f}' for t in v)} | {med[k]:.2f} | {med[k] / small:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"p50s": p50s, "median": med, "macs": macs}, indent=2))


if __name__ == "__main__":
    main()
