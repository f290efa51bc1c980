"""ONNX Runtime CPU latency at batch 1: fp32 vs INT8 (ort-cpu preset) vs INT8 (tensorrt preset),
plus the 50 %-pruned (round_to 8) model, on torchvision resnet18 (random weights, 10 classes).

All models are timed in the same run, interleaved over several rounds (the median of the round
p50s is reported), on real images: crops of sklearn's two sample photos, scaled to [0, 1]. The
calibration crops and the timing crops do not overlap.

    python benchmarks/compress_int8_latency.py [--size 112] [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np


def crops(n: int, size: int, seed: int) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = imgs[i % len(imgs)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        out[i] = img[y : y + size, x : x + size].transpose(2, 0, 1) / 255.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="measurement time per model per round")
    args = ap.parse_args()

    import onnxruntime
    import torch
    from torchvision.models import resnet18

    from edgebench.backends.onnxruntime import OnnxRuntimeBackend
    from edgebench.backends.options import BackendOptions, TimingBudget
    from edgebench.compress.finetune import FinetuneSpec
    from edgebench.compress.prune import PruneSpec, prune
    from edgebench.compress.quantize import QuantSpec, quantize_static
    from edgebench.compress.stats import count_macs, count_params
    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    shape = (1, 3, args.size, args.size)
    base = resnet18(weights=None, num_classes=10).eval()
    pruned = prune(base, PruneSpec(ratio=0.5, round_to=8, finetune=FinetuneSpec(epochs=0)), torch.rand(*shape))
    calib = crops(64, args.size, seed=1)
    timing = crops(16, args.size, seed=2)
    tmp = Path(tempfile.mkdtemp(prefix="edgebench-bench-"))
    fp32 = export_onnx(base, tmp / "fp32.onnx", shape)
    p_fp32 = export_onnx(pruned, tmp / "pruned50-fp32.onnx", shape)
    models = {
        "fp32": fp32,
        "int8 ort-cpu": quantize_static(fp32, tmp / "int8-ortcpu.onnx", calib, QuantSpec(calib_samples=64)),
        "int8 tensorrt": quantize_static(
            fp32, tmp / "int8-trt.onnx", calib, QuantSpec(preset="tensorrt", calib_samples=64)
        ),
        "pruned50 fp32": p_fp32,
        "pruned50 int8 ort-cpu": quantize_static(
            p_fp32, tmp / "pruned50-int8.onnx", calib, QuantSpec(calib_samples=64)
        ),
    }
    macs = {"fp32": count_macs(base, shape), "pruned50": count_macs(pruned, shape)}
    budget = TimingBudget(warmup_iters=10, warmup_s=0.3, iterations=30, min_duration_s=args.seconds)
    p50s: dict[str, list[float]] = {k: [] for k in models}
    backends = {k: OnnxRuntimeBackend(str(p), BackendOptions(threads=args.threads)).open() for k, p in models.items()}
    try:
        feeds = {
            k: [{b.input_specs()[0].name: timing[i : i + 1]} for i in range(len(timing))] for k, b in backends.items()
        }
        for _ in range(args.rounds):
            for k, b in backends.items():
                p50s[k].append(b.time(feeds[k], budget, mode="end_to_end").summary()["p50"])
    finally:
        for b in backends.values():
            b.close()
    ref = float(np.median(p50s["fp32"]))
    print(
        f"resnet18 (10 classes, random weights) {shape}, ORT {onnxruntime.__version__} CPU, threads={args.threads}, "
        f"{platform.processor() or platform.machine()}, {args.rounds} rounds"
    )
    print(
        f"params fp32 {count_params(base)}, pruned50 {count_params(pruned)}; MACs fp32 {macs['fp32']}, pruned50 {macs['pruned50']}"
    )
    print("| model | size KiB | p50 ms (median of rounds) | min..max of round p50s | speed-up vs fp32 |")
    print("|---|---|---|---|---|")
    for k, v in p50s.items():
        med = float(np.median(v))
        print(
            f"| {k} | {models[k].stat().st_size / 1024:.0f} | {med:.3f} | {min(v):.3f}..{max(v):.3f} | {ref / med:.2f}x |"
        )


if __name__ == "__main__":
    main()
