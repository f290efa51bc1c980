"""The ``model:`` section (:class:`ModelConfig`), what a source is (:class:`Source`) and the
registry :data:`SOURCES` the source modules of this package add themselves to."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from edgebench.errors import EdgebenchError, expect
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
    "layout": ("onnx",),
    "output": ("python", "torchvision", "timm", "torchscript", "onnx"),
}
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
    # onnx: the graph's input layout; auto reads it from the graph (a leading Transpose
    # [0, 3, 1, 2], or 1 or 3 channels last); data is given as usual (NCHW) either way
    layout: Literal["auto", "nchw", "nhwc"] = "auto"
    # the logits when the model returns several outputs: an ONNX output name, a dict key or a
    # tuple index (an integer, or a string of digits)
    output: str | int | None = None

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
    # batch sizes a converted model is checked at against the user's graph (the study's profile
    # batches and the replay batch): a graph that bakes in one batch size fails at load
    batches: tuple[int, ...] = (1, CHECK_IMAGES)


@dataclass
class UserModel:
    """A loaded base model and where it came from."""

    module: torch.nn.Module | None  # None: no PyTorch module could be made (``torch_reason`` says why)
    source: dict  # kind, spec, files [{role, path, sha256}], weights, checks
    reference: Callable[[np.ndarray], np.ndarray] | None = None  # the user's own model, if not `module`
    num_classes: int = 0
    # an ONNX source: the user's graph as the deployed base artifact (normalization and layout
    # prepended as nodes, see edgebench.export.graph.deployable); None for PyTorch sources
    graph: Any = None
    torch_reason: str | None = None  # why there is no module: the stages that need PyTorch say this
    # what the model returns: "logits", or "probabilities" (``module`` then returns their log)
    output_kind: str = "logits"


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


def apply_checkpoint(module: torch.nn.Module, cfg: ModelConfig, source: dict) -> None:
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


def check_labels(out: np.ndarray, split: Split, what: str) -> int:
    """The model's output *out* must have a class for every label; returns the number of classes."""
    k = int(out.shape[1])
    labels = np.concatenate([split.y_eval, split.y_calib, split.y_train])
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        raise EdgebenchError(
            f"{what}: the model has {k} outputs, so expected labels in [0, {k - 1}]; found labels in [{lo}, {hi}]"
        )
    return k
