"""Resolve a study's subject: the base model and its data split.

The model comes from one source (:mod:`edgebench.subject.sources`); built-in architectures
are trained on first use with a fixed seed and cached (state_dict,
loaded with ``weights_only=True``) in the user cache dir, keyed by architecture, data and
training settings, so the second run starts in a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import SkipValidation, model_validator

from edgebench.errors import EdgebenchError, first_line
from edgebench.settings import cache_dir
from edgebench.subject.data import Split
from edgebench.util.schema import Section, user_checks

if TYPE_CHECKING:
    from edgebench.subject.sources import LoadContext, UserModel

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


DEFAULT_ARCH = "lenet5"


class ModelConfig(Section):
    """Where the base model comes from: one source key (see :mod:`edgebench.subject.sources`).

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
        """One source, options that apply to it, well-formed values (subject/sources.py)."""
        from edgebench.subject.sources import check_model_config

        with user_checks():
            check_model_config(self)
        return self

    @property
    def kind(self) -> str:
        """The source key in use (``arch`` when none is given: the built-in default)."""
        from edgebench.subject.sources import source_kind

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


class DataConfig(Section):
    """One source split with ``seed`` (``name``/``path``), or separate ``train``/``calib``/``eval``
    sources (each a path, or a mapping {name, path, image_size}); see :func:`load_split`."""

    section: ClassVar[str] = "data"

    name: str = "mnist"
    path: str | None = None
    eval_count: int = 1000
    calib_count: int = 256
    train_count: int | None = None
    image_size: int = 224  # for imagefolder: resize the shorter side, then center crop to this
    # a path or a mapping: checked by check_data_config (role_source), which names both forms
    train: SkipValidation[str | dict | None] = None
    calib: SkipValidation[str | dict | None] = None
    eval: SkipValidation[str | dict | None] = None

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        """Counts, sizes and the separate sources (subject/data.py); no images are loaded."""
        from edgebench.subject.data import check_data_config

        with user_checks():
            check_data_config(self)
        return self

    @property
    def label(self) -> str:
        """A short name for folders and titles: the evaluation source's file name or the dataset."""
        from edgebench.subject.data import role_source, source_label

        return source_label(role_source(self, "eval")) if self.eval is not None else self.name


@dataclass
class Subject:
    model: torch.nn.Module
    split: Split
    info: dict = field(default_factory=dict)
    # the user's own model on [0,1] images -> logits, where it is not ``model`` (an ONNX file run
    # by ONNX Runtime); the base artifact is checked against it
    reference: Callable[[np.ndarray], np.ndarray] | None = None


def _key(model_cfg: ModelConfig, data_cfg: DataConfig, seed: int, shape: tuple[int, ...]) -> str:
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


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict:
    """A state_dict from *path*, never unpickling arbitrary objects unless the user opted in."""
    import pickle

    import torch

    if not path.is_file():
        raise EdgebenchError(f"checkpoint not found: expected a file at {path}")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise EdgebenchError(
            f"{path}: not a PyTorch checkpoint (expected a file written by torch.save, found other bytes)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        found = next(
            (ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "objects other than tensors"
        )
        raise EdgebenchError(
            f"{path}: refused to load: it holds more than tensors ({found[:160]}); "
            "save a state_dict, or set model.allow_pickle: true for a file you trust"
        ) from None
    except Exception as exc:  # noqa: BLE001 - zip/format errors of all kinds
        raise EdgebenchError(
            f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {first_line(exc, 160)})"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise EdgebenchError(f"{path}: expected a state_dict (parameter name -> tensor), found {type(obj).__name__}")
    return obj


def load_subject(
    model_cfg: ModelConfig, data_cfg: DataConfig, seed: int = 0, on_status: Callable[[str], None] | None = None
) -> Subject:
    """The base model (from its source, normalization inside) checked against its data split."""
    from edgebench.subject.data import load_split
    from edgebench.subject.sources import LoadContext, load_model
    from edgebench.subject.train import accuracy

    split = load_split(data_cfg, seed)
    ctx = LoadContext(model_cfg, data_cfg, split, seed, on_status or (lambda _t: None))
    user = load_model(ctx)
    info = {
        "model": model_cfg.label,
        "dataset": split.name,
        "num_classes": user.num_classes,
        "input_shape": list(split.input_shape),
        "eval_count": int(len(split.x_eval)),
        "calib_count": int(len(split.x_calib)),
        "train_count": int(len(split.x_train)),
        "data_sources": split.origin,
        "source": user.source,
        "weights": user.source.get("weights"),
    }
    info["base_accuracy_torch"] = accuracy(user.module, split.x_eval, split.y_eval)
    return Subject(model=user.module, split=split, info=info, reference=user.reference)


def load_builtin(ctx: LoadContext) -> UserModel:
    """A built-in architecture sized for the data: loaded from ``checkpoint``, else trained on
    the training split once (seeded) and cached by architecture, data and training settings."""
    import torch

    from edgebench.subject.models import build
    from edgebench.subject.sources import UserModel
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
        ckpt = Path(model_cfg.checkpoint).expanduser()
        state = load_state_dict(ckpt, model_cfg.allow_pickle)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise EdgebenchError(
                f"{model_cfg.checkpoint}: does not fit architecture '{arch}': {mismatch(model, state, exc)}"
            ) from None
        source["files"].append(file_record(ckpt, "checkpoint"))
        source["weights"] = f"checkpoint {ckpt}"
    else:
        if not len(split.x_train):
            raise EdgebenchError(
                f"model.arch: training built-in '{arch}' needs training images; expected data.train or "
                "model.checkpoint, found neither"
            )
        cached = cache_dir() / "models" / f"{arch}-{split.name}-{_key(model_cfg, data_cfg, seed, split.input_shape)}.pt"
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


def mismatch(module: Any, state: dict, exc: BaseException) -> str:
    """Why a state_dict does not fit *module*, in a few words: missing, unexpected, other shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape ({shapes[0]})")
    if missing:
        parts.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} unexpected ({', '.join(extra[:3])})")
    return "; ".join(parts) if parts else first_line(exc)


def file_record(path: Path, role: str) -> dict:
    """A file the model came from, as the report names it: role, path and sha256."""
    from edgebench.util.io import sha256_file

    return {"role": role, "path": str(path), "sha256": sha256_file(path)}
