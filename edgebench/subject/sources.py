"""Where a study's base model comes from: one source per key of the study's ``model:`` section.

=================  ======================================================================
``arch``           a built-in demo architecture (lenet5, resnet8), trained on the data
``python``         ``file.py:Name`` or ``package.module:Name``: a class or function that
                   returns a ``torch.nn.Module`` (``kwargs``, ``checkpoint``)
``torchvision``    any ``torchvision.models`` classifier (random weights, seeded, unless
                   ``checkpoint``; never downloaded), ``num_classes``, ``kwargs``
``timm``           a timm model (extra ``timm``), as torchvision
``torchscript``    a TorchScript file: attacked, quantized, exported, measured; not pruned
``onnx``           an ONNX file, converted with onnx2torch and checked against ONNX Runtime
=================  ======================================================================

The ``model:`` section is :class:`ModelConfig`. Each source is a :class:`Source` in
:data:`SOURCES` (a registry keyed by the config key). A source checks its options when the
study is read (:class:`ModelConfig`'s validator) and loads the module when the study runs;
:func:`load_model` then puts ``normalize`` inside the model (attacks work on [0,1] pixels) and
checks the model against the data: channels, image size, output ``(batch, classes)``, labels.
Every file the model came from is recorded with its sha256 (``source`` in subject.json and the
report).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import model_validator

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.settings import cache_dir
from edgebench.subject.data import DataConfig, Split
from edgebench.subject.weights import file_record, load_state_dict, mismatch
from edgebench.util.schema import Section, user_checks

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# model.* options other than the source keys, and the sources each applies to
OPTIONS: dict[str, tuple[str, ...]] = {
    "kwargs": ("python", "torchvision", "timm"),
    "checkpoint": ("arch", "python", "torchvision", "timm"),
    "allow_pickle": ("arch", "python", "torchvision", "timm"),
    "num_classes": ("torchvision", "timm"),
    "normalize": ("python", "torchvision", "timm", "torchscript", "onnx"),
    "train_epochs": ("arch",),
    "train_lr": ("arch",),
}
# how close the converted / exported model must be to the user's: |diff| <= RTOL * max(1, |logits|)
RTOL = 1e-3
CHECK_IMAGES = 64
DEFAULT_ARCH = "lenet5"  # the built-in trained when the model: section names no source


class ModelConfig(Section):
    """Where the base model comes from: one source key (see :data:`SOURCES`).

    ``arch``: a built-in (lenet5, resnet8), trained on the data unless ``checkpoint`` is given;
    ``python``: ``file.py:Name`` or ``package.module:Name`` (class or function returning a module,
    called with ``kwargs``); ``torchvision``/``timm``: an architecture name (random weights,
    seeded, unless ``checkpoint``); ``torchscript``/``onnx``: a file. ``normalize``
    ({mean, std}) is put inside the model so that it takes [0,1] pixels.
    """

    section: ClassVar[str] = "model"

    arch: str | None = None
    python: str | None = None
    torchvision: str | None = None
    timm: str | None = None
    torchscript: str | None = None
    onnx: str | None = None
    kwargs: dict | None = None
    checkpoint: str | None = None
    num_classes: int | None = None
    normalize: dict | None = None
    train_epochs: int = 4
    train_lr: float = 2e-3
    allow_pickle: bool = False  # opt-in to torch.load(weights_only=False) for a file you trust

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        """One source, options that apply to it, well-formed values (:func:`check_model_config`)."""
        with user_checks():
            check_model_config(self)
        return self

    @property
    def kind(self) -> str:
        """The source key in use (``arch`` when none is given: the built-in default)."""
        return source_kind(self)

    @property
    def spec(self) -> str:
        """The value of the source key (the built-in default architecture when none is given)."""
        return getattr(self, self.kind) or DEFAULT_ARCH

    @property
    def label(self) -> str:
        """A short name for folders and titles: the architecture, class or file stem."""
        import re

        tail = re.split(r"[/:\\]", self.spec.rstrip("/"))[-1]
        return re.sub(
            r"[^A-Za-z0-9_.+-]", "_", tail.rsplit(".", 1)[0] if self.kind in ("torchscript", "onnx") else tail
        )


@dataclass(frozen=True)
class LoadContext:
    """What a source may use while loading: the config, the data split, the seed."""

    model: ModelConfig
    data: DataConfig
    split: Split
    seed: int
    on_status: Callable[[str], None]


@dataclass
class UserModel:
    """A loaded base model and where it came from."""

    module: torch.nn.Module
    source: dict  # kind, spec, files [{role, path, sha256}], weights, checks
    reference: Callable[[np.ndarray], np.ndarray] | None = None  # the user's own model, if not `module`
    num_classes: int = 0


class Source:
    """One way a model reaches edgebench; subclasses set ``key`` and implement :meth:`load`."""

    key: str = ""
    is_file: bool = False  # the value is a path that must exist
    prunable: bool = True
    why_not_prunable: str = ""

    def check(self, cfg: ModelConfig) -> None:
        """Refuse a bad value when the study is read (cheap: no model is built)."""
        value = getattr(cfg, self.key)
        if self.is_file:
            path = Path(value).expanduser()
            expect(path.is_file(), f"model.{self.key}: file not found: expected a file at {path}")

    def load(self, ctx: LoadContext) -> UserModel:
        raise NotImplementedError


SOURCES: dict[str, Source] = {}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: add a source to :data:`SOURCES` under its ``key``."""
    SOURCES[cls.key] = cls()
    return cls


def source_kind(cfg: ModelConfig) -> str:
    given = [k for k in SOURCES if getattr(cfg, k, None) is not None]
    return given[0] if given else "arch"


def check_model_config(cfg: ModelConfig) -> None:
    """Validate the ``model:`` section: one source, options that apply to it, well-formed values."""
    given = [k for k in SOURCES if getattr(cfg, k) is not None]
    expect(
        len(given) <= 1,
        f"model: expected one source (one of {', '.join(SOURCES)}), found {len(given)}: {', '.join(given)}",
    )
    for key in given:
        val = getattr(cfg, key)
        expect(isinstance(val, str) and val.strip() != "", f"model.{key}: expected a non-empty string, found {val!r}")
    kind = given[0] if given else "arch"
    defaults = {name: f.default for name, f in ModelConfig.model_fields.items()}
    for opt, kinds in OPTIONS.items():
        if getattr(cfg, opt) != defaults[opt] and kind not in kinds:
            raise EdgebenchError(
                f"model.{opt}: applies to model sources {', '.join(kinds)}; found it with model.{kind}"
                + (" (the weights are inside the file)" if opt == "checkpoint" else "")
            )
    expect(
        cfg.kwargs is None or isinstance(cfg.kwargs, dict),
        f"model.kwargs: expected a mapping of argument names to values, found {cfg.kwargs!r}",
    )
    expect(
        cfg.checkpoint is None or isinstance(cfg.checkpoint, str),
        f"model.checkpoint: expected a file path, found {cfg.checkpoint!r}",
    )
    expect(
        cfg.num_classes is None or (type(cfg.num_classes) is int and cfg.num_classes >= 2),
        f"model.num_classes: expected an integer >= 2, found {cfg.num_classes!r}",
    )
    if cfg.normalize is not None:
        normalization(cfg.normalize)
    SOURCES[kind].check(cfg)


def normalization(spec: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``{mean: [...], std: [...]}`` -> (mean, std), equal lengths, std > 0."""
    ok = isinstance(spec, dict) and set(spec) == {"mean", "std"}
    expect(ok, f"model.normalize: expected a mapping {{mean: [...], std: [...]}}, found {spec!r}")
    out = []
    for key in ("mean", "std"):
        vals = spec[key]
        expect(
            isinstance(vals, (list, tuple))
            and len(vals) > 0
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals),
            f"model.normalize.{key}: expected a non-empty list of numbers (one per channel), found {vals!r}",
        )
        out.append(tuple(float(v) for v in vals))
    mean, std = out
    expect(
        len(mean) == len(std),
        f"model.normalize: expected mean and std of equal length, found {len(mean)} and {len(std)}",
    )
    expect(all(s > 0 for s in std), f"model.normalize.std: expected values > 0, found {list(std)}")
    return mean, std


def check_recipes(model: ModelConfig, data: DataConfig, candidates: Any) -> None:
    """Refuse, before any work, candidates this model or data cannot support (one line each)."""
    from edgebench.compress.prune import GRADIENT_CRITERIA

    src = SOURCES[model.kind]
    separate = data.eval is not None  # separate sources: training images only from data.train
    has_train = data.train_count != 0 and (data.train is not None or not separate)
    for cand in candidates:
        if cand.prune is None:
            continue
        if not src.prunable:
            raise EdgebenchError(f"candidate '{cand.name}': cannot prune: {src.why_not_prunable}")
        spec = cand.prune
        if has_train:
            continue
        if spec.finetune.epochs > 0:
            raise EdgebenchError(
                f"candidate '{cand.name}': pruning fine-tunes ({spec.finetune.epochs} epoch(s)) but the data has no "
                "training images; expected data.train, or prune.finetune: {epochs: 0} to prune without fine-tuning"
            )
        if spec.criterion in GRADIENT_CRITERIA:
            raise EdgebenchError(
                f"candidate '{cand.name}': criterion {spec.criterion} needs training images for its gradients; "
                "expected data.train, found none"
            )


# ------------------------------------------------------------------------------------------ loading


def with_normalize(module: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.nn.Module:
    """*module* behind a :class:`~edgebench.subject.models.Normalize`: the result takes [0,1] pixels,
    so attacks, ONNX export and every runtime see the same inputs and epsilons mean pixels."""
    import torch
    from torch import nn

    from edgebench.subject.models import Normalize

    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.normalize = Normalize(mean, std)
            self.model = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(self.normalize(x))

    wrapped = Normalized().eval()
    if isinstance(module, torch.jit.ScriptModule):  # a traced graph inside a plain module cannot be re-traced
        return torch.jit.script(wrapped)
    return wrapped


def load_model(ctx: LoadContext) -> UserModel:
    """Load the base model from its source, put normalization inside, check it against the data."""
    cfg = ctx.model
    kind = cfg.kind
    user = SOURCES[kind].load(ctx)
    user.source = {"kind": kind, "spec": cfg.spec, "files": [], **user.source}
    if cfg.normalize is not None:
        mean, std = normalization(cfg.normalize)
        channels = int(ctx.split.x_eval.shape[1])
        expect(
            len(mean) == channels,
            f"model.normalize: expected one mean/std per image channel ({channels}), found {len(mean)}",
        )
        user.module = with_normalize(user.module, mean, std)
        ref = user.reference
        if ref is not None:
            m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
            s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
            user.reference = lambda x: ref(((x - m) / s).astype(np.float32))
        user.source["normalize"] = {"mean": list(mean), "std": list(std)}
    user.module.eval()
    user.num_classes = check_io(user.module, ctx.split, f"model.{kind} {cfg.spec}")
    return user


def check_io(module: torch.nn.Module, split: Split, what: str) -> int:
    """Run the model on two real images: it must accept them and return (batch, classes) logits
    with a class for every label. Returns the number of classes."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(split.x_eval[:2]))
    shape = "x".join(str(d) for d in x.shape[1:])
    try:
        with torch.inference_mode():
            out = module(x)
    except Exception as exc:  # noqa: BLE001 - any failure here is the model rejecting the data
        raise EdgebenchError(
            f"{what} rejects the data's images ({shape}, values in [0,1]): {first_line(exc, 160)}; "
            "expected images whose channels and size the model accepts (data.image_size, data source)"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise EdgebenchError(
            f"{what}: expected the model to return logits, a tensor (batch, classes); found {type(out).__name__}"
        )
    if out.ndim != 2 or out.shape[0] != len(x):
        raise EdgebenchError(f"{what}: expected output (batch, classes) = ({len(x)}, K), found {tuple(out.shape)}")
    k = int(out.shape[1])
    labels = np.concatenate([split.y_eval, split.y_calib, split.y_train])
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        raise EdgebenchError(
            f"{what}: the model has {k} outputs, so expected labels in [0, {k - 1}]; found labels in [{lo}, {hi}]"
        )
    return k


def _apply_checkpoint(module: torch.nn.Module, cfg: ModelConfig, source: dict) -> None:
    """Load ``cfg.checkpoint`` (a state_dict) into *module*, or record seeded random weights."""
    if not cfg.checkpoint:
        source["weights"] = "random (no checkpoint; seeded): latency is real, accuracy is chance"
        source["random_weights"] = True
        return
    path = Path(cfg.checkpoint).expanduser()
    state = load_state_dict(path, cfg.allow_pickle)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise EdgebenchError(
            f"{path}: does not fit model.{cfg.kind} {cfg.spec}: {mismatch(module, state, exc)}"
        ) from None
    source["files"].append(file_record(path, "checkpoint"))
    source["weights"] = f"checkpoint {path}"
    source["random_weights"] = False


@register
class BuiltinSource(Source):
    key = "arch"

    def check(self, cfg: ModelConfig) -> None:
        from edgebench.subject.models import ARCHITECTURES

        expect(
            cfg.spec in ARCHITECTURES,
            f"model.arch: unknown built-in architecture '{cfg.spec}': expected one of {sorted(ARCHITECTURES)} "
            "(or a source: python, torchvision, timm, torchscript, onnx)",
        )

    def load(self, ctx: LoadContext) -> UserModel:
        return load_builtin(ctx)


def load_builtin(ctx: LoadContext) -> UserModel:
    """A built-in architecture sized for the data: loaded from ``checkpoint``, else trained on
    the training split once (seeded) and cached by architecture, data and training settings."""
    import torch

    from edgebench.subject.models import build
    from edgebench.subject.train import train

    model_cfg, data_cfg, split, seed = ctx.model, ctx.data, ctx.split, ctx.seed
    arch = model_cfg.spec
    c, h = int(split.x_eval.shape[1]), int(split.x_eval.shape[2])
    ref = split.x_train if len(split.x_train) else split.x_eval
    mean = tuple(float(m) for m in ref.mean(axis=(0, 2, 3)))
    std = tuple(float(s) + 1e-6 for s in ref.std(axis=(0, 2, 3)))
    torch.manual_seed(seed)
    model = build(arch, c, split.num_classes, h, mean, std)
    source: dict = {"kind": "arch", "spec": arch, "files": []}
    if model_cfg.checkpoint:
        _apply_checkpoint(model, model_cfg, source)
    else:
        if not len(split.x_train):
            raise EdgebenchError(
                f"model.arch: training built-in '{arch}' needs training images; expected data.train or "
                "model.checkpoint, found neither"
            )
        cached = (
            cache_dir()
            / "models"
            / f"{arch}-{split.name}-{_cache_key(model_cfg, data_cfg, seed, split.input_shape)}.pt"
        )
        if cached.is_file():
            model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
            source["weights"] = f"cached: {cached}"
        else:
            ctx.on_status(
                f"training {arch} on {split.name} ({len(split.x_train)} images, {model_cfg.train_epochs} epochs)"
            )
            train(model, split.x_train, split.y_train, epochs=model_cfg.train_epochs, lr=model_cfg.train_lr, seed=seed)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(cached)
            source["weights"] = f"trained now, cached at {cached}"
    return UserModel(model.eval(), source)


def _cache_key(model_cfg: ModelConfig, data_cfg: DataConfig, seed: int, shape: tuple[int, ...]) -> str:
    """The trained built-in's cache key: architecture, training settings, data, seed, input shape."""
    blob = json.dumps(
        [
            model_cfg.spec,
            model_cfg.train_epochs,
            model_cfg.train_lr,
            data_cfg.name,
            data_cfg.path,
            data_cfg.eval_count,
            data_cfg.calib_count,
            data_cfg.train_count,
            seed,
            list(shape),
        ]
        + ([data_cfg.train, data_cfg.calib, data_cfg.eval] if data_cfg.eval is not None else []),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _import_target(spec: str) -> Any:
    """``file.py:Name`` or ``package.module:Name`` -> the object named."""
    target, _, name = spec.rpartition(":")
    expect(
        bool(target) and bool(name) and name.isidentifier(),
        f"model.python: expected 'path/to/file.py:Name' or 'package.module:Name', found {spec!r}",
    )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        expect(path.is_file(), f"model.python: file not found: expected a .py file at {path}")
        from edgebench.util.io import sha256_file

        mod_name = f"edgebench_user_{path.stem}_{sha256_file(path)[:12]}"
        if mod_name in sys.modules:
            module = sys.modules[mod_name]
        else:
            spec_obj = importlib.util.spec_from_file_location(mod_name, path)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[mod_name] = module
            sys.path.insert(0, str(path.parent))  # the file may import its neighbours
            try:
                spec_obj.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - the user's code: any error is theirs
                sys.modules.pop(mod_name, None)
                raise EdgebenchError(
                    f"model.python: could not import {path}: {type(exc).__name__}: {first_line(exc, 160)}"
                ) from None
            finally:
                sys.path.remove(str(path.parent))
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise EdgebenchError(
                f"model.python: could not import module {target}: {type(exc).__name__}: {first_line(exc, 160)}"
            ) from None
    if not hasattr(module, name):
        import inspect

        found = sorted(
            n for n, v in vars(module).items() if not n.startswith("_") and callable(v) and not inspect.ismodule(v)
        )
        raise EdgebenchError(
            f"model.python: {target} has no '{name}'; expected a class or function, found {found[:12]}"
        )
    return getattr(module, name)


@register
class PythonSource(Source):
    key = "python"

    def check(self, cfg: ModelConfig) -> None:
        target, _, name = cfg.spec.rpartition(":")
        expect(
            bool(target) and name.isidentifier(),
            f"model.python: expected 'path/to/file.py:Name' or 'package.module:Name', found {cfg.spec!r}",
        )
        if target.endswith(".py"):
            path = Path(target).expanduser()
            expect(path.is_file(), f"model.python: file not found: expected a .py file at {path}")

    def load(self, ctx: LoadContext) -> UserModel:
        import torch

        cfg = ctx.model
        obj = _import_target(cfg.spec)
        source: dict = {"files": []}
        target = cfg.spec.rpartition(":")[0]
        if target.endswith(".py"):
            source["files"].append(file_record(Path(target).expanduser(), "python"))
        torch.manual_seed(ctx.seed)
        if isinstance(obj, torch.nn.Module):
            module = obj
        else:
            expect(callable(obj), f"model.python: {cfg.spec} is a {type(obj).__name__}; expected a class or function")
            try:
                module = obj(**(cfg.kwargs or {}))
            except Exception as exc:  # noqa: BLE001 - the user's code
                raise EdgebenchError(
                    f"model.python: {cfg.spec}(**kwargs) failed: {type(exc).__name__}: {first_line(exc, 160)}"
                ) from None
        if not isinstance(module, torch.nn.Module):
            raise EdgebenchError(
                f"model.python: {cfg.spec} returned {type(module).__name__}; expected a torch.nn.Module"
            )
        _apply_checkpoint(module, cfg, source)
        return UserModel(module.eval(), source)


@register
class TorchvisionSource(Source):
    key = "torchvision"

    def check(self, cfg: ModelConfig) -> None:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if cfg.spec not in names:
            import difflib

            close = difflib.get_close_matches(cfg.spec, names, n=5, cutoff=0.4) or names[:5]
            raise EdgebenchError(
                f"model.torchvision: unknown classifier '{cfg.spec}': expected a torchvision.models name like {close}"
            )

    def load(self, ctx: LoadContext) -> UserModel:
        import torchvision

        return _library_model(
            ctx,
            f"torchvision {torchvision.__version__}",
            lambda name, kw: torchvision.models.get_model(name, weights=None, **kw),  # never downloads
            "no pretrained weights",
        )


@register
class TimmSource(Source):
    key = "timm"

    def check(self, cfg: ModelConfig) -> None:
        try:
            import timm
        except ImportError:
            raise EdgebenchError(
                "model.timm: needs the timm package; expected it installed (pip install 'edgebench[timm]'), found none"
            ) from None
        if not timm.is_model(cfg.spec):
            import difflib

            close = difflib.get_close_matches(cfg.spec, timm.list_models(), n=5, cutoff=0.5)
            raise EdgebenchError(f"model.timm: unknown model '{cfg.spec}': expected a timm model name like {close}")

    def load(self, ctx: LoadContext) -> UserModel:
        import timm

        return _library_model(
            ctx,
            f"timm {timm.__version__}",
            lambda name, kw: timm.create_model(name, pretrained=False, **kw),  # never downloads
            "pretrained=False",
        )


def _library_model(ctx: LoadContext, library: str, build: Any, no_weights: str) -> UserModel:
    """A classifier from a model library by name (torchvision, timm): built with the study's
    ``kwargs`` and ``num_classes``, seeded, the user's checkpoint applied when given."""
    import torch

    cfg = ctx.model
    kwargs = dict(cfg.kwargs or {})
    if cfg.num_classes is not None:
        kwargs["num_classes"] = cfg.num_classes
    torch.manual_seed(ctx.seed)
    key = library.split()[0]
    try:
        module = build(cfg.spec, kwargs)
    except Exception as exc:  # noqa: BLE001
        raise EdgebenchError(f"model.{key}: {cfg.spec}(**kwargs) failed: {first_line(exc, 160)}") from None
    source: dict = {"files": [], "library": library}
    _apply_checkpoint(module, cfg, source)
    if source["random_weights"]:
        source["weights"] = f"random ({key} {cfg.spec}, {no_weights}, seed {ctx.seed})"
    return UserModel(module.eval(), source)


@register
class TorchScriptSource(Source):
    key = "torchscript"
    is_file = True
    prunable = False
    why_not_prunable = (
        "model.torchscript is a compiled TorchScript graph and pruning rewrites a plain nn.Module; "
        "expected model.python (or model.onnx) for pruned candidates, or candidates without prune"
    )

    def load(self, ctx: LoadContext) -> UserModel:
        import torch

        path = Path(ctx.model.spec).expanduser()
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice is not the user's problem
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise EdgebenchError(
                f"model.torchscript: {path} is not a TorchScript file ({type(exc).__name__}: {first_line(exc, 120)})"
            ) from None
        return UserModel(module.eval(), {"files": [file_record(path, "torchscript")], "weights": "inside the file"})


@register
class OnnxSource(Source):
    key = "onnx"
    is_file = True

    def load(self, ctx: LoadContext) -> UserModel:
        import onnx
        import torch

        from edgebench.export.onnx import ort_logits
        from edgebench.measure.onnx_stats import graph_inputs

        path = Path(ctx.model.spec).expanduser()
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise EdgebenchError(f"model.onnx: {path} is not an ONNX model ({first_line(exc, 120)})") from None
        inputs = graph_inputs(proto)
        expect(len(inputs) == 1, f"model.onnx: expected a model with one input, found {[i[0] for i in inputs]}")
        declared = inputs[0][1]
        data = tuple(int(d) for d in ctx.split.x_eval.shape[1:])
        if declared is not None and len(declared) == 4:
            fixed = tuple(d if isinstance(d, int) else None for d in declared[1:])
            if any(f is not None and f != d for f, d in zip(fixed, data)) or len(declared) != 1 + len(data):
                raise EdgebenchError(
                    f"model.onnx: {path.name} expects input {'x'.join(str(d) for d in declared[1:])}; "
                    f"found data images {'x'.join(map(str, data))} (check data.image_size and the data's channels)"
                )
        batch1 = declared is not None and declared[0] == 1
        module, via = _onnx_to_torch(proto, path)
        norm = normalization(ctx.model.normalize) if ctx.model.normalize is not None else None
        x = ctx.split.x_eval[:CHECK_IMAGES]
        if norm is not None:
            m = np.asarray(norm[0], np.float32).reshape(1, -1, 1, 1)
            s = np.asarray(norm[1], np.float32).reshape(1, -1, 1, 1)
            x = ((x - m) / s).astype(np.float32)

        def reference(xs: np.ndarray) -> np.ndarray:
            return ort_logits(path, xs, batch=1 if batch1 else 256)

        ref = reference(x)
        try:
            with torch.inference_mode():
                got = np.concatenate(
                    [
                        module(torch.from_numpy(x[i : i + 1 if batch1 else i + 64])).numpy()
                        for i in range(0, len(x), 1 if batch1 else 64)
                    ]
                )
        except Exception as exc:  # noqa: BLE001
            raise EdgebenchError(
                f"model.onnx: the module onnx2torch made from {path.name} fails on the data's images: "
                f"{type(exc).__name__}: {first_line(exc, 160)}"
            ) from None
        expect(
            got.shape == ref.shape,
            f"model.onnx: converted module output {got.shape} differs from ONNX Runtime's {ref.shape}",
        )
        diff, tol = _logit_diff(got, ref)
        expect(
            diff <= tol,
            f"model.onnx: the module onnx2torch made from {path.name} differs from ONNX Runtime on {len(x)} images: "
            f"max |diff| {diff:.3g}, expected <= {tol:.3g}",
        )
        source = {
            "files": [file_record(path, "onnx")],
            "weights": "inside the file",
            "conversion_check": {
                "converter": "onnx2torch",
                "images": int(len(x)),
                "max_abs_diff": diff,
                "tolerance": tol,
            },
        }
        return UserModel(module, source, reference=reference)


CONVERT_OPSET = 17  # onnx2torch covers opset <= 17 best (e.g. AveragePool-19 has no converter)


def _onnx_to_torch(proto: Any, path: Path) -> tuple[torch.nn.Module, int | None]:
    """onnx2torch on the model as given; if an operator version has no converter, once more after
    ``onnx.version_converter`` to opset 17. Returns the module and the opset converted to (or None)."""
    import onnx
    import onnx2torch

    try:
        return onnx2torch.convert(proto).eval(), None
    except Exception as exc:  # noqa: BLE001
        first = exc
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > CONVERT_OPSET:
        try:
            down = onnx.version_converter.convert_version(proto, CONVERT_OPSET)
            return onnx2torch.convert(down).eval(), CONVERT_OPSET
        except Exception:  # noqa: BLE001 - report the first error: it names the operator
            pass
    raise EdgebenchError(
        f"model.onnx: onnx2torch cannot convert {path.name}: {type(first).__name__}: {first_line(first, 160)}"
    ) from None


def _logit_diff(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Max |got - ref| and the tolerance it is held to: RTOL relative to the reference's largest logit
    (at least 1), the one rule for the ONNX conversion check and the exported-base check."""
    return float(np.max(np.abs(got - ref))), RTOL * max(1.0, float(np.max(np.abs(ref))))


def check_against_source(artifact: Path, reference: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> dict:
    """The exported base artifact (ONNX Runtime) against the user's own model on real images."""
    from edgebench.export.onnx import ort_logits

    ref = reference(x)
    got = ort_logits(artifact, x)
    diff, tol = _logit_diff(got, ref)
    expect(
        diff <= tol,
        f"{artifact.name}: the exported base differs from your model on {len(x)} images: max |diff| {diff:.3g}, "
        f"expected <= {tol:.3g}",
    )
    return {
        "images": int(len(x)),
        "max_abs_diff": diff,
        "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
    }


__all__ = [
    "SOURCES",
    "LoadContext",
    "Source",
    "UserModel",
    "check_against_source",
    "check_model_config",
    "check_recipes",
    "load_model",
    "register",
]
