"""Pruning: structured (channels removed, Torch-Pruning) or unstructured (weights zeroed).

Three separate concerns, as in Torch-Pruning:

- which layers are coupled: Torch-Pruning's ``DependencyGraph`` (built by its ``BasePruner``)
  keeps residual adds, concatenations and depthwise convolutions consistent;
- how to cut one: Torch-Pruning's pruning functions (structured) or a permanent zero mask
  (unstructured, ``torch.nn.utils.prune``);
- which channels to cut: :mod:`edgebench.compress.importance` (l1, l2, random, taylor, gap).

The classifier (the last Linear or Conv whose output width equals the number of classes) is
found automatically and never loses output features.

``ratio`` is relative to the model you pass in: structured pruning removes that fraction of each
layer's channels (of all channels with ``global_pruning``); unstructured pruning zeroes that
fraction of the still non-zero Conv/Linear weights. So a sparsity grid 0, 50, 75, 87.5 % is three
chained calls with ``ratio=0.5`` (each on the previous result), or :func:`prune_series` with the
cumulative targets ``[0.5, 0.75, 0.875]``. Within one call, ``iterative_steps=N`` prunes in N
equal steps (Torch-Pruning's linear schedule) and fine-tunes after each step.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.compress.finetune import FinetuneSpec, check_train_data, finetune
from edgebench.errors import EdgebenchError, check_keys, expect
from edgebench.util.checks import is_int, is_number

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CRITERIA = ("l1", "l2", "random", "taylor", "gap")
GRADIENT_CRITERIA = ("taylor", "gap")

__all__ = ["CRITERIA", "FinetuneSpec", "PruneSpec", "find_classifier", "parse_prune_spec", "prune", "prune_series"]

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class PruneSpec:
    """A pruning recipe. Invalid combinations raise :class:`EdgebenchError` at construction.

    ratio: fraction of channels removed (structured) or of non-zero weights zeroed
    (unstructured), relative to the model passed in; 0 returns an untouched copy.
    criterion: l1 | l2 | random | taylor (needs ``train``) | gap (needs ``train``).
    structured: False = unstructured pruning: zeros in dense tensors; smaller when compressed,
    but no speed-up on dense runtimes (ORT, TensorRT), so measure, do not expect one.
    round_to: keep pruned channel counts multiples of this (structured only).
    iterative_steps: prune in N steps with fine-tuning after each.
    gap_*: the PGD attack GAP crafts on the model being pruned (L-inf, random start).
    taylor_samples: clean training samples for the Taylor gradient.
    seed: random criterion, PGD start and sample choice.
    """

    ratio: float = 0.5
    criterion: str = "l1"
    structured: bool = True
    round_to: int | None = None
    global_pruning: bool = False
    iterative_steps: int = 1
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    gap_eps: float = 8 / 255
    gap_steps: int = 10
    gap_rel_stepsize: float = 0.25
    gap_samples: int = 256
    taylor_samples: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        expect(
            is_number(self.ratio) and 0 <= self.ratio < 1,
            f"prune.ratio: expected a number in [0, 1), found {self.ratio!r}",
        )
        expect(
            self.criterion in CRITERIA,
            f"prune.criterion: expected one of {', '.join(CRITERIA)}, found {self.criterion!r}",
        )
        expect(
            isinstance(self.structured, bool), f"prune.structured: expected true or false, found {self.structured!r}"
        )
        expect(
            isinstance(self.global_pruning, bool),
            f"prune.global_pruning: expected true or false, found {self.global_pruning!r}",
        )
        expect(
            self.round_to is None or (is_int(self.round_to) and self.round_to >= 1),
            f"prune.round_to: expected null or an integer >= 1, found {self.round_to!r}",
        )
        expect(
            self.round_to is None or self.structured,
            f"prune.round_to applies to structured pruning only; found round_to={self.round_to} with structured=false",
        )
        expect(
            is_int(self.iterative_steps) and self.iterative_steps >= 1,
            f"prune.iterative_steps: expected an integer >= 1, found {self.iterative_steps!r}",
        )
        expect(
            isinstance(self.finetune, FinetuneSpec),
            f"prune.finetune: expected a FinetuneSpec, found {type(self.finetune).__name__}",
        )
        expect(
            is_number(self.gap_eps) and 0 < self.gap_eps <= 1,
            f"prune.gap_eps: expected a number in (0, 1], found {self.gap_eps!r}",
        )
        expect(
            is_int(self.gap_steps) and self.gap_steps >= 1,
            f"prune.gap_steps: expected an integer >= 1, found {self.gap_steps!r}",
        )
        expect(
            is_number(self.gap_rel_stepsize) and self.gap_rel_stepsize > 0,
            f"prune.gap_rel_stepsize: expected a number > 0, found {self.gap_rel_stepsize!r}",
        )
        expect(
            is_int(self.gap_samples) and self.gap_samples >= 1,
            f"prune.gap_samples: expected an integer >= 1, found {self.gap_samples!r}",
        )
        expect(
            is_int(self.taylor_samples) and self.taylor_samples >= 1,
            f"prune.taylor_samples: expected an integer >= 1, found {self.taylor_samples!r}",
        )
        expect(is_int(self.seed), f"prune.seed: expected an integer, found {self.seed!r}")
        object.__setattr__(self, "ratio", float(self.ratio))  # YAML's 0 and 0.0 are one recipe

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for recipes in results.json); :func:`parse_prune_spec` reads it back."""
        return dataclasses.asdict(self)


def parse_prune_spec(d: dict) -> PruneSpec:
    """Build a :class:`PruneSpec` from a study-config mapping (or :meth:`PruneSpec.to_dict`
    output); unknown keys are refused by name. The one parser of prune recipes."""
    expect(isinstance(d, dict), f"prune: expected a mapping, found {d!r}")
    check_keys(d, PruneSpec, "prune")
    kwargs = dict(d)
    ft = kwargs.get("finetune")
    if ft is not None and not isinstance(ft, FinetuneSpec):
        expect(isinstance(ft, dict), f"prune.finetune: expected a mapping, found {ft!r}")
        check_keys(ft, FinetuneSpec, "prune.finetune")
        try:
            kwargs["finetune"] = FinetuneSpec(**ft)
        except EdgebenchError as exc:  # its messages start at finetune.
            raise EdgebenchError(f"prune.{exc}") from None
    elif ft is None:
        kwargs.pop("finetune", None)
    return PruneSpec(**kwargs)


def find_classifier(model: torch.nn.Module, example_input: torch.Tensor) -> torch.nn.Module:
    """The last Linear (or 1x1-style Conv) whose output width is the number of classes.

    The number of classes is read from the model's output on *example_input*.
    """
    import torch
    from torch import nn

    with torch.no_grad():
        out = model.eval()(example_input)
    expect(
        isinstance(out, torch.Tensor) and out.ndim == 2,
        f"prune: expected the model to return logits (N, classes), found {getattr(out, 'shape', type(out).__name__)}",
    )
    n_classes = int(out.shape[1])
    found: nn.Module | None = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == n_classes:
            found = m
        elif isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == n_classes:
            found = m
    if found is None:
        raise EdgebenchError(
            f"prune: expected a final Linear (or Conv) layer with {n_classes} outputs (the classifier), found none"
        )
    return found


def prune(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    on_progress: ProgressFn | None = None,
) -> torch.nn.Module:
    """Return a pruned deep copy of *model* (eval mode, CPU); *model* itself is untouched.

    Fine-tunes on *train* (x float32 NCHW in [0, 1], y int64) after each step when given and
    ``spec.finetune.epochs > 0``. taylor and gap need *train* (gradients on its samples).
    *on_progress* gets one human-readable line per stage. The caller's torch RNG state is kept.
    """
    import torch

    expect(isinstance(model, torch.nn.Module), f"prune: expected a torch.nn.Module, found {type(model).__name__}")
    expect(isinstance(spec, PruneSpec), f"prune: expected a PruneSpec, found {type(spec).__name__}")
    expect(
        isinstance(example_input, torch.Tensor) and example_input.ndim == 4 and example_input.dtype == torch.float32,
        f"prune: expected example_input a float32 tensor (N, C, H, W), found {getattr(example_input, 'shape', type(example_input).__name__)} {getattr(example_input, 'dtype', '')}",
    )
    if train is not None:
        check_train_data(train, tuple(example_input.shape), what="prune train")
    expect(
        train is not None or spec.criterion not in GRADIENT_CRITERIA,
        f"prune: criterion {spec.criterion} needs training data (gradients of the loss), found train=None",
    )
    example_input = example_input.detach().cpu()
    pruned = copy.deepcopy(model).cpu().eval()
    if spec.ratio == 0:
        return pruned
    classifier = find_classifier(pruned, example_input)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if spec.structured:
            _prune_structured(pruned, spec, example_input, classifier, train, on_progress)
        else:
            _prune_unstructured(pruned, spec, example_input, classifier, train, on_progress)
    pruned.zero_grad(set_to_none=True)
    return pruned.eval()


def prune_series(
    model: torch.nn.Module,
    ratios: list[float],
    spec: PruneSpec,
    example_input: torch.Tensor,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[torch.nn.Module]:
    """Prune to increasing *cumulative* ratios (e.g. ``[0.5, 0.75, 0.875]``), each model from the
    previous one, as in iterative pruning with retraining. ``spec.ratio`` is ignored.

    Each call removes ``1 - (1 - r_k) / (1 - r_{k-1})`` of what the previous model has left.
    """
    expect(
        len(ratios) > 0
        and all(is_number(r) and 0 < r < 1 for r in ratios)
        and all(a < b for a, b in zip(ratios, ratios[1:])),
        f"prune_series: expected strictly increasing ratios in (0, 1), found {ratios!r}",
    )
    out: list[torch.nn.Module] = []
    current, done = model, 0.0
    for r in ratios:
        rel = 1 - (1 - r) / (1 - done)
        current = prune(current, dataclasses.replace(spec, ratio=rel), example_input, train, on_progress)
        out.append(current)
        done = r
    return out


def _say(on_progress: ProgressFn | None, msg: str) -> None:
    log.info(msg)
    if on_progress:
        on_progress(msg)


def _prunable_layers(model: torch.nn.Module, classifier: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    from torch import nn

    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and m is not classifier
    ]


def _prune_structured(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    classifier: torch.nn.Module,
    train: tuple[np.ndarray, np.ndarray] | None,
    on_progress: ProgressFn | None,
) -> None:
    import torch_pruning as tp

    from edgebench.compress import importance as imp
    from edgebench.compress.stats import layer_widths

    before = layer_widths(model)
    n_classes = _out_width(classifier)
    try:
        pruner = tp.pruner.BasePruner(
            model,
            example_input,
            importance=imp.structured_importance(spec),
            pruning_ratio=spec.ratio,
            iterative_steps=spec.iterative_steps,
            ignored_layers=[classifier],
            round_to=spec.round_to,
            global_pruning=spec.global_pruning,
        )
    except Exception as exc:  # tracing failures on exotic models
        raise EdgebenchError(
            f"prune: Torch-Pruning could not trace the model's dependency graph: {type(exc).__name__}: {exc}"
        ) from None
    for step in range(spec.iterative_steps):
        if spec.criterion in GRADIENT_CRITERIA:
            assert train is not None
            imp.accumulate_gradients(model, train, spec)
        pruner.step()
        model.zero_grad(set_to_none=True)
        _say(
            on_progress,
            f"structured {spec.criterion} step {step + 1}/{spec.iterative_steps}: {_width_summary(before, layer_widths(model))}",
        )
        if train is not None and spec.finetune.epochs > 0:
            finetune(model, train, spec.finetune, on_progress)
    model.eval()
    _verify_structured(model, spec, example_input, classifier, before, n_classes)


def _out_width(m: Any) -> int:
    return int(getattr(m, "out_features", None) or m.out_channels)


def _width_summary(before: dict[str, int], after: dict[str, int]) -> str:
    b = sum(before.values())
    a = sum(after.get(k, 0) for k in before)
    return f"{a}/{b} output channels kept ({1 - a / max(b, 1):.1%} removed)"


def _verify_structured(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    classifier: torch.nn.Module,
    before: dict[str, int],
    n_classes: int,
) -> None:
    """The pruned model still runs, gives the same number of classes, lost channels, and
    every pruned layer width is a multiple of ``round_to``."""
    import torch

    from edgebench.compress.stats import layer_widths

    with torch.no_grad():
        out = model(example_input)
    if tuple(out.shape) != (example_input.shape[0], n_classes):
        raise EdgebenchError(
            f"prune: the pruned model returns {tuple(out.shape)}, expected {(example_input.shape[0], n_classes)}"
        )
    if _out_width(classifier) != n_classes:
        raise EdgebenchError(
            f"prune: the classifier lost outputs ({_out_width(classifier)} of {n_classes}); this is a bug"
        )
    after = layer_widths(model)
    names = [n for n, _ in _prunable_layers(model, classifier)]
    total_b = sum(before[n] for n in names)
    total_a = sum(after[n] for n in names)
    if total_a >= total_b:
        raise EdgebenchError(
            f"prune: expected fewer channels after pruning ratio {spec.ratio}, found {total_a} of {total_b} "
            "(no prunable Conv/Linear layer outside the classifier?)"
        )
    removed = 1 - total_a / total_b
    if abs(removed - spec.ratio) > 0.15:
        log.warning(
            "structured pruning removed %.1f%% of channels for ratio %.1f%% (rounding, coupled or protected layers)",
            100 * removed,
            100 * spec.ratio,
        )
    if spec.round_to:
        bad = {n: after[n] for n in names if after[n] != before[n] and after[n] % spec.round_to}
        if bad:
            raise EdgebenchError(
                f"prune: expected pruned widths to be multiples of round_to={spec.round_to}, found {bad}"
            )


def _prune_unstructured(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    classifier: torch.nn.Module,
    train: tuple[np.ndarray, np.ndarray] | None,
    on_progress: ProgressFn | None,
) -> None:
    """Zero weights of every Conv/Linear but the classifier; masks stay active during fine-tuning
    and are made permanent (``torch.nn.utils.prune.remove``) after each step."""
    import torch
    from torch.nn.utils import prune as tprune

    from edgebench.compress import importance as imp

    layers: list[Any] = [m for _, m in _prunable_layers(model, classifier)]
    expect(bool(layers), "prune: expected at least one Conv/Linear layer besides the classifier, found none")
    zero0 = [int((m.weight.detach() == 0).sum()) for m in layers]
    nonzero0 = [m.weight.numel() - z for m, z in zip(layers, zero0)]
    gen = torch.Generator().manual_seed(spec.seed)
    for step in range(1, spec.iterative_steps + 1):
        frac = spec.ratio * step / spec.iterative_steps
        if spec.criterion in GRADIENT_CRITERIA:
            assert train is not None
            imp.accumulate_gradients(model, train, spec)
        scores = []
        for m in layers:
            s = imp.weight_scores(m, spec.criterion, gen).flatten().float()
            s[m.weight.detach().flatten() == 0] = -math.inf  # already pruned: stays pruned
            scores.append(s)
        masks = []
        if spec.global_pruning:
            k = sum(zero0) + round(frac * sum(nonzero0))
            flat = torch.cat(scores)
            drop = torch.zeros(flat.numel(), dtype=torch.bool)
            drop[torch.argsort(flat, stable=True)[:k]] = True
            for m, part in zip(layers, torch.split(drop, [s.numel() for s in scores])):
                masks.append((~part).reshape(m.weight.shape).float())
        else:
            for m, s, z, nz in zip(layers, scores, zero0, nonzero0):
                k = z + round(frac * nz)
                keep = torch.ones(s.numel())
                keep[torch.argsort(s, stable=True)[:k]] = 0
                masks.append(keep.reshape(m.weight.shape))
        model.zero_grad(set_to_none=True)
        for m, mask in zip(layers, masks):
            tprune.custom_from_mask(m, "weight", mask)
        zeros = sum(int((mk == 0).sum()) for mk in masks)
        total = sum(mk.numel() for mk in masks)
        _say(
            on_progress,
            f"unstructured {spec.criterion} step {step}/{spec.iterative_steps}: {zeros}/{total} prunable weights zero ({zeros / total:.1%})",
        )
        if train is not None and spec.finetune.epochs > 0:
            finetune(model, train, spec.finetune, on_progress)
        for m in layers:
            tprune.remove(m, "weight")
    model.eval()
    with torch.no_grad():
        model(example_input)
