"""``model.torchscript``: a TorchScript file (attacked, quantized, exported, measured; not pruned)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError, first_line
from edgebench.subject.sources.base import LoadContext, Source, UserModel, register
from edgebench.subject.weights import file_record

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


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
