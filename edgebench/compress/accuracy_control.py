"""INT8 with accuracy control: the nodes whose quantization hurts most go back to float, one
group per step, until the clean accuracy drop on the evaluation images fits a budget (what
NNCF's ``quantize_with_accuracy_control`` and Polygraphy's ``debug precision`` do).

1. Quantize everything (:func:`~edgebench.compress.quantize.quantize_static`); measure fp32 and
   INT8 top-1 accuracy on the evaluation images (disjoint from calibration). Within the budget:
   done.
2. Rank the quantized nodes by their own quantization error: each node of the QDQ graph is run
   alone, with the exact QDQ arithmetic its graph specifies (its input Q/DQ pairs, dequantized
   weights, output Q/DQ pair), on the fp32 model's values of its inputs, on the calibration
   images; its SQNR against the fp32 model's value of its output is the rank (lowest first).
   Run alone, a node carries none of the error upstream layers pass on (which grows along the
   graph and would rank every late layer worst).
3. Step by step, put the next ranked node's *group* back to float and quantize again (the same
   calibration images, ``nodes_to_exclude``), until the drop fits or ``max_float_groups`` groups
   are in float. A group is the node plus the nodes that quantize its inputs: in ONNX Runtime's
   QDQ format an activation's Q/DQ pair is inserted by its producer (output) and by each
   consumer (input), so a node reading a tensor with an outlier channel computes on float data
   only when the layer that produces it (through Relu, pooling, reshapes: ops that follow their
   input's quantization) and every other reader of it are excluded too.

The artifact at *out_path* is the first step that meets the budget; when none does, the most
accurate step (the earliest among equals), and the result says why (``met`` false,
``reason``): never an exception. Accuracy runs in ONNX Runtime on this host's CPU kernels
(``ort-cpu``) or as the exact QDQ arithmetic (``tensorrt``: this host's kernels are not the
engine that runs it). ``latency_ms`` is indicative only: the median of a few batch-1 runs on one
thread, measured in this process, beside the other steps; it is not a device measurement.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.compress.quantize import QuantSpec, preprocess, quantize_static
from edgebench.errors import expect
from edgebench.util import onnx_file
from edgebench.util.checks import is_int

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# ONNX Runtime's QDQ quantizer quantizes these only where their input already is quantized
# (Relu/Clip, MaxPool and the data-movement ops): they follow a neighbour and need no exclusion
TRANSPARENT_OPS = frozenset(
    {
        "Relu",
        "Clip",
        "MaxPool",
        "AveragePool",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Resize",
        "Slice",
        "TopK",
        "Split",
        "Gather",
        "GatherElements",
    }
)
_QDQ = ("QuantizeLinear", "DequantizeLinear")
RANK_IMAGES = 64  # calibration images the ranking runs on
RANK_BATCH = 16  # ... this many at a time
LATENCY_RUNS = 15  # timed batch-1 runs per step (after 3 warm-up runs)

__all__ = [
    "AccuracyControlResult",
    "FloatNode",
    "AccuracyStep",
    "RankedNode",
    "quantize_with_accuracy_control",
    "rank_nodes",
]


@dataclass(frozen=True)
class FloatNode:
    """A node kept in float: its name in the preprocessed model and its op type."""

    name: str
    op_type: str


@dataclass(frozen=True)
class RankedNode:
    """A quantized node, its own quantization error and the group that puts it back to float."""

    name: str
    op_type: str
    sqnr_db: float | None  # None: infinite (the node's QDQ output equals fp32)
    group: tuple[str, ...]


@dataclass(frozen=True)
class AccuracyStep:
    """One quantization tried: step 0 is plain INT8, step k has k groups in float."""

    step: int
    added: list[FloatNode]  # the group this step put back to float
    kept_float: list[FloatNode]  # every node in float at this step, in graph order
    accuracy: float
    accuracy_drop: float  # fp32 accuracy minus this step's
    latency_ms: float  # indicative: median of batch-1 runs, ORT CPU, one thread, this process


@dataclass(frozen=True)
class AccuracyControlResult:
    """What :func:`quantize_with_accuracy_control` did; :meth:`to_dict` for the manifest."""

    max_accuracy_drop: float
    max_float_groups: int
    fp32_accuracy: float
    fp32_latency_ms: float
    accuracy: float  # the chosen step's (the artifact written)
    accuracy_drop: float
    met: bool
    reason: str | None  # why the budget was not met; None when met
    chosen_step: int
    kept_float: list[FloatNode]
    steps: list[AccuracyStep]
    ranking: list[RankedNode] = field(default_factory=list)  # empty when plain INT8 met the budget
    eval_count: int = 0
    accuracy_engine: str = "onnxruntime-cpu"  # or "qdq-reference" (the exact QDQ arithmetic)
    latency_note: str = "indicative: median of batch-1 runs, ONNX Runtime CPU, one thread, measured during the build"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for r in out["ranking"]:
            r["group"] = list(r["group"])
        return out


def _validate(calib_x: np.ndarray, spec: QuantSpec, eval_x: np.ndarray, eval_y: np.ndarray) -> None:
    expect(isinstance(spec, QuantSpec), f"accuracy control: expected a QuantSpec, found {type(spec).__name__}")
    expect(
        spec.max_accuracy_drop is not None,
        "accuracy control: expected quantize.max_accuracy_drop in the recipe, found none (plain INT8: quantize_static)",
    )
    expect(
        isinstance(eval_x, np.ndarray) and eval_x.dtype == np.float32 and eval_x.ndim >= 2 and len(eval_x) > 0,
        f"accuracy control: expected evaluation images as a non-empty float32 array, found {getattr(eval_x, 'dtype', type(eval_x).__name__)} {getattr(eval_x, 'shape', '')}",
    )
    expect(
        isinstance(eval_y, np.ndarray) and eval_y.ndim == 1 and len(eval_y) == len(eval_x) and is_int(eval_y.flat[0]),
        f"accuracy control: expected one integer label per evaluation image ({len(eval_x)}), found {getattr(eval_y, 'shape', type(eval_y).__name__)}",
    )
    expect(
        isinstance(calib_x, np.ndarray) and calib_x.shape[1:] == eval_x.shape[1:],
        f"accuracy control: expected calibration and evaluation images of one shape, found {getattr(calib_x, 'shape', None)} and {eval_x.shape}",
    )


def quantize_with_accuracy_control(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calib_x: np.ndarray,
    spec: QuantSpec,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
) -> AccuracyControlResult:
    """INT8 of *fp32_onnx* at *out_path* with at most ``spec.max_accuracy_drop`` clean top-1
    accuracy lost on (*eval_x*, *eval_y*), keeping at most ``spec.max_float_groups`` groups of
    nodes in float (see the module docstring). *calib_x* calibrates every step (its first
    ``spec.calib_samples``, as :func:`quantize_static`) and ranks the nodes; it must be disjoint
    from *eval_x*. A budget not met is in the result (``met``, ``reason``), not raised."""
    from edgebench.export.onnx import ort_logits

    _validate(calib_x, spec, eval_x, eval_y)
    assert spec.max_accuracy_drop is not None
    budget = spec.max_accuracy_drop

    def fits(drop: float) -> bool:  # accuracies are k / n, and 0.97 - 0.96 > 0.01 in floats
        return drop <= budget + 1e-9

    src, out = Path(fp32_onnx), Path(out_path)
    exact = spec.preset == "tensorrt"

    def accuracy(path: Path) -> float:
        return float(np.mean(ort_logits(path, eval_x, reference=exact).argmax(1) == eval_y))

    fp32_acc = float(np.mean(ort_logits(src, eval_x).argmax(1) == eval_y))
    fp32_lat = _latency_ms(src, eval_x[:1])
    with tempfile.TemporaryDirectory(prefix="edgebench-int8ac-") as tmp_dir:
        tmp = Path(tmp_dir)
        paths = [quantize_static(src, tmp / "step0.onnx", calib_x, spec)]
        acc = accuracy(paths[0])
        steps = [AccuracyStep(0, [], [], acc, fp32_acc - acc, _latency_ms(paths[0], eval_x[:1]))]
        log.info("accuracy control: fp32 %.4f, int8 %.4f (budget %.4f)", fp32_acc, acc, budget)
        ranking: list[RankedNode] = []
        reason: str | None = None
        if not fits(fp32_acc - acc):
            pre = preprocess(src, tmp / "preprocessed.onnx")
            ranking = rank_nodes(pre, paths[0], calib_x[: min(RANK_IMAGES, spec.calib_samples)])
            ops = _op_types(pre)
            order = {n: i for i, n in enumerate(ops)}
            ranked = {r.name for r in ranking}
            kept: list[str] = []
            for r in ranking:
                if len(steps) > spec.max_float_groups:
                    reason = (
                        f"accuracy drop {steps[-1].accuracy_drop:.4f} > max_accuracy_drop {budget} with "
                        f"{spec.max_float_groups} group{'s' if spec.max_float_groups > 1 else ''} ({len(kept)} nodes) in float, as many as "
                        f"max_float_groups={spec.max_float_groups} allows"
                    )
                    break
                added = [n for n in r.group if n not in kept]
                if not added:
                    continue
                if ranked <= set(kept) | set(added):
                    reason = (
                        f"accuracy drop {steps[-1].accuracy_drop:.4f} > max_accuracy_drop {budget} with "
                        f"{len(kept)} nodes in float; the next group ({', '.join(added)}) would leave no node quantized"
                    )
                    break
                kept = sorted(set(kept) | set(added), key=order.__getitem__)
                k = len(steps)
                paths.append(quantize_static(src, tmp / f"step{k}.onnx", calib_x, spec, nodes_to_exclude=kept))
                acc = accuracy(paths[-1])
                steps.append(
                    AccuracyStep(
                        k,
                        [FloatNode(n, ops[n]) for n in sorted(added, key=order.__getitem__)],
                        [FloatNode(n, ops[n]) for n in kept],
                        acc,
                        fp32_acc - acc,
                        _latency_ms(paths[-1], eval_x[:1]),
                    )
                )
                log.info("accuracy control step %d: %s in float, int8 %.4f", k, ", ".join(added), acc)
                if fits(fp32_acc - acc):
                    break
            else:
                reason = (
                    f"accuracy drop {steps[-1].accuracy_drop:.4f} > max_accuracy_drop {budget} with every "
                    f"ranked group ({len(kept)} nodes) in float"
                )
        met = fits(steps[-1].accuracy_drop)
        if met:
            reason, chosen = None, steps[-1]
        else:  # the most accurate step; the earliest (fewest nodes in float) among equals
            chosen = max(steps, key=lambda s: (s.accuracy, -s.step))
        onnx_file.copy(paths[chosen.step], out)
    return AccuracyControlResult(
        max_accuracy_drop=budget,
        max_float_groups=spec.max_float_groups,
        fp32_accuracy=fp32_acc,
        fp32_latency_ms=fp32_lat,
        accuracy=chosen.accuracy,
        accuracy_drop=chosen.accuracy_drop,
        met=met,
        reason=reason,
        chosen_step=chosen.step,
        kept_float=chosen.kept_float,
        steps=steps,
        ranking=ranking,
        eval_count=int(len(eval_x)),
        accuracy_engine="qdq-reference" if exact else "onnxruntime-cpu",
    )


def rank_nodes(fp32_pre: str | Path, qdq: str | Path, x: np.ndarray) -> list[RankedNode]:
    """The quantized nodes of the QDQ model *qdq*, worst first: each run alone on the values its
    inputs have in *fp32_pre* (the preprocessed fp32 model *qdq* was quantized from) on *x*, its
    output compared with the fp32 one (SQNR, dB). Nodes ONNX Runtime quantizes only after their
    input (:data:`TRANSPARENT_OPS`) are not ranked; their error shows at the next ranked node."""
    import onnx

    from edgebench.robustness.int8_error import run_tensors, with_outputs

    fp32_pre = Path(fp32_pre)
    qm = onnx.load(str(qdq))
    pm = onnx.load(str(fp32_pre))
    fp_tensors = {i.name for i in pm.graph.input} | {o for n in pm.graph.node for o in n.output}
    pre_nodes = {n.name for n in pm.graph.node}
    producer = {o: n for n in qm.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in qm.graph.node:
        for i in n.input:
            consumers[i].append(n)
    inits = {i.name for i in qm.graph.initializer} | {i.name for i in pm.graph.initializer}

    plans: list[tuple[onnx.NodeProto, list[str], list[str], list[str]]] = []  # node, feeds, outputs, refs
    for n in qm.graph.node:
        if n.op_type in _QDQ or n.op_type in TRANSPARENT_OPS or not n.name or n.name not in pre_nodes:
            continue
        dq_in = [producer[i] for i in n.input if i in producer and producer[i].op_type == "DequantizeLinear"]
        if not dq_in:
            continue
        feeds: list[str] = []
        for i in n.input:
            p = producer.get(i)
            if p is not None and p.op_type == "DequantizeLinear":
                q = producer.get(p.input[0])
                if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in feeds:
                    feeds.append(q.input[0])  # an activation, quantized in the graph
            elif i and i not in inits and i not in feeds:
                feeds.append(i)  # a float activation
        outs, refs = [], []
        for o in n.output:
            q = next((c for c in consumers[o] if c.op_type == "QuantizeLinear"), None)
            dq = (
                None
                if q is None
                else next((c for c in consumers[q.output[0]] if c.op_type == "DequantizeLinear"), None)
            )
            outs.append(o if dq is None else dq.output[0])
            # a graph output keeps its name on its DequantizeLinear (the node's own output is renamed)
            refs.append(o if o in fp_tensors or dq is None else dq.output[0])
        if all(t in fp_tensors for t in feeds + refs):
            plans.append((n, feeds, outs, refs))
        else:
            log.debug("accuracy control: %s not ranked (its tensors are not in the fp32 model)", n.name)
    graph_inputs = {i.name for i in pm.graph.input} - inits
    needed = sorted({t for _, feeds, _, refs in plans for t in feeds + refs} - graph_inputs)
    fp_model = with_outputs(fp32_pre, needed)
    subs = [_node_model(qm, producer, feeds, outs) for _, feeds, outs, _ in plans]
    # sum f^2 and sum (f - q)^2 per node output, over batches (a large model's activations for
    # every ranking image at once would not fit)
    signal: dict[tuple[int, str], float] = defaultdict(float)
    noise: dict[tuple[int, str], float] = defaultdict(float)
    for start in range(0, len(x), RANK_BATCH):
        xb = x[start : start + RANK_BATCH]
        fp = run_tensors(fp_model, needed, xb, optimize=False)
        fp.update({name: np.asarray(xb, dtype=np.float64) for name in graph_inputs})
        for k, (sub, (_, feeds, outs, refs)) in enumerate(zip(subs, plans)):
            q = run_tensors(sub, outs, {f: fp[f].astype(np.float32) for f in feeds}, optimize=False)
            for o, r in zip(outs, refs):
                signal[k, o] += float(np.sum(fp[r] ** 2))
                noise[k, o] += float(np.sum((fp[r] - q[o]) ** 2))
    groups = _Groups(pm)
    ranked: list[RankedNode] = []
    for k, (n, _, outs, _) in enumerate(plans):
        # SQNR in dB, as robustness.int8_error's; the node's worst output
        noisy = [10.0 * np.log10(max(signal[k, o], 1e-30) / noise[k, o]) for o in outs if noise[k, o] > 0]
        sqnr = float(min(noisy)) if noisy else None
        ranked.append(RankedNode(n.name, n.op_type, sqnr, groups.of(n.name)))
    ranked.sort(key=lambda r: np.inf if r.sqnr_db is None else r.sqnr_db)
    log.info("accuracy control ranking: %s", ", ".join(f"{r.name} {r.sqnr_db}" for r in ranked))
    return ranked


def _node_model(qm: onnx.ModelProto, producer: dict[str, onnx.NodeProto], feeds: list[str], outs: list[str]) -> bytes:
    """The part of *qm* that computes *outs* from *feeds* (a node with its Q/DQ pairs and
    dequantized weights), serialized."""
    from onnx import TensorProto, helper

    keep: set[int] = set()
    seen = set(feeds)
    stack = list(outs)
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        p = producer.get(t)
        if p is not None and id(p) not in keep:
            keep.add(id(p))
            stack.extend(i for i in p.input if i)
    nodes = [n for n in qm.graph.node if id(n) in keep]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes,
        "node",
        [helper.make_tensor_value_info(f, TensorProto.FLOAT, None) for f in feeds],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        [i for i in qm.graph.initializer if i.name in used],
    )
    model = helper.make_model(graph, opset_imports=qm.opset_import)
    model.ir_version = qm.ir_version
    return model.SerializeToString()


class _Groups:
    """Which nodes of the preprocessed fp32 model must stay in float for a node to compute in
    float on float inputs: the node, and for each of its activation inputs the layer producing
    it (found through :data:`TRANSPARENT_OPS`) and every other node that quantizes it (readers
    reached through transparent ops included)."""

    def __init__(self, pm: onnx.ModelProto) -> None:
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

        self.quantized_ops = (set(QDQRegistry) | set(QLinearOpsRegistry)) - TRANSPARENT_OPS
        self.nodes = {n.name: n for n in pm.graph.node}
        self.producer = {o: n for n in pm.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in pm.graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.inits = {i.name for i in pm.graph.initializer}

    def of(self, name: str) -> tuple[str, ...]:
        node = self.nodes[name]
        group = {name}
        for t in node.input:
            if not t or t in self.inits:
                continue
            root = t
            while (p := self.producer.get(root)) is not None and p.op_type in TRANSPARENT_OPS:
                root = p.input[0]
            if p is not None and p.op_type in self.quantized_ops and p.name:
                group.add(p.name)
            stack, seen = [root], set()
            while stack:
                u = stack.pop()
                if u in seen:
                    continue
                seen.add(u)
                for c in self.consumers[u]:
                    if c.op_type in TRANSPARENT_OPS:
                        stack.extend(c.output)
                    elif c.op_type in self.quantized_ops and c.name:
                        group.add(c.name)
        return tuple(sorted(group))


def _op_types(path: Path) -> dict[str, str]:
    """Node name -> op type, in graph order."""
    import onnx

    return {n.name: n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


def _latency_ms(path: Path, x1: np.ndarray) -> float:
    """Median of :data:`LATENCY_RUNS` batch-1 runs (ORT CPU, one thread, graph optimized):
    indicative, for comparing the steps with one another."""
    from edgebench.backends.onnxruntime import OnnxRuntimeBackend
    from edgebench.backends.options import BackendOptions, TimingBudget

    budget = TimingBudget(warmup_iters=3, warmup_s=0.0, iterations=LATENCY_RUNS, min_duration_s=0.0)
    with OnnxRuntimeBackend(str(path), BackendOptions(threads=1)) as be:
        name = be.input_specs()[0].name
        return float(be.time([{name: np.ascontiguousarray(x1)}], budget, mode="compute").summary()["p50"])
