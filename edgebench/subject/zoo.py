"""Resolve a study's subject: the base model and its data split.

Built-in architectures are trained on first use with a fixed seed and cached (state_dict,
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
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError, first_line
from edgebench.settings import cache_dir
from edgebench.subject.data import Split, load_arrays, make_split

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """``arch``: a built-in (lenet5, resnet8); ``checkpoint``: a state_dict for it (else trained)."""

    arch: str = "lenet5"
    checkpoint: str | None = None
    train_epochs: int = 4
    train_lr: float = 2e-3
    allow_pickle: bool = False  # opt-in to torch.load(weights_only=False) for a file you trust


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"
    path: str | None = None
    eval_count: int = 1000
    calib_count: int = 256
    train_count: int | None = None
    image_size: int = 224  # for imagefolder


@dataclass
class Subject:
    model: torch.nn.Module
    split: Split
    info: dict = field(default_factory=dict)


def _key(model_cfg: ModelConfig, data_cfg: DataConfig, seed: int, shape: tuple[int, ...]) -> str:
    blob = json.dumps(
        [
            model_cfg.arch,
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
    """The base model (trained and cached on first use, or loaded) and its data split."""
    import torch

    from edgebench.subject.models import build
    from edgebench.subject.train import accuracy, train

    x, y = load_arrays(data_cfg.name, data_cfg.path, data_cfg.image_size)
    split = make_split(x, y, data_cfg.name, data_cfg.eval_count, data_cfg.calib_count, seed, data_cfg.train_count)
    c, h = int(x.shape[1]), int(x.shape[2])
    mean = tuple(float(m) for m in split.x_train.mean(axis=(0, 2, 3)))
    std = tuple(float(s) + 1e-6 for s in split.x_train.std(axis=(0, 2, 3)))
    torch.manual_seed(seed)
    model = build(model_cfg.arch, c, split.num_classes, h, mean, std)
    info = {
        "model": model_cfg.arch,
        "dataset": data_cfg.name,
        "num_classes": split.num_classes,
        "input_shape": list(split.input_shape),
        "eval_count": int(len(split.x_eval)),
        "calib_count": int(len(split.x_calib)),
        "train_count": int(len(split.x_train)),
    }
    if model_cfg.checkpoint:
        state = load_state_dict(Path(model_cfg.checkpoint).expanduser(), model_cfg.allow_pickle)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise EdgebenchError(
                f"{model_cfg.checkpoint}: does not fit architecture '{model_cfg.arch}': {first_line(exc)}"
            ) from None
        info["weights"] = str(model_cfg.checkpoint)
    else:
        cached = (
            cache_dir()
            / "models"
            / f"{model_cfg.arch}-{data_cfg.name}-{_key(model_cfg, data_cfg, seed, split.input_shape)}.pt"
        )
        if cached.is_file():
            model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
            info["weights"] = f"cached: {cached}"
        else:
            if on_status:
                on_status(
                    f"training {model_cfg.arch} on {data_cfg.name} ({len(split.x_train)} images, {model_cfg.train_epochs} epochs)"
                )
            train(model, split.x_train, split.y_train, epochs=model_cfg.train_epochs, lr=model_cfg.train_lr, seed=seed)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(cached)
            info["weights"] = f"trained now, cached at {cached}"
    model.eval()
    info["base_accuracy_torch"] = accuracy(model, split.x_eval, split.y_eval)
    return Subject(model=model, split=split, info=info)
