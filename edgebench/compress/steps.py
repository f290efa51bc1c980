"""The compression-step registry: what a candidate's recipe can ask for, and how each is applied.

A step acts on one of two things, and that decides where the build applies it:

* ``module`` steps rewrite the fp32 PyTorch module before export (``prune``); they need the model
  in PyTorch, and chain through a candidate's ``parent``;
* ``graph`` steps rewrite the exported (or the user's own) ONNX graph (``quantize``), in
  registry order, each from the previous step's file; ``precision`` is what the artifact becomes.

Adding a step is one entry in :data:`STEPS` (and its spec field on the study's
``CandidateConfig``): the build (:mod:`edgebench.study.build`) finds it here, applies it where
its ``acts_on`` says, and puts the record it returns in the candidate's manifest under its key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModuleInputs:
    """What a module step may use: a real example input, the training split (or None), and the
    device its training passes run on (the study's ``host.device``, resolved; None: the CPU)."""

    example: Any  # torch.Tensor (1, C, H, W)
    train: tuple[np.ndarray, np.ndarray] | None
    on_status: Callable[[str], None]
    device: Any = None  # torch.device


@dataclass(frozen=True)
class GraphInputs:
    """What a graph step may use: calibration images and the evaluation split (disjoint)."""

    calib_x: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    on_status: Callable[[str], None]


ModuleFn = Callable[[Any, Any, ModuleInputs], "tuple[torch.nn.Module, dict | None]"]
GraphFn = Callable[[Path, Path, Any, GraphInputs], "dict | None"]


@dataclass(frozen=True)
class CompressionStep:
    """One kind of compression a candidate can ask for (its ``key`` on the candidate)."""

    key: str
    acts_on: Literal["module", "graph"]
    describe: Callable[[Any], str]  # one line for progress: what this spec does
    apply_module: ModuleFn | None = None  # module steps: (module, spec, inputs) -> (module, record)
    apply_graph: GraphFn | None = None  # graph steps: (src onnx, out onnx, spec, inputs) -> record
    precision: str | None = None  # graph steps: the artifact's precision afterwards


def _prune(module: Any, spec: Any, inputs: ModuleInputs) -> tuple[Any, dict | None]:
    """Structured or unstructured pruning; the record is what was reached (params and MACs
    removed, layers left whole and why: :class:`edgebench.compress.prune.PruneOutcome`)."""
    from edgebench.compress.prune import prune_with_report

    outcome = prune_with_report(
        module, spec, inputs.example, train=inputs.train, on_progress=inputs.on_status, device=inputs.device
    )
    return outcome.module.eval(), outcome.to_dict()


def _quantize(src: Path, out: Path, spec: Any, inputs: GraphInputs) -> dict | None:
    """Static INT8 with ONNX Runtime; with ``max_accuracy_drop``, accuracy control (the nodes kept
    in float and each step's accuracy and latency are the record)."""
    from edgebench.compress.quantize import quantize_static

    if spec.max_accuracy_drop is None:
        quantize_static(src, out, inputs.calib_x[: spec.calib_samples], spec)
        return None
    from edgebench.compress.accuracy_control import quantize_with_accuracy_control

    record = quantize_with_accuracy_control(src, out, inputs.calib_x, spec, inputs.eval_x, inputs.eval_y).to_dict()
    kept = ", ".join(n["name"] for n in record.get("kept_float") or []) or "none"
    inputs.on_status(
        f"accuracy control: drop {record['accuracy_drop']:.4f} ({'met' if record['met'] else 'NOT met'}); "
        f"kept in float: {kept}"
    )
    return record


STEPS: dict[str, CompressionStep] = {
    step.key: step
    for step in (
        CompressionStep(
            "prune",
            "module",
            describe=lambda s: f"pruning ({s.criterion}, ratio {s.ratio})",
            apply_module=_prune,
        ),
        CompressionStep(
            "quantize",
            "graph",
            describe=lambda s: f"int8 calibration on {s.calib_samples} held-out images ({s.calibration})",
            apply_graph=_quantize,
            precision="int8",
        ),
    )
}


def steps_of(candidate: Any, acts_on: str | None = None) -> list[CompressionStep]:
    """The registered steps *candidate* asks for (its field for the step is set), in registry
    order; only those acting on *acts_on* when given."""
    return [
        s
        for s in STEPS.values()
        if getattr(candidate, s.key, None) is not None and (acts_on is None or s.acts_on == acts_on)
    ]


__all__ = ["STEPS", "CompressionStep", "GraphInputs", "ModuleInputs", "steps_of"]
