"""``model.arch``: a built-in demo architecture, trained on the data once (seeded) and cached."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError, expect
from edgebench.settings import cache_dir
from edgebench.subject.data import DataConfig
from edgebench.subject.sources.base import LoadContext, ModelConfig, Source, UserModel, apply_checkpoint, register

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


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
        apply_checkpoint(model, model_cfg, source)
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
