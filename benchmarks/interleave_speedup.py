"""Speed-ups that hold on a busy machine (issue 19): the headline speed-up of pruned-50+int8 over
base, timed by edgebench under three host loads, with interleaved rounds and without.

Builds the resnet18 study (studies/torchvision-resnet18.yaml, random weights, on an ImageFolder of
MNIST digits written here, as benchmarks/user_model_resnet18.py does) once, then re-times the
same four artifacts six times: ``profile.interleave`` true and false, each on an idle host, with
one busy process, and with two busy processes that switch on and off every few seconds (other
people's jobs starting and stopping). Only the profiles are redone: each condition runs in a copy
of the built run folder without its profile files, so every number comes from the same
artifacts.

Usage: python benchmarks/interleave_speedup.py [--size 224] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from user_model_resnet18 import write_image_folder  # noqa: E402

HEADLINE = "pruned-50+int8"
LOADS = {
    "idle": (0, None),
    "1 busy process": (1, None),
    "2 busy processes, on/off": (2, (3.0, 2.0)),  # busy 3 s, idle 2 s, out of phase
}


def _burn(duty: tuple[float, float] | None, phase: float) -> None:
    """A busy loop, or one busy for duty[0] s then idle for duty[1] s, starting *phase* s late."""
    time.sleep(phase)
    while True:
        end = time.time() + (duty[0] if duty else 3600.0)
        while time.time() < end:
            pass
        if duty:
            time.sleep(duty[1])


def _study(images: Path, size: int, threads: int) -> dict:
    study = yaml.safe_load((ROOT / "studies" / "torchvision-resnet18.yaml").read_text())
    study["data"].update(path=str(images), image_size=size)
    study["profile"]["threads"] = threads
    study["attacks"] = {"samples": 2, "settings": ["transfer"], "suite": [{"name": "fgsm", "eps_255": [8]}]}
    study["profile"].update(profile_ops=False)
    return study


def _run(study: dict, folder: Path) -> dict:
    path = folder.parent / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(path), "--out", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    if proc.returncode not in (0, 1, 3, 4):
        sys.exit(f"edgebench run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"edgebench run printed no JSON ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")


def _headline(results: dict) -> dict[str, Any]:
    cands = {c["name"]: c["devices"]["local"] for c in results["candidates"]}
    base, cand = cands["base"], cands[HEADLINE]
    sp = cand.get("speedup")
    drift = (cand.get("timing_pass") or {}).get("drift") or {}
    return {
        "base_p50_ms": base["latency_ms"]["p50"],
        "cand_p50_ms": cand["latency_ms"]["p50"],
        "ratio_of_p50": base["latency_ms"]["p50"] / cand["latency_ms"]["p50"],
        "speedup": sp["ratio"] if sp else None,
        "ci95": sp["ci95"] if sp else None,
        "drift": drift.get("change"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (the study's: 2)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="eb-interleave-"))
    work.mkdir(parents=True, exist_ok=True)
    study = _study(write_image_folder(work / "images"), args.size, args.threads)
    built = work / "built"
    t0 = time.perf_counter()
    _run(study, built)  # builds every candidate (and times them once: discarded)
    print(f"built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows = []
    for interleave in (True, False):
        for load, (procs, duty) in LOADS.items():
            folder = work / f"{'interleaved' if interleave else 'sequential'}-{procs}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(
                built, folder, ignore=shutil.ignore_patterns("profile*.json", "study.json", "results.json", "report*")
            )
            burners = [mp.Process(target=_burn, args=(duty, i * 2.5), daemon=True) for i in range(procs)]
            for p in burners:
                p.start()
            try:
                t1 = time.perf_counter()
                results = _run({**study, "profile": {**study["profile"], "interleave": interleave}}, folder)
            finally:
                for p in burners:
                    p.terminate()
            row = {"interleave": interleave, "load": load, "wall_s": time.perf_counter() - t1, **_headline(results)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(f"| protocol | host load | base p50 ms | {HEADLINE} p50 ms | speed-up | 95 % interval | base drift |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["speedup"] if r["speedup"] is not None else r["ratio_of_p50"]
        ci = f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]" if r["ci95"] and r["ci95"][0] else "none"
        drift = f"{r['drift']:+.0%}" if r["drift"] is not None else "n/a"
        proto = "interleaved" if r["interleave"] else "sequential"
        print(
            f"| {proto} | {r['load']} | {r['base_p50_ms']:.2f} | {r['cand_p50_ms']:.2f} | {ratio:.2f}x | {ci} | {drift} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
