"""Edits of an ONNX graph a user brings, none of which changes what it computes on its inputs.

Two uses, kept apart:

* :func:`deployable`: the user's graph as the deployed ``base`` artifact. Untouched except where
  the study asks for it: normalization (``model.normalize``) and an NCHW -> NHWC ``Transpose``
  (``layout: nhwc``) prepended as nodes so the artifact takes [0,1] NCHW pixels like every other
  candidate, and the graph's outputs narrowed to the one named by ``model.output``.
* :func:`for_conversion`: the same graph rewritten into what onnx2torch converts: ``Constant``
  nodes (and ``Identity`` of initializers) become initializers, opsets above
  :data:`CONVERT_OPSET` are lowered with onnx's version converter, ``Reshape(allowzero=1)``
  whose shape has no zero is the plain ``Reshape``, a final ``Softmax`` becomes ``LogSoftmax``
  (attacks and fine-tuning need log-probabilities, not probabilities), and shapes are inferred.

Only ``onnx`` is imported here (no torch), so the ONNX-native path runs without PyTorch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, first_line
from edgebench.measure.onnx_stats import dims, real_inputs
from edgebench.util import onnx_file

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

CONVERT_OPSET = 17  # onnx2torch covers opset <= 17 best (ReduceMean-18, AveragePool-19 have no converter)
INPUT_NAME = "input"  # the input name of a graph edgebench prepended nodes to
LAYOUTS = ("auto", "nchw", "nhwc")


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def opset_of(model: onnx.ModelProto) -> int | None:
    """The default-domain opset the graph is written in."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _constant_value(node: Any) -> np.ndarray | None:
    """The tensor a ``Constant`` node holds (None for a sparse or unknown attribute)."""
    from onnx import helper, numpy_helper

    if len(node.attribute) != 1:
        return None
    a = node.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
        v = helper.get_attribute_value(a)
        return np.asarray(v, dtype=np.float32 if "float" in a.name else np.int64)
    return None


def constants_to_initializers(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Copy of *model* where ``Constant`` nodes and ``Identity`` nodes of initializers become
    initializers (tf2onnx, Paddle and torch's aliasing of shared weights write them so;
    onnx2torch and ORT's quantizer want a Conv's weight as an initializer). Returns the copy
    and how many nodes were folded. Subgraphs (If/Loop bodies) are left as they are."""
    from onnx import numpy_helper

    m = copy(model)
    inits = {i.name: i for i in m.graph.initializer}
    outputs = {o.name for o in m.graph.output}
    keep, new = [], []
    for node in m.graph.node:
        value = None
        if node.output and node.output[0] not in outputs:
            if node.op_type == "Identity" and node.input[0] in inits:
                value = numpy_helper.to_array(inits[node.input[0]])
            elif node.op_type == "Constant":
                value = _constant_value(node)
        if value is None:
            keep.append(node)
            continue
        t = numpy_helper.from_array(np.asarray(value), node.output[0])
        inits[t.name] = t
        new.append(t)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new)
    return m, len(new)


def _producer(model: onnx.ModelProto) -> dict[str, Any]:
    return {o: n for n in model.graph.node for o in n.output}


def final_softmax(model: onnx.ModelProto) -> Any | None:
    """The ``Softmax`` node that produces the graph's (first) output, looking through a trailing
    ``QuantizeLinear -> DequantizeLinear`` pair and ``Identity``/``Flatten``/``Reshape``; None if the
    output is not a softmax."""
    prod = _producer(model)
    name = model.graph.output[0].name
    for _ in range(6):
        node = prod.get(name)
        if node is None:
            return None
        if node.op_type == "Softmax":
            return node
        if node.op_type not in ("Identity", "QuantizeLinear", "DequantizeLinear", "Flatten", "Reshape", "Squeeze"):
            return None
        name = node.input[0]
    return None


def softmax_to_log(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Copy of *model* whose final ``Softmax`` is a ``LogSoftmax`` (same axis semantics in every
    opset) and whose output no longer passes a Q/DQ pair after it (a [0,1] probability scale
    would crush log-probabilities). Returns the copy and whether anything changed."""
    m = copy(model)
    node = final_softmax(m)
    if node is None:
        return m, False
    node.op_type = "LogSoftmax"
    prod = _producer(m)
    out = m.graph.output[0].name
    # drop a Q/DQ chain between the (now) LogSoftmax and the output: the output takes its value
    chain = []
    name = out
    while prod.get(name) is not None and prod[name] is not node:
        chain.append(prod[name])
        name = prod[name].input[0]
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in chain):
        for n in chain:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                n.op_type = "Identity"
                del n.input[1:]
                del n.attribute[:]
    return m, True


def fix_reshape_allowzero(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``Reshape(allowzero=1)`` with a constant shape that has no 0 means the same as
    ``allowzero=0`` (torch's dynamo exporter writes it; onnx2torch refuses it)."""
    from onnx import numpy_helper

    m = copy(model)
    inits = {i.name: i for i in m.graph.initializer}
    fixed = 0
    for node in m.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        attr = next((a for a in node.attribute if a.name == "allowzero"), None)
        if attr is None or attr.i == 0:
            continue
        shape = inits.get(node.input[1])
        if shape is not None and 0 not in numpy_helper.to_array(shape).tolist():
            attr.i = 0
            fixed += 1
    return m, fixed


def decompose_gelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``Gelu`` (opset 20, no earlier version, so the version converter cannot lower a graph that
    has it) as the ops it is defined by: ``0.5 x (1 + erf(x / sqrt 2))``, or with
    ``approximate="tanh"`` ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""
    from onnx import helper, numpy_helper

    m = copy(model)
    out: list[Any] = []
    n = 0
    consts: dict[str, float] = {}

    def c(value: float) -> str:
        name = f"edgebench_gelu_{len(consts)}"
        for k, v in consts.items():
            if v == value:
                return k
        consts[name] = value
        return name

    for node in m.graph.node:
        if node.op_type != "Gelu" or node.domain not in ("", "ai.onnx"):
            out.append(node)
            continue
        approx = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "approximate"), b"none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        x, y, p = node.input[0], node.output[0], f"edgebench_gelu{n}"
        if approx == "tanh":
            out += [
                helper.make_node("Mul", [x, x], [p + "_x2"]),
                helper.make_node("Mul", [p + "_x2", x], [p + "_x3"]),
                helper.make_node("Mul", [p + "_x3", c(0.044715)], [p + "_a"]),
                helper.make_node("Add", [x, p + "_a"], [p + "_b"]),
                helper.make_node("Mul", [p + "_b", c(float(np.sqrt(2 / np.pi)))], [p + "_c"]),
                helper.make_node("Tanh", [p + "_c"], [p + "_t"]),
            ]
        else:
            out += [
                helper.make_node("Div", [x, c(float(np.sqrt(2.0)))], [p + "_c"]),
                helper.make_node("Erf", [p + "_c"], [p + "_t"]),
            ]
        out += [
            helper.make_node("Add", [p + "_t", c(1.0)], [p + "_1t"]),
            helper.make_node("Mul", [x, p + "_1t"], [p + "_x1t"]),
            helper.make_node("Mul", [p + "_x1t", c(0.5)], [y], name=node.name),
        ]
        n += 1
    if n:
        del m.graph.node[:]
        m.graph.node.extend(out)
        m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items())
    return m, n


def _int_constant(name: str, inits: dict[str, Any], producer: dict[str, Any]) -> list[int] | None:
    """The integers a graph value holds when it is an initializer or a ``Constant`` node's output."""
    from onnx import numpy_helper

    if name in inits:
        return [int(v) for v in numpy_helper.to_array(inits[name]).reshape(-1).tolist()]
    node = producer.get(name)
    if node is not None and node.op_type == "Constant":
        value = _constant_value(node)
        if value is not None and value.dtype.kind in "iu":
            return [int(v) for v in value.reshape(-1).tolist()]
    return None


def _copied_dims(part: str, x: str, inits: dict[str, Any], producer: dict[str, Any]) -> list[int] | None:
    """Which dimensions of *x* a piece of a Reshape's shape reads at run time: ``Shape(x)`` with
    start/end, ``Slice(Shape(x), s, e)``, or ``Unsqueeze(Gather(Shape(x), i))``; None otherwise."""
    from onnx import helper

    node = producer.get(part)
    if node is None:
        return None

    def shape_of_x(name: str) -> tuple[int, int | None] | None:
        sh = producer.get(name)
        if sh is None or sh.op_type != "Shape" or sh.input[0] != x:
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in sh.attribute}
        start, end = int(attrs.get("start", 0)), attrs.get("end")
        return (start, int(end)) if start >= 0 and end is not None and int(end) > start else (start, None)

    if node.op_type == "Shape":
        span = shape_of_x(part)
        return list(range(span[0], span[1])) if span and span[1] is not None else None
    if node.op_type == "Slice" and len(node.input) >= 3:
        span = shape_of_x(node.input[0])
        starts, ends = (_int_constant(n, inits, producer) for n in node.input[1:3])
        axes = _int_constant(node.input[3], inits, producer) if len(node.input) > 3 and node.input[3] else [0]
        steps = _int_constant(node.input[4], inits, producer) if len(node.input) > 4 and node.input[4] else [1]
        if span != (0, None) or not starts or not ends or axes not in ([0], [-1]) or steps != [1]:
            return None
        s, e = starts[0], ends[0]
        return list(range(s, e)) if 0 <= s < e <= 8 else None  # a rank-8 bound: ends like INT64_MAX refused
    if node.op_type == "Unsqueeze":
        gather = producer.get(node.input[0])
        if gather is None or gather.op_type != "Gather" or shape_of_x(gather.input[0]) != (0, None):
            return None
        index = _int_constant(gather.input[1], inits, producer)
        return index if index is not None and len(index) == 1 and index[0] >= 0 else None
    return None


def _drop_unused(m: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nothing reads (the shape arithmetic a rewrite left behind)."""

    def names_read(graph: Any) -> set[str]:  # subgraphs (If, Loop) may read outer values
        out = {i for n in graph.node for i in n.input}
        for n in graph.node:
            for a in n.attribute:
                for g in [a.g] if a.HasField("g") else list(a.graphs):
                    out |= names_read(g)
        return out

    while True:
        read = names_read(m.graph) | {o.name for o in m.graph.output}
        keep = [n for n in m.graph.node if any(o in read for o in n.output)]
        if len(keep) == len(m.graph.node):
            return
        del m.graph.node[:]
        m.graph.node.extend(keep)


def shape_copies_to_zeros(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``Reshape(x, Concat(Slice(Shape(x), 0, 2), [-1]))`` (``x.flatten(2)`` as torch's legacy
    exporter writes it with a dynamic batch) is ``Reshape(x, [0, 0, -1])``: ONNX's 0 copies the
    input's dimension. The same for ``Unsqueeze(Gather(Shape(x), i))`` at position i. The
    constant shape keeps the batch free when the converted module is exported again, where the
    shape arithmetic is traced into constants at the example's batch size (LeViT's stem)."""
    from onnx import numpy_helper

    m = copy(model)
    inits = {i.name: i for i in m.graph.initializer}
    producer = _producer(m)
    n = 0
    for node in m.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] in inits:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        concat = producer.get(node.input[1])
        if concat is None or concat.op_type != "Concat":
            continue
        shape: list[int] = []
        for part in concat.input:
            const = _int_constant(part, inits, producer)
            if const is not None:
                if 0 in const:
                    break
                shape.extend(const)
                continue
            dims = _copied_dims(part, node.input[0], inits, producer)
            if dims is None or dims != list(range(len(shape), len(shape) + len(dims))):
                break
            shape.extend([0] * len(dims))
        else:
            name = f"{node.name or node.output[0]}_edgebench_shape"
            m.graph.initializer.append(numpy_helper.from_array(np.asarray(shape, dtype=np.int64), name))
            node.input[1] = name
            n += 1
    if n:
        _drop_unused(m)
    return m, n


def _ancestors(name: str, producer: dict[str, Any], stop: set[str]) -> list[Any] | None:
    """The nodes that compute *name*, in graph order; None when more than *stop* (the graph's
    input) and constants feed them (the value depends on an activation)."""
    seen: dict[int, Any] = {}
    todo = [name]
    while todo:
        t = todo.pop()
        if not t or t in stop:
            continue
        node = producer.get(t)
        if node is None:
            continue  # an initializer
        if id(node) in seen:
            continue
        if node.op_type not in ("Shape", "Squeeze", "Unsqueeze", "Range", "Mul", "Add", "Constant", "Cast", "Gather"):
            return None
        if node.op_type == "Shape" and node.input[0] not in stop:
            return None
        seen[id(node)] = node
        todo.extend(node.input)
    return list(seen.values())


def identity_gathers(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``Gather(Reshape(x, [-1]), I)`` where ``I``, computed from the batch size and constants, is
    ``arange(x.size).reshape(x.shape)`` is ``x`` itself: torch's dynamo exporter writes a no-op
    ``as_strided`` so (ConvNeXt's head, after its average pool). The indices bake the channel
    count in, so the graph could not follow a pruning cut; ``x`` does. Checked by computing ``I``
    with ONNX Runtime at two batch sizes from a graph of the index nodes alone."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    inputs = real_inputs(model)
    if len(inputs) != 1:
        return copy(model), 0
    declared = dims(inputs[0])
    if not declared or any(not isinstance(d, int) for d in declared[1:]):
        return copy(model), 0
    item = [int(d) for d in declared[1:]]
    inits = {i.name: i for i in model.graph.initializer}
    producer = _producer(model)
    shapes: dict[str, list[int | str]] | None = None
    replace: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "Gather" or any(a.name == "axis" and a.i != 0 for a in node.attribute):
            continue
        flat = producer.get(node.input[0])
        if flat is None or flat.op_type != "Reshape" or _int_constant(flat.input[1], inits, producer) != [-1]:
            continue
        index_nodes = _ancestors(node.input[1], producer, {inputs[0].name})
        if not index_nodes:
            continue
        if shapes is None:
            try:
                inferred = onnx_file.infer_shapes(model)
                shapes = {vi.name: dims(vi) for vi in [*inferred.graph.value_info, *inferred.graph.input]}
            except Exception:  # noqa: BLE001 - without shapes nothing is rewritten
                shapes = {}
        x = flat.input[0]
        known = shapes.get(x)
        if not known or any(not isinstance(d, int) for d in known[1:]):
            continue
        shape = [int(d) for d in known[1:]]
        order = {id(n): k for k, n in enumerate(model.graph.node)}
        nodes = sorted(index_nodes, key=lambda n: order[id(n)])
        used = {i for n in nodes for i in n.input}
        probe = helper.make_model(
            helper.make_graph(
                nodes,
                "indices",
                [inputs[0]],
                [helper.make_tensor_value_info(node.input[1], onnx.TensorProto.INT64, None)],
                [inits[u] for u in used if u in inits],
            ),
            opset_imports=model.opset_import,
        )
        probe.ir_version = model.ir_version
        try:
            sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
            per = int(np.prod(shape))
            ok = True
            for batch in (1, 3):
                feed = np.zeros((batch, *item), dtype=np.float32)
                got = np.asarray(sess.run(None, {inputs[0].name: feed})[0])
                want = np.arange(batch * per).reshape(batch, *shape)
                ok = ok and got.shape == want.shape and bool(np.array_equal(got, want))
        except Exception:  # noqa: BLE001 - indices ONNX Runtime cannot compute alone: left as they are
            ok = False
        if ok:
            replace[node.output[0]] = x
    if not replace:
        return copy(model), 0
    m = copy(model)
    for n in m.graph.node:
        for k, i in enumerate(n.input):
            if i in replace:
                n.input[k] = replace[i]
    for o in m.graph.output:
        if o.name in replace:  # the graph's own output: keep its name
            m.graph.node.append(helper.make_node("Identity", [replace[o.name]], [o.name]))
    _drop_unused(m)
    return m, len(replace)


def reshape_to_flatten(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``Reshape(x, [-1, K])`` (or ``[0, K]``, or ``[N, K]`` at a fixed batch N) where ``K`` is the
    product of ``x``'s non-batch dimensions is ``Flatten(x, axis=1)``: the same function, but one
    that follows the channel count (torch's dynamo exporter bakes the flatten width into a
    constant shape, which a pruned model no longer has)."""
    from onnx import helper, numpy_helper

    try:
        inferred = onnx_file.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without shapes nothing is rewritten
        return copy(model), 0
    known: dict[str, list[int | str]] = {
        vi.name: dims(vi)
        for vi in [*inferred.graph.value_info, *inferred.graph.input]
        if vi.type.tensor_type.HasField("shape")
    }
    m = copy(model)
    inits = {i.name: i for i in m.graph.initializer}
    out, n = [], 0
    for node in m.graph.node:
        shape_in = inits.get(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        d = known.get(node.input[0]) if shape_in is not None else None
        if shape_in is not None and d is not None and len(d) >= 3 and all(isinstance(v, int) for v in d[1:]):
            target = numpy_helper.to_array(shape_in).tolist()
            width = 1
            for v in d[1:]:
                width *= int(v)
            if len(target) == 2 and target[1] == width and (target[0] in (-1, 0) or target[0] == d[0]):
                out.append(helper.make_node("Flatten", [node.input[0]], list(node.output), name=node.name, axis=1))
                n += 1
                continue
        out.append(node)
    if n:
        del m.graph.node[:]
        m.graph.node.extend(out)
    return m, n


def matmul_add_to_gemm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``MatMul(x, W) + b`` with constant 2-D ``W`` and 1-D ``b`` and a 2-D ``x`` becomes
    ``Gemm(x, W, b)`` (tf2onnx and Paddle write dense layers so): onnx2torch makes a Gemm with
    constant weights an ``nn.Linear``, which pruning can cut and which names the classifier.
    Needs the inferred rank of ``x``; a MatMul of unknown rank is left as it is."""
    from onnx import helper

    try:  # data propagation follows Shape -> Gather -> Concat into a Reshape's rank
        inferred = onnx_file.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - without shapes nothing is fused
        return copy(model), 0
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        if vi.type.tensor_type.HasField("shape")
    }
    shapes = {vi.name: vi.type.tensor_type.shape for vi in inferred.graph.value_info}
    for n in inferred.graph.node:  # ranks shape inference leaves open: Flatten, Reshape to a known-length shape
        if n.output[0] in ranks and ranks[n.output[0]] > 0:
            continue
        if n.op_type == "Flatten":
            ranks[n.output[0]] = 2
        elif n.op_type == "Reshape" and n.input[1] in shapes:
            d = shapes[n.input[1]].dim
            if len(d) == 1 and d[0].HasField("dim_value"):
                ranks[n.output[0]] = int(d[0].dim_value)

    m = copy(model)

    def gemm(node: Any, add: Any, bias: str | None) -> Any:
        if add is None or bias is None or ranks.get(node.input[0]) != 2:
            return None
        return helper.make_node(
            "Gemm", [node.input[0], node.input[1], bias], list(add.output), name=(add.name or node.name) + "_gemm"
        )

    return m, _replace_matmuls(m, gemm)


def _replace_matmuls(m: onnx.ModelProto, make: Callable[[Any, Any, str | None], Any]) -> int:
    """Rewrite, in place, each ``MatMul(x, W)`` with a constant 2-D ``W`` (with the ``Add`` of a
    constant bias of ``W``'s width that alone consumes it, when there is one) into the node
    ``make(matmul, add, bias)`` returns (None: left as it is). Returns how many were rewritten."""
    inits = {i.name: i for i in m.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in m.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in m.graph.output}
    drop: set[int] = set()
    replace: dict[int, Any] = {}
    for node in m.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or len(inits[node.input[1]].dims) != 2:
            continue
        width = inits[node.input[1]].dims[1]
        users = consumers.get(node.output[0], [])
        add, bias = None, None
        if len(users) == 1 and users[0].op_type == "Add" and node.output[0] not in outputs:
            other = users[0].input[1] if users[0].input[0] == node.output[0] else users[0].input[0]
            if other in inits and list(inits[other].dims) == [width]:
                add, bias = users[0], other
        new = make(node, add, bias)
        if new is None:
            continue
        if add is not None and list(new.output) == list(add.output):
            replace[id(add)] = new
            drop.add(id(node))
        else:
            replace[id(node)] = new
    if replace:
        nodes = [replace.get(id(n), n) for n in m.graph.node if id(n) not in drop]
        del m.graph.node[:]
        m.graph.node.extend(nodes)
    return len(replace)


LINEAR_DOMAIN = "edgebench_linear"  # a node only onnx2torch reads (export/to_torch.py converts it)


def matmul_to_linear(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``MatMul(x, W)`` with a constant 2-D ``W`` (and an ``Add`` of a constant bias after it) as one
    ``edgebench_linear.Linear`` node: ``x @ W + b`` for an ``x`` of any rank is exactly
    ``nn.Linear``, the layer Torch-Pruning can cut (ConvNeXt's and ViT's channels-last MLPs are
    written as MatMul on 3-D and 4-D tensors). For onnx2torch only: ONNX Runtime does not run it."""
    from onnx import helper

    m = copy(model)

    def linear(node: Any, add: Any, bias: str | None) -> Any:
        ins, outs = [node.input[0], node.input[1]], list(node.output)
        if add is not None and bias is not None:
            ins, outs = [*ins, bias], list(add.output)
        return helper.make_node("Linear", ins, outs, name=node.name, domain=LINEAR_DOMAIN)

    n = _replace_matmuls(m, linear)
    if n:
        m.opset_import.append(helper.make_opsetid(LINEAR_DOMAIN, 1))
    return m, n


@dataclass
class Prepared:
    """A graph rewritten for onnx2torch, and what was changed (for the report)."""

    model: Any  # onnx.ModelProto
    edits: list[str] = field(default_factory=list)
    log_softmax: bool = False  # the final Softmax became LogSoftmax


def for_conversion(model: onnx.ModelProto) -> Prepared:
    """*model* rewritten into what onnx2torch converts (see the module doc); computes the same
    function (up to the final Softmax -> LogSoftmax, recorded in :attr:`Prepared.log_softmax`)."""

    edits: list[str] = []
    m, n = constants_to_initializers(model)
    if n:
        edits.append(f"{n} Constant/Identity weight node(s) -> initializers")
    opset = opset_of(m)
    if opset is not None and opset > CONVERT_OPSET:
        m, n = decompose_gelu(m)
        if n:
            edits.append(f"{n} Gelu (opset 20) -> Erf/Tanh arithmetic, so the opset can be lowered")
        try:
            m = onnx_file.convert_version(m, CONVERT_OPSET)
            edits.append(f"opset {opset} -> {CONVERT_OPSET} (onnx version converter)")
        except Exception as exc:  # noqa: BLE001 - a failing adapter: try the converter on the original opset
            edits.append(f"opset {opset} kept: the version converter failed ({first_line(exc, 100)})")
    m, n = fix_reshape_allowzero(m)
    if n:
        edits.append(f"{n} Reshape(allowzero=1) with a zero-free shape -> allowzero=0")
    m, n = shape_copies_to_zeros(m)
    if n:
        edits.append(f"{n} Reshape shape(s) read from the input's own dimensions -> constants with 0 (copy)")
    m, n = identity_gathers(m)
    if n:
        edits.append(f"{n} Gather over a flattened tensor at its own positions (a no-op as_strided) -> the tensor")
    m, n = reshape_to_flatten(m)
    if n:
        edits.append(f"{n} Reshape to a constant [batch, width] -> Flatten (follows the channel count)")
    m, n = matmul_add_to_gemm(m)
    if n:
        edits.append(f"{n} MatMul + Add with constant weights -> Gemm (a Linear layer in PyTorch)")
    m, changed = softmax_to_log(m)
    if changed:
        edits.append("final Softmax -> LogSoftmax (attacks and fine-tuning work on log-probabilities)")
    try:
        m = onnx_file.infer_shapes(m, keep_weights=True)
    except Exception as exc:  # noqa: BLE001 - inference is a help, not a requirement
        log.info("shape inference failed (%s); converting without it", first_line(exc, 100))
    m, n = matmul_to_linear(m)  # last: the result is for onnx2torch only
    if n:
        edits.append(f"{n} MatMul (+ Add) with constant 2-D weights -> Linear layers")
    return Prepared(m, edits, changed)


QUANT_MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis) need opset 13


def for_quantization(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """*model* as ONNX Runtime's quantizer takes it: weights as initializers (a weight in a
    ``Constant`` node is not quantized) and at least opset 13 (per-channel Q/DQ), raised with
    onnx's version converter. Same function, same node names otherwise."""

    edits: list[str] = []
    m, n = constants_to_initializers(model)
    if n:
        edits.append(f"{n} Constant/Identity weight node(s) -> initializers")
    opset = opset_of(m)
    if opset is not None and opset < QUANT_MIN_OPSET:
        try:
            m = onnx_file.convert_version(m, QUANT_MIN_OPSET)
            edits.append(f"opset {opset} -> {QUANT_MIN_OPSET} (per-channel Q/DQ; onnx version converter)")
        except Exception as exc:  # noqa: BLE001 - quantize what we have; ORT says what it cannot do
            edits.append(f"opset {opset} kept: the version converter failed ({first_line(exc, 100)})")
    return m, edits


def detect_layout(model: onnx.ModelProto) -> str:
    """``nhwc`` when the graph takes channels last: its first node on the input is a
    ``Transpose`` with perm [0, 3, 1, 2], or its declared input ends in 1 or 3 channels while its
    second dimension does not look like channels; else ``nchw``."""
    inputs = real_inputs(model)
    if len(inputs) != 1:
        return "nchw"
    name = inputs[0].name
    first = next((n for n in model.graph.node if name in n.input), None)
    if first is not None and first.op_type == "Transpose":
        perm = next((list(a.ints) for a in first.attribute if a.name == "perm"), None)
        if perm == [0, 3, 1, 2]:
            return "nhwc"
    d = dims(inputs[0])
    if len(d) == 4 and d[3] in (1, 3) and not (isinstance(d[1], int) and d[1] in (1, 3)):
        return "nhwc"
    return "nchw"


def _vi(name: str, shape: list[int | str]) -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def deployable(
    model: onnx.ModelProto,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    layout: str = "nchw",
    output: str | None = None,
) -> tuple[onnx.ModelProto, list[str]]:
    """The user's graph as the deployed base artifact: [0,1] NCHW pixels in, the named output
    out (see the module doc). Returns the graph and the edits made (empty: untouched)."""
    from onnx import helper, numpy_helper

    m = copy(model)
    edits: list[str] = []
    inputs = real_inputs(m)
    if len(inputs) != 1:
        raise EdgebenchError(f"model.onnx: expected a graph with one input, found {[i.name for i in inputs]}")
    names = [o.name for o in m.graph.output]
    if output is not None:
        if output not in names:
            raise EdgebenchError(f"model.output: expected one of the graph's outputs {names}, found {output!r}")
        if len(names) > 1:
            keep = next(o for o in m.graph.output if o.name == output)
            del m.graph.output[:]
            m.graph.output.append(keep)
            edits.append(f"outputs narrowed to '{output}' (of {names})")
    elif len(names) > 1:
        raise EdgebenchError(
            f"model.onnx: the graph has {len(names)} outputs {names}; expected model.output naming the logits"
        )
    vin = inputs[0]
    if layout == "nchw" and mean is None:
        return m, edits
    d = dims(vin)
    if len(d) != 4:
        raise EdgebenchError(f"model.onnx: expected a 4-D image input, found {vin.name} with dimensions {d}")
    nchw = [d[0], d[3], d[1], d[2]] if layout == "nhwc" else list(d)
    new_in = INPUT_NAME if INPUT_NAME not in {n for node in m.graph.node for n in node.output} else "edgebench_input"
    nodes = []
    cur = new_in
    if mean is not None and std is not None:
        c = len(mean)
        inits = [
            numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, c, 1, 1), "edgebench_mean"),
            numpy_helper.from_array(np.asarray(std, np.float32).reshape(1, c, 1, 1), "edgebench_std"),
        ]
        m.graph.initializer.extend(inits)
        nodes += [
            helper.make_node("Sub", [cur, "edgebench_mean"], ["edgebench_centered"], name="edgebench_normalize_sub"),
            helper.make_node(
                "Div", ["edgebench_centered", "edgebench_std"], ["edgebench_normalized"], name="edgebench_normalize_div"
            ),
        ]
        cur = "edgebench_normalized"
        edits.append(f"normalization prepended as nodes (mean {list(mean)}, std {list(std)})")
    if layout == "nhwc":
        nodes.append(
            helper.make_node("Transpose", [cur], ["edgebench_nhwc"], perm=[0, 2, 3, 1], name="edgebench_to_nhwc")
        )
        cur = "edgebench_nhwc"
        edits.append("NCHW -> NHWC Transpose prepended (the graph takes channels last)")
    for node in m.graph.node:  # the old input is now fed by the prepended nodes
        for i, n in enumerate(node.input):
            if n == vin.name:
                node.input[i] = cur
    for o in m.graph.output:  # an output that is the input itself (never in a classifier)
        if o.name == vin.name:
            raise EdgebenchError("model.onnx: the graph's output is its input; expected a classifier")
    old = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes + old)
    new_vi = _vi(new_in, [x if isinstance(x, int) else str(x) for x in nchw])
    graph_inputs = [new_vi if vi.name == vin.name else vi for vi in m.graph.input]
    del m.graph.input[:]
    m.graph.input.extend(graph_inputs)
    return m, edits


def free_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of *model* whose input and output batch dimension is symbolic (``batch``) and whose
    stale intermediate shapes are dropped; the caller checks it still computes the same."""
    m = copy(model)
    for vi in [*real_inputs(m), *m.graph.output]:
        shape = vi.type.tensor_type.shape
        if len(shape.dim):
            shape.dim[0].Clear()
            shape.dim[0].dim_param = "batch"
    del m.graph.value_info[:]
    return m


__all__ = [
    "CONVERT_OPSET",
    "INPUT_NAME",
    "LAYOUTS",
    "Prepared",
    "constants_to_initializers",
    "decompose_gelu",
    "deployable",
    "detect_layout",
    "dims",
    "final_softmax",
    "fix_reshape_allowzero",
    "LINEAR_DOMAIN",
    "matmul_add_to_gemm",
    "matmul_to_linear",
    "reshape_to_flatten",
    "for_conversion",
    "for_quantization",
    "free_batch",
    "opset_of",
    "real_inputs",
    "softmax_to_log",
]
