"""Resolve a study's subject: the base model and its data split.

The data split comes from :mod:`edgebench.subject.data`, the model from its source
(:mod:`edgebench.subject.sources`, where built-in architectures are trained on first use with a
fixed seed and cached); :func:`load_subject` puts them together and measures the base accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.subject.data import DataConfig, Split, load_split
from edgebench.subject.sources import LoadContext, ModelConfig, load_model

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """The base model and its data. ``model`` is the PyTorch module the stages that need one
    (pruning, fine-tuning, crafting) use; None when it could not be made (an ONNX graph
    onnx2torch cannot convert: ``torch_reason`` says why), and then only the ONNX-native
    stages run. ``graph`` is the user's ONNX graph as the deployed base artifact (ONNX sources)."""

    model: torch.nn.Module | None
    split: Split
    info: dict = field(default_factory=dict)
    # the user's own model on [0,1] images -> outputs, where it is not ``model`` (an ONNX file run
    # by ONNX Runtime)
    reference: Callable[[np.ndarray], np.ndarray] | None = None
    graph: Any = None  # onnx.ModelProto
    torch_reason: str | None = None
    output_kind: str = "logits"  # or "probabilities": ``model`` then returns their log

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The base model's scores on *x*: PyTorch's when there is a module, else ONNX Runtime's
        (log-probabilities for a model that returns probabilities, as the module gives)."""
        from edgebench.export.onnx import torch_logits
        from edgebench.export.to_torch import as_log_probabilities

        if self.model is not None:
            return torch_logits(self.model, x)
        assert self.reference is not None
        out = self.reference(x)
        return as_log_probabilities(out) if self.output_kind == "probabilities" else out


def load_subject(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    seed: int = 0,
    on_status: Callable[[str], None] | None = None,
    batches: tuple[int, ...] = (1, 64),
) -> Subject:
    """The base model (from its source, normalization inside) checked against its data split;
    a converted model is checked at each of *batches* (the study's profile and replay batches)."""
    from edgebench.subject.train import accuracy

    split = load_split(data_cfg, seed)
    ctx = LoadContext(model_cfg, data_cfg, split, seed, on_status or (lambda _t: None), tuple(batches))
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
    if user.torch_reason is not None:
        info["torch_unavailable"] = user.torch_reason
    subject = Subject(
        model=user.module,
        split=split,
        info=info,
        reference=user.reference,
        graph=user.graph,
        torch_reason=user.torch_reason,
        output_kind=user.output_kind,
    )
    if user.module is not None:
        info["base_accuracy_torch"] = accuracy(user.module, split.x_eval, split.y_eval)
    else:  # ONNX Runtime on the user's graph: the same images, the same measure
        info["base_accuracy_torch"] = float(np.mean(subject.logits(split.x_eval).argmax(1) == split.y_eval))
        info["base_accuracy_by"] = "onnxruntime (no PyTorch module)"
    return subject
