#!/usr/bin/env bash
# Wheels for scripts/gpu-check.sh, downloaded HERE (the GPU machine has no network) into
# .gpu-wheels/ (git-ignored; carried to the device tool's machine with carry: [".gpu-wheels"]).
#
# Which packages: edgebench's declared dependencies (pyproject.toml) that the device tool's GPU
# image does not hold (docs: /work/.library/device/KINDS.md lists its packages: torch, torchvision,
# onnx, onnxscript, onnxruntime (CPU), nvidia-ml-py, numpy, psutil, typer, rich, pyyaml, pillow,
# scipy, scikit-learn, matplotlib, requests, pytest, pytest-timeout, timm, sympy...), plus what
# those need that it lacks. Pinned to the versions edgebench's test venv runs together.
# Left out on purpose: asyncssh (SSH devices) and optuna (edgebench search), which the GPU check
# does not exercise; tensorrt and onnxruntime-gpu, too large to carry (their paths stay skipped).
#
# Usage: scripts/gpu-wheels.sh            (GPU_PYTHON=3.12 by default: that image's python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION="${GPU_PYTHON:-3.12}"
DEST=.gpu-wheels
PIP="${PIP:-python3 -m pip}"
PACKAGES=(
  torch-pruning==1.6.1
  foolbox==3.3.4 eagerpy==0.30.0 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3
  onnx2torch==1.5.15
  torchattacks==3.5.1
  mlxtend==0.25.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
rm -rf "$DEST"
mkdir -p "$DEST"
$PIP download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PACKAGES[@]}" 2> >(grep -v "^WARNING: Location .* is ignored" >&2)
count=$(find "$DEST" -name '*.whl' | wc -l)
size=$(du -sh "$DEST" | cut -f1)
tree=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "gpu-wheels: $count wheels for CPython $PY_VERSION in $DEST ($size); tracked tree $((tree / 1048576)) MiB; the device tool carries at most 64 MiB in all"
