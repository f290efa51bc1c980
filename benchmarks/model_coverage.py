"""Which zoo models edgebench can prune: every torchvision classifier and a set of timm edge
models, structured l1 pruning at one ratio (no fine-tuning, random weights, nothing downloaded).

Per model: pruned OK?, the parameter and MAC ratios actually reached, how many layers were left
whole (and why, in the JSON), the wall-clock seconds and the one-line error if any. Each model
runs in its own subprocess under a wall-clock limit, so a hang or a crash costs one row, never
the run. Results are appended as JSON lines as each model finishes; a rerun skips the models
already in the file (same ratio), so an interrupted run resumes. A markdown table of the selected
models is printed at the end.

The per-model work is :func:`prune_step` (build, prune, measure: one JSON-ready dict), called in
the child by :func:`run_child`; a fuller study (ONNX export, INT8, FGSM) adds steps after it.

Usage:
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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def run_child(key: str, ratio: float, size: int, trace_timeout_s: float, threads: int) -> None:
    """In the subprocess: one model, one JSON line on stdout (the last line)."""
    import logging
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(threads)
    try:
        record = prune_step(key, ratio, size, trace_timeout_s)
    except Exception as exc:  # noqa: BLE001 - one row says what went wrong, the run goes on
        msg = " ".join(str(exc).split())[:300]
        record = {"ok": False, "error": f"{type(exc).__name__}: {msg}"}
    print(json.dumps(record), flush=True)


def run_one(key: str, args: argparse.Namespace) -> dict[str, Any]:
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
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    base = {"model": key, "ratio": args.ratio, "input": size}
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
                    done[rec["model"]] = rec
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
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args.child, args.ratio, args.size, args.trace_timeout_s, args.threads)
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
