"""Regenerate ``results.json``: a hand-specified run following docs/results.md.

Run ``python tests/report/data/make_fixture.py`` from the repository root. The numbers are
chosen by hand (a LeNet-5 on MNIST, four candidates, one local device); latency samples are
drawn from a seeded generator and summarized with edgebench's own statistics so the keys and
their relations (p50 <= p99, cv = std/mean, ...) are exactly what the pipeline writes.
Deliberate oddities: one candidate name carries HTML (``<script>``), the hostname carries an
``<img onerror>`` payload, and several values are null (unmeasured).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgebench.measure.stats import summarize_latency
from edgebench.results import SCHEMA, validate_results

EVIL = "pruned-50+int8<script>alert(1)</script>"
EPS_LINF = (1, 2, 4, 8, 16)
ATTACKS = (
    [{"id": "fgsm-linf-8", "attack": "fgsm", "norm": "linf", "eps": 8 / 255, "params": {}}]
    + [{"id": f"pgd-linf-{k}", "attack": "pgd", "norm": "linf", "eps": k / 255,
        "params": {"steps": 10, "rel_stepsize": 0.25, "random_start": True}} for k in EPS_LINF]
    + [{"id": "pgd-l2-1.0", "attack": "pgd", "norm": "l2", "eps": 1.0,
        "params": {"steps": 10, "rel_stepsize": 0.25, "random_start": True}}]
)
BASE_ADV = {"fgsm-linf-8": 0.742, "pgd-linf-1": 0.969, "pgd-linf-2": 0.941, "pgd-linf-4": 0.852,
            "pgd-linf-8": 0.512, "pgd-linf-16": 0.043, "pgd-l2-1.0": 0.617}


def wilson(p: float, n: int, z: float = 1.959964) -> list[float]:
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return [round(centre - half, 6), round(centre + half, 6)]


def latency(rng: np.random.Generator, median: float, spread: float, n: int = 200, batch: int = 1) -> dict:
    samples = median * (1 + spread * rng.standard_normal(n) ** 2)
    out = summarize_latency(samples.tolist(), batch=batch)
    out["warmup_iters"] = 20
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def device_entry(rng, *, is_base=False, median, spread, compute_ratio, peak, clean, adv, fidelity, ops, roofline_gops,
                 precision) -> dict:
    lat = latency(rng, median, spread)
    comp = latency(rng, median * compute_ratio, spread)
    sweep = []
    for batch in (1, 8, 32):
        sweep.append({"batch": batch, "mode": "end_to_end",
                      "latency_ms": latency(rng, median * (0.6 + 0.4 * batch), spread, n=50, batch=batch)})
    best = max(s["latency_ms"]["throughput_ips"] for s in sweep)
    robustness = []
    for a in ATTACKS:
        acc = adv.get(a["id"])
        row = {"attack": a["attack"], "norm": a["norm"], "eps": a["eps"], "id": a["id"],
               "accuracy": acc, "accuracy_ci95": wilson(acc, 256) if acc is not None else None,
               # The base replaying its own white-box set: every qualifying example fools it.
               "transfer_success_rate": None if acc is None else (1.0 if is_base else round(min(0.99, 0.9 - 2 * (acc - BASE_ADV[a["id"]])), 4)),
               "agreement": None if acc is None else (1.0 if is_base else round(0.97 - abs(BASE_ADV[a["id"]] - acc), 4)),
               "count": 256}
        robustness.append(row)
    auc = {}
    linf = [adv.get(f"pgd-linf-{k}") for k in EPS_LINF]
    if all(v is not None for v in linf):
        auc["pgd-linf"] = round(float(np.trapezoid(linf, EPS_LINF) / (EPS_LINF[-1] - EPS_LINF[0])), 4)
    else:
        auc["pgd-linf"] = None
    total = sum(o[2] for o in ops) if ops else 0.0
    return {
        "latency_ms": lat,
        "latency_compute_ms": comp,
        "throughput_ips": best,
        "batch_sweep": sweep,
        "memory_mb": None if peak is None else {"rss_before_load": 61.2, "rss_after_load": round(peak - 4.5, 1),
                                                 "peak_rss": peak, "ru_maxrss": round(peak + 0.8, 1)},
        "telemetry": {"source": "psutil", "cpu_percent_mean": 97.5, "power_mean_mw": None, "gpu_util_mean": None},
        "op_profile": None if not ops else [
            {"op_type": t, "node_count": n, "calls": 200 * n, "total_ms": ms, "mean_ms": round(ms / (200 * n), 6),
             "share": round(ms / total, 4)} for t, n, ms in ops],
        "roofline": None if roofline_gops is None else {
            "achieved_gops": roofline_gops, "peak_gops": 230.4, "share_of_peak": round(roofline_gops / 230.4, 5),
            "precision": precision},
        "clean_accuracy": clean, "clean_accuracy_ci95": wilson(clean, 256) if clean is not None else None,
        "eval_count": 256,
        "fidelity": fidelity,
        "robustness": robustness,
        "robustness_auc": auc,
        "environment": {"hostname": "ci-runner\"><img src=x onerror=alert(2)>", "cpu_model": "AMD EPYC 7B13",
                        "cpu_cores_logical": 2, "threads": 1, "runtime": "onnxruntime",
                        "runtime_version": "1.31.0", "execution_provider": "CPUExecutionProvider",
                        "precision": precision, "batch": 1, "input_shape": [1, 1, 28, 28]},
    }


def main() -> None:
    rng = np.random.default_rng(20261122)
    ops_fp32 = [("Conv", 2, 22.1), ("Gemm", 3, 9.4), ("MaxPool", 2, 3.2), ("Relu", 4, 1.9)]
    ops_int8 = [("QLinearConv", 2, 12.4), ("QuantizeLinear", 5, 4.1), ("DequantizeLinear", 5, 3.6), ("QGemm", 3, 5.0),
                ("MaxPool", 2, 2.9)]
    cands = [
        ("base", None, None, "fp32", 247_232, 61_706, 416_520, 0.996 ,
         dict(is_base=True, median=0.142, spread=0.05, compute_ratio=0.78, peak=183.4, clean=0.988,
              adv=dict(BASE_ADV), fidelity={"top1_agreement": 1.0, "max_abs_logit_diff": 0.0, "mean_abs_logit_diff": 0.0},
              ops=ops_fp32, roofline_gops=2.93, precision="fp32")),
        ("pruned-50", {"ratio": 0.5, "importance": "l1", "round_to": 8, "finetune_epochs": 1}, None, "fp32",
         125_980, 31_118, 215_904, 0.99,
         dict(median=0.098, spread=0.06, compute_ratio=0.74, peak=179.9, clean=0.980,
              adv={"fgsm-linf-8": 0.721, "pgd-linf-1": 0.961, "pgd-linf-2": 0.926, "pgd-linf-4": 0.83,
                   "pgd-linf-8": 0.488, "pgd-linf-16": 0.051, "pgd-l2-1.0": 0.598},
              fidelity={"top1_agreement": 0.984, "max_abs_logit_diff": 3.91, "mean_abs_logit_diff": 0.412},
              ops=[(t, n, ms * 0.55) for t, n, ms in ops_fp32], roofline_gops=2.2, precision="fp32")),
        ("int8", None, {"scheme": "qdq", "per_channel": True, "calibration": "minmax", "calib_count": 128}, "int8",
         247_232, 61_706, 118_402, None,
         dict(median=0.121, spread=0.04, compute_ratio=0.71, peak=191.2, clean=0.984,
              adv={"fgsm-linf-8": 0.738, "pgd-linf-1": 0.965, "pgd-linf-2": 0.937, "pgd-linf-4": 0.848,
                   "pgd-linf-8": 0.52, "pgd-linf-16": 0.047, "pgd-l2-1.0": None},
              fidelity={"top1_agreement": 0.992, "max_abs_logit_diff": 0.731, "mean_abs_logit_diff": 0.064},
              ops=ops_int8, roofline_gops=None, precision="int8")),
        (EVIL, {"ratio": 0.5, "importance": "l1", "round_to": 8, "finetune_epochs": 1},
         {"scheme": "qdq", "per_channel": True, "calibration": "minmax", "calib_count": 128}, "int8",
         125_980, 31_118, 61_234, 0.98,
         dict(median=0.96, spread=0.35, compute_ratio=0.7, peak=None, clean=0.949,
              adv={"fgsm-linf-8": 0.664, "pgd-linf-1": 0.93, "pgd-linf-2": 0.871, "pgd-linf-4": 0.762,
                   "pgd-linf-8": 0.402, "pgd-linf-16": 0.031, "pgd-l2-1.0": 0.55},
              fidelity={"top1_agreement": 0.953, "max_abs_logit_diff": 5.02, "mean_abs_logit_diff": 0.88},
              ops=None, roofline_gops=None, precision="int8")),
    ]
    candidates = []
    for name, prune, quant, precision, params, macs, size, agree, dev in cands:
        slug = name.replace("<", "_").replace(">", "_").replace("/", "_").replace("(", "_").replace(")", "_")
        candidates.append({
            "name": name,
            "recipe": {"prune": prune, "quantize": quant},
            "artifact": {"path": f"artifacts/{slug}.onnx", "sha256": hashlib.sha256(name.encode()).hexdigest(),
                         "size_bytes": size, "format": "onnx", "precision": precision},
            "params": params,
            "macs": macs,
            "export_check": {"onnx_checker": "passed",
                             "max_abs_diff": None if quant else 1.2e-6,
                             "top1_agreement": agree, "count": 256},
            "devices": {"local": device_entry(rng, **dev)},
        })
        clean = candidates[-1]["devices"]["local"]["clean_accuracy"]
        if name != "base" and clean is not None:  # base and candidate per image: fewest changed outcomes
            kb, kc = round(0.988 * 256), round(clean * 256)
            both, base_only, cand_only = min(kb, kc), max(0, kb - kc), max(0, kc - kb)
            candidates[-1]["devices"]["local"]["clean_pairs"] = {
                "both": both, "base_only": base_only, "cand_only": cand_only,
                "neither": 256 - both - base_only - cand_only,
            }
    results = {
        "schema": SCHEMA,
        "run_id": "demo-lenet5",
        "created": "2026-11-22T03:10:00Z",
        "study": {"name": "demo-lenet5", "subject": {"model": "lenet5", "dataset": "mnist"},
                  "devices": ["local"], "budgets": None},
        "environment": {
            "host": {"hostname": "ci-runner\"><img src=x onerror=alert(2)>", "os": "Linux 6.8.0",
                     "cpu_model": "AMD EPYC 7B13", "cpu_cores_logical": 2, "python": "3.11.2"},
            "versions": {"edgebench": "0.1.0", "torch": "2.14.1", "onnx": "1.19.0", "onnxruntime": "1.31.0",
                         "foolbox": "3.3.4", "torch_pruning": "1.6.1"},
            "git_revision": "1fc054f",
        },
        "subject": {"model": "lenet5", "dataset": "mnist", "num_classes": 10, "input_shape": [1, 1, 28, 28],
                    "eval_count": 256, "calib_count": 128},
        "budgets": {"max_p99_latency_ms": 1.0, "max_peak_memory_mb": 250,
                    "max_accuracy_drop": 0.02, "max_robustness_drop": 0.05},
        "attacks": [dict(a, count=256, base_accuracy=BASE_ADV[a["id"]], path=f"attacks/{a['id']}.npz") for a in ATTACKS],
        "devices": {"local": {"name": "local", "kind": "local",
                              "profile": {"arch": "x86_64", "runtimes": ["onnxruntime"], "peak_gops": 230.4,
                                          "mem_bandwidth_gbs": 25.6}}},
        "candidates": candidates,
    }
    results["study"]["budgets"] = results["budgets"]
    out = Path(__file__).with_name("results.json")
    validate_results(results, "the fixture")  # it must be a results.json the report can read
    out.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    print(out)


if __name__ == "__main__":
    main()
