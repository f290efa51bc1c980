"""Where a study's base model comes from: one source per key of the study's ``model:`` section.

=================  ======================================================================
``arch``           a built-in demo architecture (lenet5, resnet8), trained on the data
                   (``builtin.py``)
``python``         ``file.py:Name`` or ``package.module:Name``: a class or function that
                   returns a ``torch.nn.Module`` (``kwargs``, ``checkpoint``; ``python.py``)
``torchvision``    any ``torchvision.models`` classifier (random weights, seeded, unless
                   ``checkpoint``; never downloaded), ``num_classes``, ``kwargs`` (``library.py``)
``timm``           a timm model (extra ``timm``), as torchvision (``library.py``)
``torchscript``    a TorchScript file: attacked, quantized, exported, measured; not pruned
``onnx``           an ONNX file *as it is*: the deployed base artifact; converted with onnx2torch
                   (after :mod:`edgebench.export.graph` normalizes it) for what needs PyTorch,
                   and everything ONNX-native still runs when it cannot be (``onnx.py``)
=================  ======================================================================

The ``model:`` section is :class:`ModelConfig` (``base.py``). Each source is a :class:`Source`
in :data:`SOURCES` (a registry keyed by the config key; a module per source, imported here in
the order the keys are looked up). A source checks its options when the study is read and loads
the module when the study runs; :func:`load_model` then picks the logits (``output``), puts
``normalize`` inside the model (attacks work on [0,1] pixels), checks the model against the
data (channels, image size, output ``(batch, classes)``, labels) and detects a model that
returns probabilities, whose log-probabilities attacks and fine-tuning then use. Every file the
model came from is recorded with its sha256 (``source`` in subject.json and the report).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.subject.data import Split
from edgebench.subject.sources import builtin, library, onnx, python, torchscript
from edgebench.subject.sources.base import (
    OPTIONS,
    SOURCES,
    LoadContext,
    ModelConfig,
    Source,
    UserModel,
    check_labels,
    check_model_config,
    check_recipes,
    normalization,
    register,
    source_kind,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODULES = (builtin, python, library, torchscript, onnx)  # each registers its sources on import
ORDER = ("arch", "python", "torchvision", "timm", "torchscript", "onnx")  # as messages list them
for _key in sorted(SOURCES, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
    SOURCES[_key] = SOURCES.pop(_key)


def _keep_scripted(module: Any, wrapper: Any) -> Any:
    """*wrapper* around *module*, scripted when *module* is TorchScript (a traced graph inside a
    plain module cannot be re-traced by the exporter)."""
    import torch

    wrapper = wrapper.eval()
    if isinstance(module, torch.jit.ScriptModule):
        return torch.jit.script(wrapper)
    return wrapper


def with_normalize(module: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.nn.Module:
    """*module* behind a :class:`~edgebench.subject.models.Normalize`: the result takes [0,1] pixels,
    so attacks, ONNX export and every runtime see the same inputs and epsilons mean pixels."""
    from torch import nn

    from edgebench.subject.models import Normalize

    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.normalize = Normalize(mean, std)
            self.model = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(self.normalize(x))

    return _keep_scripted(module, Normalized())


def select_output(module: torch.nn.Module, key: str | int) -> torch.nn.Module:
    """*module* returning only its logits: ``out[key]`` of a tuple/list (an index) or a dict (a key),
    or the attribute *key* of an output object (e.g. ``logits``)."""
    from torch import nn

    index = int(key) if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else None

    class SelectOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, x: Any) -> Any:
            out = self.model(x)
            if isinstance(out, (tuple, list)) and index is not None:
                return out[index]
            if isinstance(out, dict):
                return out[key]
            return getattr(out, str(key))

    return SelectOutput().eval()


def load_model(ctx: LoadContext) -> UserModel:
    """Load the base model from its source, pick its logits, put normalization inside, check it
    against the data, and detect probability outputs."""
    from edgebench.export.to_torch import is_probabilities, log_probabilities

    cfg = ctx.model
    kind = cfg.kind
    what = f"model.{kind} {cfg.spec}"
    user = SOURCES[kind].load(ctx)
    user.source = {"kind": kind, "spec": cfg.spec, "files": [], **user.source}
    if user.graph is not None:  # ONNX: output, normalization and layout are handled in the graph by the source
        return user
    assert user.module is not None
    if cfg.output is not None:
        user.module = select_output(user.module, cfg.output)
        user.source["output_selected"] = cfg.output
    if cfg.normalize is not None:
        mean, std = normalization(cfg.normalize)
        channels = int(ctx.split.x_eval.shape[1])
        expect(
            len(mean) == channels,
            f"model.normalize: expected one mean/std per image channel ({channels}), found {len(mean)}",
        )
        user.module = with_normalize(user.module, mean, std)
        user.source["normalize"] = {"mean": list(mean), "std": list(std)}
    user.module.eval()
    out = module_output(user.module, ctx.split, what)
    user.num_classes = check_labels(out, ctx.split, what)
    if is_probabilities(out):
        user.module = _keep_scripted(user.module, log_probabilities(user.module))
        user.output_kind = "probabilities"
        user.source["output"] = {
            "kind": "probabilities",
            "detected_by": "rows non-negative and summing to 1 on real images",
            "attacked": "log-probabilities",
        }
    return user


def module_output(module: torch.nn.Module, split: Split, what: str) -> np.ndarray:
    """The model's output on the first 16 real images: it must accept them and return one
    tensor ``(batch, classes)``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(split.x_eval[:16]))
    shape = "x".join(str(d) for d in x.shape[1:])
    try:
        with torch.inference_mode():
            out = module(x)
    except Exception as exc:  # noqa: BLE001 - any failure here is the model rejecting the data
        from edgebench.subject.models import input_channels

        want = input_channels(module)
        hint = f"; its first convolution takes {want}: set data.channels: {want}" if want in (1, 3) else ""
        raise EdgebenchError(
            f"{what} rejects the data's images ({shape}, values in [0,1]): {first_line(exc, 160)}; "
            "expected images whose channels and size the model accepts (data.channels, data.image_size, data source)"
            + (hint if want != x.shape[1] else "")
        ) from None
    if not isinstance(out, torch.Tensor):
        hint = ""
        if isinstance(out, (tuple, list)):
            hint = f" of {len(out)}; name the logits with model.output: INDEX"
        elif isinstance(out, dict):
            hint = f" with keys {sorted(map(str, out))}; name the logits with model.output: KEY"
        raise EdgebenchError(
            f"{what}: expected the model to return logits, a tensor (batch, classes); found {type(out).__name__}{hint}"
        )
    if out.ndim != 2 or out.shape[0] != len(x):
        raise EdgebenchError(f"{what}: expected output (batch, classes) = ({len(x)}, K), found {tuple(out.shape)}")
    return out.float().numpy()


__all__ = [
    "OPTIONS",
    "SOURCES",
    "LoadContext",
    "ModelConfig",
    "Source",
    "UserModel",
    "check_labels",
    "check_model_config",
    "check_recipes",
    "load_model",
    "module_output",
    "normalization",
    "register",
    "select_output",
    "source_kind",
    "with_normalize",
]
