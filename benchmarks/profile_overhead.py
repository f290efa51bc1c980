"""Harness overhead: edgebench's reported p50 (``Backend.time`` on an ``OnnxRuntimeBackend``,
end-to-end mode) against a bare ``session.run`` loop over the *same* session and inputs.

The two are interleaved in rounds within one process so machine noise hits both alike; the
ratio of the medians of all samples is reported per model. Target: ratio <= 1.03.

    python benchmarks/profile_overhead.py [--rounds 7] [--iterations 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {  # torchvision architecture, input size: a slow, a mid and a fast model
    "resnet18": 224,
    "mobilenet_v3_small": 224,
    "squeezenet1_1": 64,
}


def bare_loop(session, feeds: list[dict], n: int) -> list[float]:  # noqa: ANN001
    clock = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = clock()
        session.run(None, feeds[i % len(feeds)])
        out.append((clock() - t0) / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()

    from edgebench.backends.onnxruntime import OnnxRuntimeBackend
    from edgebench.backends.options import BackendOptions, TimingBudget
    from edgebench.subject.external import resolve_model

    tmp = Path(tempfile.mkdtemp(prefix="edgebench-overhead-"))
    budget = TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=args.iterations, min_duration_s=0.0)
    rows = []
    for arch, size in MODELS.items():
        model = resolve_model(f"torchvision:{arch}", "onnxruntime", (1, 3, size, size), cache=tmp)
        x = np.random.default_rng(0).random((8, 3, size, size), dtype=np.float32)
        with OnnxRuntimeBackend(str(model.artifact), BackendOptions(threads=args.threads)) as be:
            name = be.input_specs()[0].name
            feeds = [{name: x[i : i + 1]} for i in range(len(x))]
            session = be._session  # the very session the harness times
            for f in feeds * 3:  # common warm-up
                session.run(None, f)
            ours: list[float] = []
            bare: list[float] = []
            for r in range(args.rounds):
                # alternate which goes first so drift does not favour one side
                if r % 2 == 0:
                    ours += be.time(feeds, budget, mode="end_to_end").samples_ms
                    bare += bare_loop(session, feeds, args.iterations)
                else:
                    bare += bare_loop(session, feeds, args.iterations)
                    ours += be.time(feeds, budget, mode="end_to_end").samples_ms
        p50_ours, p50_bare = float(np.median(ours)), float(np.median(bare))
        rows.append(
            {
                "model": f"{arch} {size}x{size}",
                "edgebench_p50_ms": p50_ours,
                "bare_p50_ms": p50_bare,
                "ratio": p50_ours / p50_bare,
                "abs_overhead_us": (p50_ours - p50_bare) * 1e3,
                "samples_each": len(ours),
            }
        )
    # the harness alone: the null backend does no work, so its p50 is the harness's own cost
    from edgebench.backends.null import NullBackend

    with NullBackend(None, BackendOptions(input_shape=(1, 3, 64, 64))) as nb:
        feeds = [{"input": x[i : i + 1]} for i in range(len(x))]
        ours, bare = [], []
        for _ in range(args.rounds):
            ours += nb.time(feeds, TimingBudget(0, 0.0, 2000, 0.0), mode="end_to_end").samples_ms
            clock = time.perf_counter_ns
            for i in range(2000):
                t0 = clock()
                nb._execute(feeds[i % len(feeds)])
                bare.append((clock() - t0) / 1e6)
    p50_ours, p50_bare = float(np.median(ours)), float(np.median(bare))
    rows.append(
        {
            "model": "null backend (harness only)",
            "edgebench_p50_ms": p50_ours,
            "bare_p50_ms": p50_bare,
            "ratio": p50_ours / p50_bare,
            "abs_overhead_us": (p50_ours - p50_bare) * 1e3,
            "samples_each": len(ours),
        }
    )
    import onnxruntime

    print(
        f"host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
        f"threads {args.threads}, rounds {args.rounds} x {args.iterations} iterations, batch 1"
    )
    print("| model | edgebench p50 ms | bare session.run p50 ms | ratio | overhead us |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['edgebench_p50_ms']:.3f} | {r['bare_p50_ms']:.3f} | {r['ratio']:.3f} | {r['abs_overhead_us']:+.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
