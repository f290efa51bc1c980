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

Zoo models Torch-Pruning cannot fully follow (channel shuffles, window attention, attention that
reshapes by fixed widths) are still pruned: :func:`prune_with_report` leaves the groups it cannot
trace, rank or cut whole (:mod:`edgebench.compress.tp_guard`), retries without the groups whose
cut breaks the forward pass, stops at ``trace_timeout_s``, and reports in a :class:`PruneOutcome`
the parameter and MAC ratios reached and every layer left whole with its reason.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import time
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
LAYER_KINDS = ("all", "conv")  # prune.layers: which Conv/Linear layers a recipe may cut
GRADIENT_CRITERIA = ("taylor", "gap")

__all__ = [
    "CRITERIA",
    "FinetuneSpec",
    "PruneOutcome",
    "PruneSpec",
    "find_classifier",
    "parse_prune_spec",
    "prune",
    "prune_series",
    "prune_with_report",
]

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
    gap_train_mode: GAP's scores as its authors compute them: the loss gradient summed with the
    model in train mode (BatchNorm on batch statistics; its running statistics are restored
    after), not eval mode. Set ``gap_samples`` to the training split's size for their "over the
    training set".
    layers: all (every Conv/Linear but the classifier) or conv (Conv layers only; Linear layers
    are left whole and listed with that reason: Merkle et al.'s structured variants).
    seed: random criterion, PGD start and sample choice.
    trace_timeout_s: seconds Torch-Pruning may spend on the model in all (tracing its
    dependency graph, retries, cutting); past it the call fails with one line. Enforced with
    SIGALRM on the main thread only; elsewhere no limit applies.
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
    gap_train_mode: bool = False
    taylor_samples: int = 256
    layers: str = "all"
    seed: int = 0
    trace_timeout_s: float = 120.0

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
        expect(
            isinstance(self.gap_train_mode, bool),
            f"prune.gap_train_mode: expected true or false, found {self.gap_train_mode!r}",
        )
        expect(
            self.layers in LAYER_KINDS,
            f"prune.layers: expected one of {', '.join(LAYER_KINDS)}, found {self.layers!r}",
        )
        expect(is_int(self.seed), f"prune.seed: expected an integer, found {self.seed!r}")
        expect(
            is_number(self.trace_timeout_s) and self.trace_timeout_s > 0 and math.isfinite(self.trace_timeout_s),
            f"prune.trace_timeout_s: expected a number of seconds > 0, found {self.trace_timeout_s!r}",
        )
        object.__setattr__(self, "ratio", float(self.ratio))
        object.__setattr__(self, "trace_timeout_s", float(self.trace_timeout_s))  # YAML's 0 and 0.0 are one recipe

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


@dataclass
class PruneOutcome:
    """What :func:`prune_with_report` did: the pruned module and what it measurably lost.

    param_ratio / mac_ratio: the fraction of parameters / Conv+Linear MACs actually removed
    (``1 - after / before``; ``mac_ratio`` None when MACs could not be counted); this is what
    the recipe's ``ratio`` reached, which differs from it where layers stayed whole.
    layers_left: ``(layer name, reason)`` for every Conv/Linear layer whose output width did not
    change (the classifier always among them). trace_seconds: time spent building Torch-Pruning's
    dependency graph (all attempts); attempts: how many times it was built (a failing group is
    left whole and the model pruned again). unpruned_reason: set when nothing could be pruned
    and ``module`` is an unpruned copy.
    """

    module: Any
    params_before: int
    params_after: int
    nonzero_params_before: int
    nonzero_params_after: int
    macs_before: int | None
    macs_after: int | None
    param_ratio: float
    mac_ratio: float | None
    layers_left: list[tuple[str, str]]
    trace_seconds: float
    attempts: int
    unpruned_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of everything but the module (for the candidate manifest)."""
        return {
            "params_before": self.params_before,
            "params_after": self.params_after,
            "nonzero_params_before": self.nonzero_params_before,
            "nonzero_params_after": self.nonzero_params_after,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "param_ratio": self.param_ratio,
            "mac_ratio": self.mac_ratio,
            "layers_left": [{"layer": n, "reason": r} for n, r in self.layers_left],
            "trace_seconds": self.trace_seconds,
            "attempts": self.attempts,
            "unpruned_reason": self.unpruned_reason,
        }


def prune(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    on_progress: ProgressFn | None = None,
    device: torch.device | str | None = None,
) -> torch.nn.Module:
    """Return a pruned deep copy of *model* (eval mode, CPU); *model* itself is untouched.

    :func:`prune_with_report` without the report; raises :class:`EdgebenchError` where nothing
    could be pruned (rather than hand back an unpruned model).
    """
    outcome = prune_with_report(model, spec, example_input, train, on_progress, device)
    if outcome.unpruned_reason is not None:
        raise EdgebenchError(f"prune: {outcome.unpruned_reason}")
    module: torch.nn.Module = outcome.module
    return module


def prune_with_report(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    on_progress: ProgressFn | None = None,
    device: torch.device | str | None = None,
) -> PruneOutcome:
    """Prune a deep copy of *model* (eval mode, CPU; *model* itself is untouched) and report
    what was reached: a :class:`PruneOutcome`. Tracing and cutting run on the CPU; fine-tuning
    and the gradient criteria's passes on *device* (the study's ``host.device``; default CPU).

    Fine-tunes on *train* (x float32 NCHW in [0, 1], y int64) after each step when given and
    ``spec.finetune.epochs > 0``. taylor and gap need *train* (gradients on its samples).
    *on_progress* gets one human-readable line per stage. The caller's torch RNG state is kept.

    Structured pruning never ends in a Torch-Pruning traceback: a group it cannot trace, rank
    or cut, or whose cut breaks the forward pass, is left whole (listed in ``layers_left``) and
    the rest pruned; only tracing that fails outright, or runs past ``spec.trace_timeout_s``,
    raises :class:`EdgebenchError` (one line). If no group at all can be cut, the outcome holds
    an unpruned copy and says why in ``unpruned_reason``.
    """
    import torch

    from edgebench.compress.stats import count_nonzero_params, count_params

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
    base = copy.deepcopy(model).cpu().eval()
    shape = (1, *example_input.shape[1:])
    params0, nonzero0, macs0 = count_params(base), count_nonzero_params(base), _macs(base, shape)
    layers_left: list[tuple[str, str]] = []
    trace_s, attempts, unpruned = 0.0, 0, None
    if spec.ratio == 0:
        pruned = base
    else:
        classifier = find_classifier(base, example_input)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            if spec.structured:
                pruned, layers_left, trace_s, attempts, unpruned = _prune_structured(
                    base, spec, example_input, classifier, train, on_progress, device
                )
            else:
                pruned = base
                _prune_unstructured(pruned, spec, example_input, classifier, train, on_progress, device)
                cls_name = _name_of(pruned, classifier)
                layers_left = [(cls_name, _CLASSIFIER_REASON)] + [
                    (n, _CONV_ONLY_REASON) for n in _linear_layers(pruned) if spec.layers == "conv" and n != cls_name
                ]
        pruned.zero_grad(set_to_none=True)
    pruned.eval()
    params1, macs1 = count_params(pruned), _macs(pruned, shape)
    return PruneOutcome(
        module=pruned,
        params_before=params0,
        params_after=params1,
        nonzero_params_before=nonzero0,
        nonzero_params_after=count_nonzero_params(pruned),
        macs_before=macs0,
        macs_after=macs1,
        param_ratio=1 - params1 / params0 if params0 else 0.0,
        mac_ratio=1 - macs1 / macs0 if macs0 and macs1 is not None else None,
        layers_left=layers_left,
        trace_seconds=round(trace_s, 3),
        attempts=attempts,
        unpruned_reason=unpruned,
    )


_CLASSIFIER_REASON = "the classifier (its outputs are the classes)"
MAX_ATTEMPTS = 12


def _macs(model: torch.nn.Module, shape: tuple[int, ...]) -> int | None:
    from edgebench.compress.stats import count_macs

    try:
        return count_macs(model, shape)
    except Exception as exc:  # noqa: BLE001 - a count is optional; reported as unmeasured
        log.info("could not count MACs: %s", exc)
        return None


def _name_of(model: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


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


def _prunable_layers(
    model: torch.nn.Module, classifier: torch.nn.Module, layers: str = "all"
) -> list[tuple[str, torch.nn.Module]]:
    """The Conv/Linear layers a recipe may cut: all but the classifier, or (``layers: conv``)
    the Conv layers only."""
    from torch import nn

    kinds: tuple[type[nn.Module], ...] = (
        (nn.modules.conv._ConvNd,) if layers == "conv" else (nn.modules.conv._ConvNd, nn.Linear)
    )
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and m is not classifier]


_CONV_ONLY_REASON = "prune.layers: conv (Linear layers are left whole)"


def _linear_layers(model: torch.nn.Module) -> list[str]:
    from torch import nn

    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def _prune_structured(
    model: torch.nn.Module,
    spec: PruneSpec,
    example_input: torch.Tensor,
    classifier: torch.nn.Module,
    train: tuple[np.ndarray, np.ndarray] | None,
    on_progress: ProgressFn | None,
    device: torch.device | str | None = None,
) -> tuple[torch.nn.Module, list[tuple[str, str]], float, int, str | None]:
    """Prune a copy of *model* (left untouched: every attempt starts from it).

    An attempt traces the model and cuts every group Torch-Pruning can; a group that fails to
    rank, build or cut, or whose cut breaks the forward pass (the groups that touched the
    failing module, and every module of its class), is blocked by name and the next attempt
    starts over without it. Returns (pruned module, layers left with reasons, tracing seconds,
    attempts, reason when nothing could be pruned)."""
    import torch

    from edgebench.compress import tp_guard as guard
    from edgebench.compress.stats import layer_widths

    before = layer_widths(model)
    inputs = guard.input_profile(model, example_input)  # to tell a block fed a narrower input
    n_classes = _out_width(classifier)
    cls_name = _name_of(model, classifier)
    # layer name -> why it is left whole (carried across attempts); layers: conv blocks every Linear
    blocked: dict[str, str] = {
        n: _CONV_ONLY_REASON for n in (_linear_layers(model) if spec.layers == "conv" else []) if n != cls_name
    }
    budget = guard.TimeBudget(spec.trace_timeout_s)
    round_to = spec.round_to
    heads = [m.num_heads for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    if round_to is None and heads:  # nn.MultiheadAttention needs embed_dim % num_heads == 0
        round_to = math.lcm(*heads)
        _say(on_progress, f"structured: channel counts rounded to multiples of {round_to} (attention heads)")
    trace_s = 0.0
    last_failure = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        work = copy.deepcopy(model)
        mods = dict(work.named_modules())
        names = {id(m): n for n, m in mods.items()}
        state = guard.GuardState()
        ignored = [mods[cls_name]] + [mods[n] for n in blocked if n in mods]
        t0 = time.perf_counter()
        pruner = _guarded(
            budget,
            state,
            spec,
            model,
            functools.partial(
                guard.GuardedPruner,
                work,
                example_input,
                importance=_importance(spec),
                pruning_ratio=spec.ratio,
                iterative_steps=spec.iterative_steps,
                ignored_layers=ignored,
                round_to=round_to,
                global_pruning=spec.global_pruning,
                num_heads=guard.attention_heads(work),
                guard_state=state,
            ),
            "trace",
        )
        trace_s += time.perf_counter() - t0
        failure: tuple[list[str], str] | None = None
        for step in range(spec.iterative_steps):
            if spec.criterion in GRADIENT_CRITERIA:
                assert train is not None
                from edgebench.compress import importance as imp

                imp.accumulate_gradients(work, train, spec, device=device)
            touched: list[tuple[list[str], set[str]]] = []
            failure = _guarded(
                budget,
                state,
                spec,
                model,
                functools.partial(_cut_step, work, pruner, state, names, touched, example_input, inputs),
                "cut",
            )
            work.zero_grad(set_to_none=True)
            if failure is not None:
                break
            # the layers the recipe may cut: not the classifier, not those left whole (layers: conv)
            cuttable = {k: v for k, v in before.items() if k != cls_name and k not in blocked}
            _say(
                on_progress,
                f"structured {spec.criterion} step {step + 1}/{spec.iterative_steps}: "
                f"{_width_summary(cuttable, layer_widths(work))}",
            )
            if train is not None and spec.finetune.epochs > 0:
                finetune(work, train, spec.finetune, on_progress, device)
        if failure is None:
            work.eval()
            left = _layers_left(work, before, cls_name, blocked, state, names, set(pruner.DG.module2node))
            after = layer_widths(work)
            prunable = [n for n in before if n != cls_name]
            if sum(after[n] for n in prunable) >= sum(before[n] for n in prunable):
                reasons = sorted({r for n, r in left if n != cls_name})
                why = "; ".join(reasons[:3]) or "no prunable Conv/Linear layer outside the classifier"
                return (
                    model,
                    left,
                    trace_s,
                    attempt,
                    f"Torch-Pruning could not cut any layer of {type(model).__name__}: {why}",
                )
            _verify_structured(work, spec, example_input, mods[cls_name], before, n_classes)
            return work, left, trace_s, attempt, None
        to_block, reason = failure
        last_failure = reason
        if not to_block:
            break
        for n in to_block:
            blocked.setdefault(n, reason)
        _say(
            on_progress,
            f"structured pruning attempt {attempt}: left {', '.join(to_block[:4])}{' ...' if len(to_block) > 4 else ''} whole ({reason}); pruning again",
        )
    reason = f"Torch-Pruning could not prune {type(model).__name__} after {attempt} attempts ({last_failure})"
    left = [(n, blocked.get(n, last_failure)) for n in before]
    return model, left, trace_s, attempt, reason


def _importance(spec: PruneSpec) -> Any:
    from edgebench.compress import importance as imp

    return imp.structured_importance(spec)


def _guarded(budget: Any, state: Any, spec: PruneSpec, model: torch.nn.Module, fn: Callable[[], Any], what: str) -> Any:
    """Run Torch-Pruning work under the time budget and the guards; its failures become one
    line (tracing) or are returned by *fn* (cutting)."""
    import warnings

    from edgebench.compress import tp_guard as guard

    try:
        with budget.section(), guard.guarded(state), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Torch-Pruning warns about every unwrapped parameter
            return fn()
    except guard.TimeLimitExceeded:
        raise EdgebenchError(
            f"prune: Torch-Pruning did not finish with {type(model).__name__} within trace_timeout_s={spec.trace_timeout_s:g} s "
            "(raise prune.trace_timeout_s, or use a smaller example input)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - RecursionError included: one line, never a traceback
        raise EdgebenchError(
            f"prune: Torch-Pruning could not {'trace' if what == 'trace' else 'prune'} {type(model).__name__}: {guard.one_line(exc)}"
        ) from None


def _cut_step(
    work: torch.nn.Module,
    pruner: Any,
    state: Any,
    names: dict[int, str],
    touched: list[tuple[list[str], set[str]]],
    example_input: torch.Tensor,
    inputs: dict[str, tuple[tuple[int, ...], str | None]],
) -> tuple[list[str], str] | None:
    """One pruning step, group by group; then the pruned model must run. Returns None, or the
    layers to leave whole next attempt and why."""
    from edgebench.compress import tp_guard as guard

    groups = pruner.step(interactive=True)
    while True:
        try:
            group = next(groups)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - blame the group being built
            return [
                names[id(m)] for m in state.current if id(m) in names
            ], f"Torch-Pruning failed on its group ({guard.one_line(exc, 100)})"
        outs = [names[id(m)] for m in guard.out_modules(pruner.DG, group) if id(m) in names]
        try:
            group.prune()
        except Exception as exc:  # noqa: BLE001 - this group is left whole next attempt
            return outs, f"Torch-Pruning could not cut it ({guard.one_line(exc, 100)})"
        touched.append((outs, {names[id(m)] for m in guard.group_modules(group) if id(m) in names}))
    guard.fix_attention(work)
    failed = guard.failing_module(work, example_input)
    if failed is None:
        return None
    path, err = failed.path, failed.error
    mods = dict(work.named_modules())
    kind = type(mods[path])
    was = inputs.get(path, (None, None))[0]
    hits: list[list[str]] = []
    if failed.producer is not None and was is not None and failed.input_shape not in (None, was):
        # fed a narrower input than before (its code reads its weights as they were built): blame
        # the cuts that narrowed the producers of this and every block of its class
        producers = {inputs[n][1] for n, m in mods.items() if type(m) is kind and n in inputs} | {failed.producer}
        hits = [outs for outs, seen in touched if producers & seen]
    if not hits:
        if not path:
            prefixes = [""]
        elif next(mods[path].children(), None) is None:  # a leaf (a Conv fed the wrong width): its block
            prefixes = [path.rpartition(".")[0]]
        else:  # a block's own code failed: every block of its class runs the same code
            prefixes = [n for n, m in mods.items() if type(m) is kind]
        while True:
            hits = [outs for outs, seen in touched if any(_under(s, p) for s in seen for p in prefixes)]
            if hits or "" in prefixes:
                break
            prefixes = sorted({p.rpartition(".")[0] for p in prefixes})  # widen to the parents
    to_block = sorted({n for outs in hits for n in outs})
    return to_block, f"cutting it breaks {kind.__name__}.forward ({guard.one_line(err, 100)})"


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _layers_left(
    work: torch.nn.Module,
    before: dict[str, int],
    cls_name: str,
    blocked: dict[str, str],
    state: Any,
    names: dict[int, str],
    traced: set[Any],
) -> list[tuple[str, str]]:
    """(name, reason) for every Conv/Linear layer whose output width did not change."""
    from edgebench.compress.stats import layer_widths

    after = layer_widths(work)
    left_by_name = {names[id(m)]: r for m, r in state.left.items() if id(m) in names}
    traced_names = {names[id(m)] for m in traced if id(m) in names}
    out = []
    for n, w in before.items():
        if after.get(n) != w:
            continue
        if n == cls_name:
            reason = _CLASSIFIER_REASON
        elif n in blocked:
            reason = blocked[n]
        elif n in left_by_name:
            reason = left_by_name[n]
        elif n not in traced_names:
            reason = "not in Torch-Pruning's traced graph (its weight is used outside its forward, or it did not run)"
        else:
            reason = (
                "Torch-Pruning chose no cut in its group (too few channels at this ratio, or its group was skipped)"
            )
        out.append((n, reason))
    return out


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
    names = [n for n, _ in _prunable_layers(model, classifier, spec.layers)]
    total_b = sum(before[n] for n in names)
    total_a = sum(after[n] for n in names)
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
    device: torch.device | str | None = None,
) -> None:
    """Zero weights of every Conv/Linear but the classifier; masks stay active during fine-tuning
    and are made permanent (``torch.nn.utils.prune.remove``) after each step."""
    import torch
    from torch.nn.utils import prune as tprune

    from edgebench.compress import importance as imp

    layers: list[Any] = [m for _, m in _prunable_layers(model, classifier, spec.layers)]
    expect(
        bool(layers),
        f"prune: expected at least one {'Conv' if spec.layers == 'conv' else 'Conv/Linear'} layer besides the classifier, found none",
    )
    zero0 = [int((m.weight.detach() == 0).sum()) for m in layers]
    nonzero0 = [m.weight.numel() - z for m, z in zip(layers, zero0)]
    gen = torch.Generator().manual_seed(spec.seed)
    for step in range(1, spec.iterative_steps + 1):
        frac = spec.ratio * step / spec.iterative_steps
        if spec.criterion in GRADIENT_CRITERIA:
            assert train is not None
            imp.accumulate_gradients(model, train, spec, device=device)
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
            finetune(model, train, spec.finetune, on_progress, device)
        for m in layers:
            tprune.remove(m, "weight")
    model.eval()
    with torch.no_grad():
        model(example_input)
