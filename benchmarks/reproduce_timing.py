"""How long each seed-paper reproduction takes on this host: ``edgebench run studies/merkle.yaml``
and ``studies/gap.yaml``, with the default engine and with ``--engine ray`` (a local Ray started
by the command), each into a fresh run folder.

Usage::

    python benchmarks/reproduce_timing.py [--study studies/merkle.yaml ...] [--engine local --engine ray]
        [--seeds 1] [--out /tmp/repro-bench] [--json]

``--seeds N`` runs the first N seeds of a study's ``seeds:`` (the committed numbers run them
all; timing one seed and multiplying is how a 2-core host can afford both engines). Each seed's
base model is trained into a private cache first (a run of the base alone), so neither engine
pays for training. Reported per study and engine: wall seconds, seeds run, the per-seed wall
time, and the host's load average before and after (on a shared host, read ratios). Progress on
stderr; a Markdown table (or ``--json``) on stdout.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDIES = [ROOT / "studies" / "merkle.yaml", ROOT / "studies" / "gap.yaml"]


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def with_seeds(study: Path, n: int | None, folder: Path) -> Path:
    """The study with only its first *n* seeds (all when None), written beside the runs."""
    data = yaml.safe_load(study.read_text(encoding="utf-8"))
    if n is not None and data.get("seeds"):
        data["seeds"] = data["seeds"][:n]
    out = folder / study.name
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def warm_study(study: Path, folder: Path) -> Path:
    """The same model, data and seeds with only the base and one cheap attack: running it trains
    and caches each seed's base model (the cache key is model, data and seed), nothing else."""
    data = yaml.safe_load(study.read_text(encoding="utf-8"))
    data["candidates"] = ["base"]
    data["attacks"] = {"samples": 8, "settings": ["transfer"], "suite": [{"name": "fgsm", "eps_255": [8]}]}
    data["profile"] = {"batches": [1], "iterations": 5, "min_duration_s": 0.0, "warmup_iters": 1, "warmup_s": 0.0}
    out = folder / f"warm-{study.name}"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def timed_run(study: Path, out: Path, engine: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edgebench", "run", str(study), "--out", str(out), "--quiet", "--engine", engine]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", action="append", type=Path, help="study file (repeat; default: merkle and gap)")
    ap.add_argument("--engine", action="append", choices=["local", "ray"], help="engine (repeat; default: both)")
    ap.add_argument("--seeds", type=int, default=None, help="run only the first N seeds of each study")
    ap.add_argument("--out", type=Path, default=None, help="folder for the run folders (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    studies = args.study or STUDIES
    engines = args.engine or ["local", "ray"]
    out = args.out or Path(tempfile.mkdtemp(prefix="repro-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDGEBENCH_CACHE_DIR": str(out / "cache"), "PYTHONPATH": str(ROOT)}
    rows = []
    for study in studies:
        path = with_seeds(study, args.seeds, out)
        seeds = (yaml.safe_load(path.read_text()) or {}).get("seeds") or [0]
        # warm the model cache (training the base is not what is being timed)
        print(f"training and caching {study.name}'s base models ...", file=sys.stderr)
        timed_run(warm_study(path, out), out / f"warm-{study.stem}", "local", env)
        for engine in engines:
            before = load()
            print(f"{study.name} --engine {engine} (load {before}) ...", file=sys.stderr)
            wall = timed_run(path, out / f"{study.stem}-{engine}", engine, env)
            row = {
                "study": study.name,
                "engine": engine,
                "seeds": len(seeds),
                "wall_s": round(wall, 1),
                "per_seed_s": round(wall / len(seeds), 1),
                "load_before": before,
                "load_after": load(),
            }
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| study | engine | seeds | wall s | per seed s | load before / after |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['study']} | {r['engine']} | {r['seeds']} | {r['wall_s']} | {r['per_seed_s']} | "
            f"{r['load_before']} / {r['load_after']} |"
        )


if __name__ == "__main__":
    main()
