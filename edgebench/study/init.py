"""``edgebench init``: a commented study YAML for a user's model, so the next command is
``edgebench run study.yaml``.

The model source is detected from MODEL (``file.onnx``, a TorchScript file, ``file.py:Name``,
``torchvision:NAME``, ``timm:NAME``); the input shape and class count are read from the model
(the ONNX graph, or a forward pass on a probe image); data from ``--data`` (npz, ImageFolder,
CIFAR-10 batches) or, when the model takes 1x28x28 images, the MNIST subset that ships offline.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError, expect, first_line

log = logging.getLogger(__name__)

PROBE_SIZES = (224, 32, 28, 64, 96, 128, 256, 299, 8)
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass(frozen=True)
class Detected:
    """What ``init`` found out about a model."""

    kind: str  # a model source key
    spec: str
    input_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    note: str = ""


def detect_source(model: str) -> tuple[str, str]:
    """MODEL as given on the command line -> (source key, value)."""
    for prefix in ("torchvision:", "timm:"):
        if model.startswith(prefix):
            return prefix[:-1], model[len(prefix) :]
    target, sep, name = model.rpartition(":")
    if sep and target.endswith(".py"):
        return "python", model
    path = Path(model).expanduser()
    expect(
        path.exists(),
        f"model not found: expected an .onnx, TorchScript or .py file, torchvision:NAME or timm:NAME, found {model!r}",
    )
    if path.suffix == ".py":
        return "python", f"{model}:{_only_module_class(path)}"
    if path.suffix.lower() == ".onnx":
        return "onnx", model
    if zipfile.is_zipfile(path):
        names = zipfile.ZipFile(path).namelist()
        if any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names) or any(
            n.endswith("constants.pkl") for n in names
        ):
            return "torchscript", model
        raise EdgebenchError(
            f"{path.name}: a PyTorch checkpoint holds weights, not an architecture; expected file.py:Name "
            "(with --checkpoint for these weights), a TorchScript or an ONNX file"
        )
    raise EdgebenchError(f"{path.name}: expected an .onnx, TorchScript or .py file, found another kind of file")


def _only_module_class(path: Path) -> str:
    """The one nn.Module subclass defined in *path* (read with ast: nothing is executed)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        n.name
        for n in tree.body
        if isinstance(n, ast.ClassDef)
        and any(
            (isinstance(b, ast.Attribute) and b.attr == "Module") or getattr(b, "id", "") == "Module" for b in n.bases
        )
    ]
    expect(
        len(found) == 1,
        f"{path.name}: expected one nn.Module class (or give file.py:Name), found {found or 'none'}",
    )
    return found[0]


def inspect_model(kind: str, spec: str, checkpoint: str | None, data_shape: tuple[int, ...] | None) -> Detected:
    """Input shape (C, H, W) and class count, read from the model itself."""
    if kind == "onnx":
        return _inspect_onnx(spec, data_shape)
    import torch

    from edgebench.subject.sources import SOURCES, LoadContext, ModelConfig

    fields: dict[str, Any] = {"checkpoint": checkpoint, kind: spec}
    cfg = ModelConfig(**fields)
    module = SOURCES[kind].load(LoadContext(cfg, None, None, 0, lambda _t: None)).module  # type: ignore[arg-type]
    assert module is not None  # only the ONNX source (inspected above) may load without a module
    channels = next((m.in_channels for m in module.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)), None)
    shapes = [data_shape] if data_shape else []
    for c in [channels] if channels else [3, 1]:
        shapes += [(c, s, s) for s in PROBE_SIZES]
    errors = []
    for shape in shapes:
        try:
            with torch.inference_mode():
                out = module(torch.rand(2, *shape))
        except Exception as exc:  # noqa: BLE001 - probing: a rejected shape is expected
            errors.append(first_line(exc, 100))
            continue
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == 2:
            return Detected(kind, spec, tuple(int(d) for d in shape), int(out.shape[1]))  # type: ignore[arg-type]
        raise EdgebenchError(
            f"{spec}: expected the model to return (batch, classes) logits, found "
            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
        )
    raise EdgebenchError(
        f"{spec}: found no input shape the model accepts among {['x'.join(map(str, s)) for s in shapes[:4]]}...; "
        f"expected --data with images it takes ({errors[0] if errors else ''})"
    )


def _inspect_onnx(spec: str, data_shape: tuple[int, ...] | None) -> Detected:
    from edgebench.measure.onnx_stats import load_onnx

    proto = load_onnx(Path(spec).expanduser())
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    expect(len(inputs) == 1, f"{spec}: expected a model with one input, found {[i.name for i in inputs]}")

    def dims(value_info: Any) -> list:
        return [d.dim_value if d.dim_value > 0 else None for d in value_info.type.tensor_type.shape.dim]

    ins, outs = dims(inputs[0]), dims(proto.graph.output[0])
    expect(len(ins) == 4, f"{spec}: expected an image input (N, C, H, W), found {len(ins)} dimensions")
    shape = tuple(d if d else (data_shape[i] if data_shape else None) for i, d in enumerate(ins[1:]))
    expect(
        all(shape),
        f"{spec}: the input has dynamic dimensions {ins[1:]}; expected --data to fix the image size",
    )
    expect(len(outs) == 2 and outs[1], f"{spec}: expected an output (batch, classes), found {outs}")
    return Detected("onnx", spec, shape, int(outs[1]))  # type: ignore[arg-type]


def data_section(data: str | None, shape: tuple[int, int, int], num_classes: int) -> tuple[dict, str]:
    """The ``data:`` mapping (single source, split by edgebench) and a comment line."""
    from edgebench.subject.data import detect_kind, load_arrays

    if data is None:
        if shape == (1, 28, 28) and num_classes >= 10:
            return {"name": "mnist", "eval_count": 1000, "calib_count": 256}, "the MNIST subset that ships offline"
        raise EdgebenchError(
            f"init: the model takes {'x'.join(map(str, shape))} images; expected --data PATH (an .npz, an "
            "ImageFolder tree or CIFAR-10 batches) with images for it, found none"
        )
    kind = detect_kind(Path(data).expanduser(), "--data")
    x, y = load_arrays(kind, data, shape[1])
    n = len(x)
    calib = min(256, n // 5)
    eval_count = min(1000, (n - calib) // 2)
    expect(eval_count >= 1 and calib >= 1, f"--data {data}: expected at least 10 images, found {n}")
    out = {"name": kind, "path": str(data), "eval_count": eval_count, "calib_count": calib}
    if kind == "imagefolder":
        out["image_size"] = shape[1]
    return (
        out,
        f"{n} images, {int(y.max()) + 1} classes: {eval_count} evaluation, {calib} calibration, the rest training",
    )


def render_study(
    det: Detected, data: dict, data_note: str, checkpoint: str | None, name: str, file: str = "study.yaml"
) -> str:
    """The study YAML, commented: what each section does and what to change."""
    import yaml

    from edgebench.robustness.registry import describe_attacks

    def flow(obj: Any) -> str:
        return yaml.safe_dump(obj, default_flow_style=True, width=10_000).strip()

    c, h, w = det.input_shape
    big = h * w > 64 * 64
    model: dict = {det.kind: det.spec}
    if checkpoint:
        model["checkpoint"] = checkpoint
    if det.kind in ("torchvision", "timm") and c == 3:
        model["normalize"] = IMAGENET
    if det.kind in ("torchvision", "timm"):
        model["num_classes"] = det.num_classes
    prunable = det.kind != "torchscript"
    n_cal = int(data.get("calib_count", 256))
    quant = "{preset: ort-cpu}" if n_cal >= 128 else f"{{preset: ort-cpu, calib_samples: {n_cal}}}"
    lines = [
        f"# edgebench study for {det.spec}, written by `edgebench init`.",
        f"# Input {c}x{h}x{w} (pixels in [0,1]), {det.num_classes} classes: read from the model.",
        f"# Next: edgebench run {file}   (results and report in reports/{name}-...)",
        f"name: {name}",
        "seed: 0",
        "",
        "# Where the model comes from. Attacks work on [0,1] pixels: if your model expects normalized",
        "# input, declare it and edgebench puts the normalization inside the model it exports and attacks.",
        "model:",
    ]
    for key, val in model.items():
        lines.append(f"  {key}: {flow(val) if isinstance(val, (dict, list)) else yaml.safe_dump(val).splitlines()[0]}")
    if "normalize" not in model:
        lines.append(f"  # normalize: {flow({'mean': [0.5] * c, 'std': [0.25] * c})}")
    lines += [
        "",
        f"# Data: {data_note}.",
        "# One source is split with the seed into disjoint evaluation, calibration and training images;",
        "# or give separate sources: train: PATH, calib: PATH, eval: PATH.",
        f"data: {flow(data)}",
        "",
        "# What to compare against base (always measured).",
        "candidates:",
        "  - base",
    ]
    if prunable:
        lines += [
            "  # structured pruning: half of each layer's channels (L1), one epoch of fine-tuning",
            "  - {name: pruned-50, prune: {ratio: 0.5, criterion: l1, finetune: {epochs: 1}}}",
        ]
    else:
        lines.append("  # (no pruned candidates: a TorchScript model cannot be pruned; use model.python or onnx)")
    lines.append(f"  - {{name: int8, quantize: {quant}}}   # ONNX Runtime static INT8, calibrated")
    if prunable:
        lines.append(f"  - {{name: pruned-50+int8, prune: {{ratio: 0.5, finetune: {{epochs: 1}}}}, quantize: {quant}}}")
    samples = 16 if big else 128
    steps = 5 if big else 10
    lines += [
        "",
        "# White-box attacks crafted on base, replayed through every deployed artifact (epsilons in 1/255).",
        f"# Attack names: {describe_attacks()}",
        "attacks:",
        f"  samples: {samples}",
        "  suite:",
        "    - {name: fgsm, eps_255: [2, 4, 8]}",
        f"    - {{name: pgd, norm: linf, eps_255: [2, 4, 8], steps: {steps}}}",
        "",
        "# Where to measure: names from `edgebench devices list` (local = this machine).",
        "devices: [local]",
        "profile: {batches: [1, 8], iterations: 50, min_duration_s: 0.5, threads: null}",
        "",
        "# Gates: a candidate is READY when every one holds (null = no gate).",
        f"budgets: {{max_p99_latency_ms: {100 if big else 10}, max_peak_memory_mb: 2048, "
        "max_accuracy_drop: 0.02, max_robustness_drop: 0.10}",
        "",
    ]
    return "\n".join(lines)


def write_study(
    model: str, data: str | None, out: Path, force: bool = False, checkpoint: str | None = None
) -> tuple[Path, Detected]:
    """Detect, inspect, render and write; refuses to overwrite *out* unless *force*."""
    import re

    from edgebench.study.config import load_study
    from edgebench.util.io import atomic_write_bytes

    if out.exists() and not force:
        raise EdgebenchError(f"{out} exists; expected a new file (or --force to overwrite it)")
    kind, spec = detect_source(model)
    data_shape = None
    if data is not None:
        from edgebench.subject.data import detect_kind, load_arrays

        x, _ = load_arrays(detect_kind(Path(data).expanduser(), "--data"), data, 224)
        data_shape = tuple(int(d) for d in x.shape[1:])
    det = inspect_model(kind, spec, checkpoint, data_shape)
    data_cfg, note = data_section(data, det.input_shape, det.num_classes)
    stem = re.split(r"[/:\\]", spec.rstrip("/"))[-1].rsplit(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) or "study"
    text = render_study(det, data_cfg, note, checkpoint, name, str(out))
    tmp = out.with_name(out.name + ".tmp")
    atomic_write_bytes(tmp, text.encode())
    try:  # what we write must be a valid study, down to every candidate's recipe
        from edgebench.subject.sources import check_recipes

        cfg = load_study(tmp)
        check_recipes(cfg.model, cfg.data, cfg.candidates)
    except EdgebenchError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return out, det
