"""Resolve a study's subject: the base model and its data split.

The data split comes from :mod:`edgebench.subject.data`, the model from its source
(:mod:`edgebench.subject.sources`, where built-in architectures are trained on first use with a
fixed seed and cached); :func:`load_subject` puts them together and measures the base accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgebench.subject.data import DataConfig, Split, load_split
from edgebench.subject.sources import LoadContext, ModelConfig, load_model

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass
class Subject:
    model: torch.nn.Module
    split: Split
    info: dict = field(default_factory=dict)
    # the user's own model on [0,1] images -> logits, where it is not ``model`` (an ONNX file run
    # by ONNX Runtime); the base artifact is checked against it
    reference: Callable[[np.ndarray], np.ndarray] | None = None


def load_subject(
    model_cfg: ModelConfig, data_cfg: DataConfig, seed: int = 0, on_status: Callable[[str], None] | None = None
) -> Subject:
    """The base model (from its source, normalization inside) checked against its data split."""
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
