"""8 candidates x 3 devices (the local CPU and two loopback sshd "boards"): wall time of
``edgebench run`` with the default engine against ``--engine ray`` (a local Ray started by the
command), plus Ray's scheduling overhead per task.

Usage::

    python benchmarks/scale_ray.py [--rounds 1] [--noop 200] [--out /tmp/scale-bench]

Each round runs both engines into fresh run folders (the trained base model is cached first, so
neither pays for training). Reported: wall seconds per engine, per-measurement task durations and
the idle gap between consecutive measurements on one device (from engine/ray_tasks.json), and a
no-op task's round trip through a capacity-1 custom resource (serial, and 200 queued at once).
The machine's load average is printed with every number: on a shared host, read ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ["local", "board-a", "board-b"]
CANDIDATES = [
    "base",
    {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 64}},
    {"name": "pruned-25", "prune": {"ratio": 0.25, "finetune": {"epochs": 1}}},
    {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}},
    {"name": "pruned-75", "prune": {"ratio": 0.75, "finetune": {"epochs": 1}}},
    {
        "name": "pruned-25+int8",
        "prune": {"ratio": 0.25, "finetune": {"epochs": 1}},
        "quantize": {"preset": "ort-cpu", "calib_samples": 64},
    },
    {
        "name": "pruned-50+int8",
        "prune": {"ratio": 0.5, "finetune": {"epochs": 1}},
        "quantize": {"preset": "ort-cpu", "calib_samples": 64},
    },
    {
        "name": "pruned-75+int8",
        "prune": {"ratio": 0.75, "finetune": {"epochs": 1}},
        "quantize": {"preset": "ort-cpu", "calib_samples": 64},
    },
]
STUDY = {
    "name": "scale",
    "model": {"arch": "lenet5", "train_epochs": 1},
    "data": {"name": "mnist", "eval_count": 200, "calib_count": 64, "train_count": 1000},
    "candidates": CANDIDATES,
    "attacks": {"samples": 32, "suite": [{"name": "fgsm", "eps_255": [8, 16]}]},
    "profile": {
        "batches": [1],
        "iterations": 50,
        "min_duration_s": 0.5,
        "warmup_iters": 5,
        "threads": 1,
        "profile_ops": False,
    },
    "devices": DEVICES,
}


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def timed_run(study: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(study), "--out", str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(extra) or 'local'}): {res.stderr[-2000:]}")
    return wall


def gaps(record: dict) -> tuple[list[float], list[float]]:
    """Per measurement task: its duration, and the idle time on its device before it started."""
    durations, idle = [], []
    for dev in DEVICES:
        spans = sorted((t["start"], t["end"]) for t in record["tasks"] if t["device"] == dev)
        durations += [e - s for s, e in spans]
        idle += [b_start - a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
    return durations, idle


def noop_overhead(n: int) -> dict:
    import ray

    ray.init(num_cpus=1, resources={"edgebench_device_bench": 1}, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=0, resources={"edgebench_device_bench": 1})
    def noop(i: int) -> int:
        return i

    ray.get(noop.remote(0))  # a worker started
    serial = []
    for i in range(n):
        t0 = time.perf_counter()
        ray.get(noop.remote(i))
        serial.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(n)])
    queued = (time.perf_counter() - t0) / n
    ray.shutdown()
    return {"serial_median_ms": 1000 * statistics.median(serial), "queued_per_task_ms": 1000 * queued}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--noop", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "devices"))  # the test sshd helper
    os.environ["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
    )
    base = args.out or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EDGEBENCH_CACHE_DIR", str(base / "cache"))
    os.environ["EDGEBENCH_INVENTORY"] = str(base / "devices.yaml")
    os.environ["EDGEBENCH_DEVICES_DIR"] = str(ROOT / "devices")
    from loopback import LoopbackSshd

    from edgebench.devices.inventory import add_device

    servers = [LoopbackSshd(base / f"sshd-{n}", name=n).start() for n in ("board-a", "board-b")]
    try:
        for s in servers:
            add_device(s.spec(s.name), replace=True)
        study = base / "study.yaml"
        study.write_text(yaml.safe_dump(STUDY))
        t0 = time.perf_counter()
        warm = subprocess.run(
            [sys.executable, "-m", "edgebench", "compress", str(study), "--out", str(base / "warm")],
            capture_output=True,
            text=True,
        )
        if warm.returncode != 0:
            raise SystemExit(warm.stderr[-2000:])
        print(f"8 candidates x 3 devices ({', '.join(DEVICES)}); cpu count {os.cpu_count()}")
        print(f"edgebench compress (train base once, then 8 builds in sequence): {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "edgebench", "compress", str(study), "--out", str(base / "warm2")],
            capture_output=True,
            check=True,
        )
        print(f"8 builds in sequence, base model cached: {time.perf_counter() - t0:.1f} s (load {load()})")
        for r in range(args.rounds):
            for engine in ("local", "ray"):
                la = load()
                extra = ("--engine", "ray") if engine == "ray" else ()
                out = base / f"run-{engine}-{r}"
                wall = timed_run(study, out, *extra)
                line = f"round {r} engine {engine:5s}: wall {wall:6.1f} s (load before {la}, after {load()})"
                if engine == "ray":
                    d, idle = gaps(json.loads((out / "engine" / "ray_tasks.json").read_text()))
                    line += (
                        f"; measurement task median {statistics.median(d):.2f} s, "
                        f"idle gap between tasks on a device median {statistics.median(idle) * 1000:.0f} ms"
                    )
                print(line, flush=True)
        la = load()
        print(f"no-op task through a capacity-1 resource ({args.noop} tasks, load {la}): {noop_overhead(args.noop)}")
    finally:
        for s in servers:
            s.kill()


if __name__ == "__main__":
    main()
