"""``edgebench init``: a commented study YAML for a user's model, so the next command is
``edgebench run study.yaml``.

The model source is detected from MODEL (``file.onnx``, a TorchScript file, ``file.py:Name``,
``torchvision:NAME``, ``timm:NAME``); the channels and class count are read from the model (the
ONNX graph, its first convolution, a forward pass on a probe image), the image size from the data
when the model accepts it (an ImageFolder's from its files), else from the model; data from
``--data`` (npz, ImageFolder, CIFAR-10 batches, converted to the model's channels) or, when the
model takes 1x28x28 images, the MNIST subset that ships offline. Every value written says where it
came from: read from the model, read from the data, or defaulted (:class:`Fact`); the pruned
candidates' fine-tuning epochs follow the data size (``compress.finetune.suggested_epochs``).
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
MAX_READ_SIZE = 224  # an ImageFolder's images larger than this are resized down to it
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass(frozen=True)
class Fact:
    """One value ``init`` wrote and where it came from (``model``, ``data`` or ``default``), so
    the study's comments never state a guess as a fact."""

    value: str
    source: str
    why: str


@dataclass(frozen=True)
class DataProbe:
    """What ``init`` reads from ``--data`` before it looks at the model: the kind, the images'
    shape (C, H, W) as stored (an ImageFolder: RGB at the size read from its files), the count
    and classes. An ImageFolder is resized and converted on load; other kinds only convert channels."""

    kind: str
    path: str
    shape: tuple[int, int, int]
    count: int
    classes: int
    size_why: str

    @property
    def resizable(self) -> bool:
        return self.kind == "imagefolder"


@dataclass(frozen=True)
class Detected:
    """What ``init`` found out about a model, and where each value came from."""

    kind: str  # a model source key
    spec: str
    input_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    facts: tuple[Fact, ...] = ()


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


def probe_data(data: str) -> DataProbe:
    """The images of ``--data`` as stored: an ImageFolder's size read from its files' headers
    (the most common size; its shorter side, capped at :data:`MAX_READ_SIZE`), other kinds loaded."""
    from edgebench.subject.data import detect_kind, image_folder_files, image_folder_sizes, load_arrays

    kind = detect_kind(Path(data).expanduser(), "--data")
    if kind != "imagefolder":
        x, y = load_arrays(kind, data)
        c, h, w = (int(d) for d in x.shape[1:])
        return DataProbe(kind, data, (c, h, w), len(x), int(y.max()) + 1, f"the images are {h}x{w}")
    folder = Path(data).expanduser()
    files = image_folder_files(folder)
    sizes = image_folder_sizes(folder)
    (w, h), n = max(sizes.items(), key=lambda kv: kv[1])
    side = min(w, h)
    why = (
        f"the images are {w}x{h}"
        if len(sizes) == 1
        else f"{n} of {len(files)} images are {w}x{h}, the most common size"
    )
    if w != h:
        why += f", center-cropped to their shorter side {side}"
    if side > MAX_READ_SIZE:
        why += f"; larger than {MAX_READ_SIZE}, so resized down to {MAX_READ_SIZE}"
        side = MAX_READ_SIZE
    return DataProbe(kind, data, (3, side, side), len(files), max(label for _, label in files) + 1, why)


def inspect_model(kind: str, spec: str, checkpoint: str | None, probe: DataProbe | None) -> Detected:
    """Input shape (C, H, W) and class count: the channels from the model, the size from the
    data when the model accepts it, else the first probe size it accepts; each value's origin
    in ``facts``."""
    if kind == "onnx":
        return _inspect_onnx(spec, probe)
    import torch

    from edgebench.subject.models import input_channels
    from edgebench.subject.sources import SOURCES, LoadContext, ModelConfig

    fields: dict[str, Any] = {"checkpoint": checkpoint, kind: spec}
    cfg = ModelConfig(**fields)
    module = SOURCES[kind].load(LoadContext(cfg, None, None, 0, lambda _t: None)).module  # type: ignore[arg-type]
    assert module is not None  # only the ONNX source (inspected above) may load without a module
    channels = input_channels(module)
    shapes = _probe_shapes(channels, probe)
    errors = []
    for shape in shapes:
        try:
            out = _forward(module, shape)
        except Exception as exc:  # noqa: BLE001 - probing: a rejected shape is expected
            errors.append(first_line(exc, 100))
            continue
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == 2:
            facts = (
                _channels_fact(shape[0], channels, probe),
                _size_fact(module, shape, probe, errors),
                Fact(f"{int(out.shape[1])} classes", "model", "its output on a probe image"),
            )
            return Detected(kind, spec, shape, int(out.shape[1]), facts)
        raise EdgebenchError(
            f"{spec}: expected the model to return (batch, classes) logits, found "
            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
        )
    raise EdgebenchError(
        f"{spec}: found no input shape the model accepts among {['x'.join(map(str, s)) for s in shapes[:4]]}...; "
        f"expected --data with images it takes ({errors[0] if errors else ''})"
    )


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _forward(module: Any, shape: tuple[int, int, int]) -> Any:
    import torch

    with torch.inference_mode():
        return module(torch.rand(2, *shape))


def _probe_shapes(channels: int | None, probe: DataProbe | None) -> list[tuple[int, int, int]]:
    """The shapes to try, in order: the model's channels (else the data's, 3, 1) at the data's
    size first, then at each of :data:`PROBE_SIZES`."""
    chans = [channels] if channels else list(dict.fromkeys([*([probe.shape[0]] if probe else []), 3, 1]))
    shapes = []
    for c in chans:
        if probe:
            shapes.append((c, probe.shape[1], probe.shape[2]))
        shapes += [(c, s, s) for s in PROBE_SIZES]
    return list(dict.fromkeys(shapes))


def _channels_fact(c: int, conv: int | None, probe: DataProbe | None) -> Fact:
    if conv:
        return Fact(f"{c} input channel{_s(c)}", "model", "its first convolution")
    if probe and c == probe.shape[0]:
        return Fact(f"{c} input channel{_s(c)}", "data", "the images' channels (the model has no convolution to read)")
    return Fact(f"{c} input channel{_s(c)}", "model", "the first count it accepts on a probe image (no convolution)")


def _size_fact(module: Any, shape: tuple[int, int, int], probe: DataProbe | None, errors: list[str]) -> Fact:
    """Where the image size came from: the data (the model accepts the data's size), the model
    (it rejects the data's size, or accepts only this one), or a default (no data, any size)."""
    c, h, w = shape
    size = f"image size {h}x{w}"
    if probe is not None and (h, w) == probe.shape[1:]:
        return Fact(size, "data", f"{probe.size_why}; the model accepts that size")
    if probe is not None:
        return Fact(
            size,
            "model",
            f"it rejects the data's {probe.shape[1]}x{probe.shape[2]} images ({errors[-1] if errors else ''}); "
            f"{h}x{w} is the first size tried that it accepts",
        )
    other = 32 if h != 32 else 64
    try:
        _forward(module, (c, other, other))
    except Exception:  # noqa: BLE001 - probing: the model takes one size only
        return Fact(size, "model", "the only size tried that it accepts")
    return Fact(size, "default", f"the model accepts any size and no --data was given; {h} is the first tried")


def _inspect_onnx(spec: str, probe: DataProbe | None) -> Detected:
    from edgebench.measure.onnx_stats import load_onnx

    proto = load_onnx(Path(spec).expanduser())
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    expect(len(inputs) == 1, f"{spec}: expected a model with one input, found {[i.name for i in inputs]}")

    def dims(value_info: Any) -> list:
        return [d.dim_value if d.dim_value > 0 else None for d in value_info.type.tensor_type.shape.dim]

    ins, outs = dims(inputs[0]), dims(proto.graph.output[0])
    expect(len(ins) == 4, f"{spec}: expected an image input (N, C, H, W), found {len(ins)} dimensions")
    shape = tuple(d if d else (probe.shape[i] if probe else None) for i, d in enumerate(ins[1:]))
    expect(
        all(shape),
        f"{spec}: the input has dynamic dimensions {ins[1:]}; expected --data to fix the image size",
    )
    expect(len(outs) == 2 and outs[1], f"{spec}: expected an output (batch, classes), found {outs}")
    c, h, w = (int(d) for d in shape)  # type: ignore[arg-type]  # all set: checked above
    facts = (
        Fact(f"{c} input channel{_s(c)}", "model", "its ONNX input")
        if ins[1]
        else Fact(f"{c} input channel{_s(c)}", "data", "the images' channels; the ONNX input's are dynamic"),
        Fact(f"image size {h}x{w}", "model", "its ONNX input")
        if ins[2] and ins[3]
        else Fact(
            f"image size {h}x{w}", "data", f"{probe.size_why if probe else ''}; the ONNX input's size is dynamic"
        ),
        Fact(f"{outs[1]} classes", "model", "its ONNX output"),
    )
    return Detected("onnx", spec, (c, h, w), int(outs[1]), facts)


def fit_data(probe: DataProbe, shape: tuple[int, int, int]) -> tuple[dict, list[Fact]]:
    """The ``data:`` keys that make the data's images what the model takes: ``channels`` (the
    data source converts between 1 and 3 channels) and an ImageFolder's ``image_size``; a
    mismatch no source can convert is one line."""
    from edgebench.subject.data import CHANNELS

    c, h, w = shape
    keys: dict[str, Any] = {}
    facts: list[Fact] = []
    have = probe.shape[0]
    if c != have:
        expect(
            c in CHANNELS and have in CHANNELS,
            f"init: the model takes {c}-channel images and --data {probe.path} has {have}-channel ones; "
            "expected data with the model's channels (edgebench converts only between 1 (grayscale) and 3 (RGB))",
        )
        keys["channels"] = c
        facts.append(Fact(f"data.channels: {c}", "model", f"the images have {have}; the data source converts them"))
    if probe.resizable:
        expect(
            h == w,
            f"init: the model takes {h}x{w} images; expected a square size (an ImageFolder is center-cropped square)",
        )
        keys["image_size"] = h
    else:
        expect(
            (h, w) == probe.shape[1:],
            f"init: the model takes {h}x{w} images and --data {probe.path} holds {probe.shape[1]}x{probe.shape[2]} "
            f"ones; expected {probe.kind} images of the model's size (only an ImageFolder tree is resized)",
        )
    return keys, facts


@dataclass(frozen=True)
class DataPlan:
    """The ``data:`` mapping ``init`` writes, its comment, where its values came from, and how
    many training images it leaves (what the fine-tuning epochs are chosen from)."""

    section: dict
    note: str
    facts: list[Fact]
    train_images: int


def data_section(probe: DataProbe | None, shape: tuple[int, int, int], num_classes: int) -> DataPlan:
    """The ``data:`` mapping (single source, split by edgebench) fitted to the model's input."""
    if probe is None:
        if shape == (1, 28, 28) and num_classes >= 10:
            return DataPlan(
                {"name": "mnist", "eval_count": 1000, "calib_count": 256},
                "the MNIST subset that ships offline",
                [Fact("data: MNIST, 1000 evaluation and 256 calibration images", "default", "no --data was given")],
                5000 - 1000 - 256,
            )
        raise EdgebenchError(
            f"init: the model takes {'x'.join(map(str, shape))} images; expected --data PATH (an .npz, an "
            "ImageFolder tree or CIFAR-10 batches) with images for it, found none"
        )
    n = probe.count
    calib = min(256, n // 5)
    eval_count = min(1000, (n - calib) // 2)
    expect(eval_count >= 1 and calib >= 1, f"--data {probe.path}: expected at least 10 images, found {n}")
    keys, facts = fit_data(probe, shape)
    out = {"name": probe.kind, "path": str(probe.path), "eval_count": eval_count, "calib_count": calib, **keys}
    facts.append(
        Fact(
            f"eval_count {eval_count}, calib_count {calib}",
            "default",
            "a fifth of the images for calibration, at most 256; half the rest for evaluation, at most 1000; "
            "the rest for training",
        )
    )
    note = f"{n} images, {probe.classes} classes: {eval_count} evaluation, {calib} calibration, the rest training"
    return DataPlan(out, note, facts, n - eval_count - calib)


ORIGINS = {"model": "read from the model", "data": "read from the data", "default": "defaulted"}


def describe_facts(facts: tuple[Fact, ...] | list[Fact]) -> list[str]:
    """One line per value: what it is, where it came from (read from the model, read from the
    data, or defaulted) and how."""
    return [f"{f.value}: {ORIGINS[f.source]} ({f.why})" for f in facts]


def study_facts(det: Detected, plan: DataPlan) -> list[Fact]:
    """Every value ``init`` writes that the user may want to check, with its origin: the
    model's and the data's, then the defaults (fine-tuning epochs by :data:`EPOCH_RULE`)."""
    from edgebench.compress.finetune import EPOCH_RULE, suggested_epochs

    facts = [*det.facts, *plan.facts]
    if det.kind != "torchscript":
        epochs = suggested_epochs(plan.train_images)
        facts.append(Fact(f"fine-tuning epochs {epochs}", "default", f"{EPOCH_RULE}; {plan.train_images} here"))
    facts.append(
        Fact("model.normalize", "default", "ImageNet mean/std, as torchvision and timm weights expect")
        if _imagenet_normalized(det)
        else Fact("no model.normalize", "default", "uncomment it below if the model expects normalized input")
    )
    facts.append(Fact("attacks, profile, devices, budgets", "default", "edgebench's starting values"))
    return facts


def _imagenet_normalized(det: Detected) -> bool:
    return det.kind in ("torchvision", "timm") and det.input_shape[0] == 3


def render_study(det: Detected, plan: DataPlan, checkpoint: str | None, name: str, file: str = "study.yaml") -> str:
    """The study YAML, commented: what each section does and what to change, and which values
    were read from the model, which from the data and which were defaulted."""
    import yaml

    from edgebench.compress.finetune import EPOCH_RULE, suggested_epochs
    from edgebench.robustness.registry import describe_attacks

    def flow(obj: Any) -> str:
        return yaml.safe_dump(obj, default_flow_style=True, width=10_000).strip()

    c, h, w = det.input_shape
    big = h * w > 64 * 64
    data = plan.section
    model: dict = {det.kind: det.spec}
    if checkpoint:
        model["checkpoint"] = checkpoint
    if _imagenet_normalized(det):
        model["normalize"] = IMAGENET
    if det.kind in ("torchvision", "timm"):
        model["num_classes"] = det.num_classes
    prunable = det.kind != "torchscript"
    epochs = suggested_epochs(plan.train_images)
    n_cal = int(data.get("calib_count", 256))
    quant = "{preset: ort-cpu}" if n_cal >= 128 else f"{{preset: ort-cpu, calib_samples: {n_cal}}}"
    lines = [
        f"# edgebench study for {det.spec}, written by `edgebench init`.",
        f"# Input {c}x{h}x{w} (pixels in [0,1]), {det.num_classes} classes. Where each value came from:",
        *[f"#   {line}" for line in describe_facts(study_facts(det, plan))],
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
        f"# Data: {plan.note}.",
        "# One source is split with the seed into disjoint evaluation, calibration and training images;",
        "# or give separate sources: train: PATH, calib: PATH, eval: PATH.",
        *(
            [f"# channels: {data['channels']} converts the images to the model's channel count (1 gray, 3 RGB)."]
            if "channels" in data
            else []
        ),
        *(
            [f"# image_size: every image is resized (shorter side) and center-cropped to {data['image_size']}."]
            if "image_size" in data
            else []
        ),
        f"data: {flow(data)}",
        "",
        "# What to compare against base (always measured).",
        "candidates:",
        "  - base",
    ]
    finetune = f"finetune: {{epochs: {epochs}}}"
    if prunable:
        lines += [
            f"  # structured pruning: half of each layer's channels (L1), then {epochs} epoch(s) of fine-tuning on the",
            f"  # {plan.train_images} training images. Epochs rule: {EPOCH_RULE}.",
            "  # Fewer epochs leave accuracy low: the results then carry a note saying so.",
            f"  - {{name: pruned-50, prune: {{ratio: 0.5, criterion: l1, {finetune}}}}}",
        ]
    else:
        lines.append("  # (no pruned candidates: a TorchScript model cannot be pruned; use model.python or onnx)")
    lines.append(f"  - {{name: int8, quantize: {quant}}}   # ONNX Runtime static INT8, calibrated")
    if prunable:
        lines.append(f"  - {{name: pruned-50+int8, prune: {{ratio: 0.5, {finetune}}}, quantize: {quant}}}")
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
) -> tuple[Path, Detected, list[str]]:
    """Detect, inspect, render and write; refuses to overwrite *out* unless *force*. Returns the
    file, what was detected, and the lines saying which values were read and which defaulted."""
    import re

    from edgebench.study.config import load_study
    from edgebench.util.io import atomic_write_bytes

    if out.exists() and not force:
        raise EdgebenchError(f"{out} exists; expected a new file (or --force to overwrite it)")
    kind, spec = detect_source(model)
    probe = probe_data(data) if data is not None else None
    det = inspect_model(kind, spec, checkpoint, probe)
    plan = data_section(probe, det.input_shape, det.num_classes)
    stem = re.split(r"[/:\\]", spec.rstrip("/"))[-1].rsplit(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) or "study"
    text = render_study(det, plan, checkpoint, name, str(out))
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
    return out, det, describe_facts(study_facts(det, plan))
