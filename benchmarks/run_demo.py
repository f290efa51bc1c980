"""Wall time of `edgebench run` on the embedded default, and each candidate's speed-up over base.

Runs the CLI exactly as a user does, in a fresh run folder:
  * cold: an empty cache (the demo model is trained, the MNIST subset unpacked), then
  * warm: the cache kept, a new run folder (everything measured again; nothing resumed).
Speed-ups come from one run's results.json (all candidates measured in that run, on this host):
batch-1 p50 end-to-end and compute latency, and best throughput, relative to base.

Usage: python benchmarks/run_demo.py [--keep DIR]
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


def run(out: Path, cache: Path) -> tuple[float, dict]:
    env = dict(os.environ, EDGEBENCH_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", "--out", str(out), "--json"], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"edgebench run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def speedups(results: dict) -> list[dict]:
    rows = []
    for dev in results["devices"]:
        base = next(c for c in results["candidates"] if c["name"] == "base")["devices"][dev]
        for c in results["candidates"]:
            d = c["devices"][dev]
            rows.append(
                {
                    "device": dev,
                    "candidate": c["name"],
                    "p50_e2e_ms": d["latency_ms"]["p50"],
                    "p50_compute_ms": d["latency_compute_ms"]["p50"],
                    "speedup_e2e": base["latency_ms"]["p50"] / d["latency_ms"]["p50"],
                    "speedup_compute": base["latency_compute_ms"]["p50"] / d["latency_compute_ms"]["p50"],
                    "throughput_ips": d["throughput_ips"],
                    "speedup_throughput": d["throughput_ips"] / base["throughput_ips"],
                    "size_kib": c["artifact"]["size_bytes"] / 1024,
                    "clean_accuracy": d["clean_accuracy"],
                    "verdict": d["verdict"]["status"],
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="keep the run folders here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        cache = Path(tmp) / "cache"
        cold, _ = run(root / "cold", cache)
        warm, results = run(root / "warm", cache)
    print(f"load average at end: {os.getloadavg()}")
    print(f"edgebench run, cold cache (trains the demo model): {cold:.1f} s")
    print(f"edgebench run, warm cache (new run folder):         {warm:.1f} s")
    print(
        "| candidate | p50 e2e ms | speed-up | p50 compute ms | speed-up | best items/s | speed-up | size KiB | clean acc | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in speedups(results):
        print(
            f"| {r['candidate']} | {r['p50_e2e_ms']:.4f} | {r['speedup_e2e']:.2f}x | {r['p50_compute_ms']:.4f} | "
            f"{r['speedup_compute']:.2f}x | {r['throughput_ips']:.0f} | {r['speedup_throughput']:.2f}x | "
            f"{r['size_kib']:.1f} | {r['clean_accuracy']:.3f} | {r['verdict']} |"
        )


if __name__ == "__main__":
    main()
