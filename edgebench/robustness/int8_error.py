"""Where INT8 quantization error grows under attack: per-layer fp32-vs-INT8 activation error on
clean and on adversarial inputs.

Both ONNX graphs (the fp32 export and its QDQ INT8 artifact) are run by ONNX Runtime with
every float tensor the two graphs share exposed as an output; the QDQ graph runs unfused
(graph optimizations off) so its intermediate tensors exist -- the arithmetic the artifact
specifies, as ONNX Runtime's ``qdq_loss_debug`` compares it. For each shared tensor the error is
the signal-to-quantization-noise ratio, ``SQNR = 10 log10(sum f^2 / sum (f - q)^2)`` in dB over
the batch, on the value the INT8 graph passes on (the output of the tensor's Q -> DQ pair)
(higher = closer to fp32; ``qdq_loss_debug.compute_signal_to_quantization_noice_ratio``
is the same quantity). Error accumulates along the graph, so a tensor's SQNR measures the
quantized model's drift from the float one up to that layer. The *drop* (clean SQNR minus
adversarial SQNR) names the layers where adversarial inputs push the INT8 model away from
the float one most.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TOP = 3


@dataclass(frozen=True)
class Serialized:
    """An ONNX model in memory for ONNX Runtime: its bytes and, for a model whose weights stay in
    external data (past protobuf's 2 GB), the folder that data is read from."""

    data: bytes
    folder: Path | None = None


def with_outputs(path: Path, names: list[str]) -> Serialized:
    """The ONNX model at *path*, serialized, with the float tensors *names* made graph outputs
    (weights kept in the model's external data files, when it has them, read from its folder)."""
    import onnx
    from onnx import TensorProto, helper

    from edgebench.util import onnx_file

    external = bool(onnx_file.data_files(path))
    m = onnx.load(str(path), load_external_data=False)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    return Serialized(m.SerializeToString(), Path(path).resolve().parent if external else None)


def _post_qdq_names(path: Path) -> dict[str, str]:
    """For each tensor X that the QDQ graph quantizes, the output of its Q -> DQ pair: the value
    the INT8 model actually passes on (a Relu fused into the quantization included)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    q_in = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    return {
        q_in[n.input[0]]: n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q_in
    }


def _float_tensors(path: Path) -> list[str]:
    """Names of node outputs in graph order (candidates for comparison)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    skip = {"QuantizeLinear", "DequantizeLinear"}
    return [o for n in m.graph.node if n.op_type not in skip for o in n.output]


def run_tensors(
    model: bytes | Serialized, names: list[str], x: np.ndarray | dict[str, np.ndarray], optimize: bool
) -> dict[str, np.ndarray]:
    """The tensors *names* (float64) of the serialized ONNX *model* on *x*, in batches of 256
    (ONNX Runtime CPU): *x* feeds the model's one input, or is a mapping input name -> array
    with one batch axis. ``optimize=False`` runs every node as written (a QDQ graph unfused)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if isinstance(model, Serialized):
        if model.folder is not None:  # bytes name no folder: where the weights' relative paths start
            so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model.folder))
        model = model.data
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = x if isinstance(x, dict) else {sess.get_inputs()[0].name: x}
    count = len(next(iter(feeds.values())))
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, count, 256):
        res = sess.run(names, {k: np.ascontiguousarray(v[i : i + 256]) for k, v in feeds.items()})
        for n, r in zip(names, res):
            outs[n].append(np.asarray(r, dtype=np.float64))
    return {n: np.concatenate(v) for n, v in outs.items()}


def _sqnr(f: np.ndarray, q: np.ndarray) -> float:
    noise = float(np.sum((f - q) ** 2))
    signal = float(np.sum(f**2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-30) / noise))


def localise(
    fp32_path: str | Path, qdq_path: str | Path, x_clean: np.ndarray, adversarial: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Per-layer SQNR of the INT8 graph against the fp32 graph on *x_clean* and on each
    adversarial set in *adversarial* (name -> inputs); layers in graph order, and the
    :data:`TOP` layers with the largest drop for each set."""
    fp32_path, qdq_path = Path(fp32_path), Path(qdq_path)
    import onnx

    fp_names = set(_float_tensors(fp32_path))
    shared = [n for n in _float_tensors(qdq_path) if n in fp_names]
    q_outputs = {o.name for o in onnx.load(str(qdq_path), load_external_data=False).graph.output}
    shared += [
        o.name
        for o in onnx.load(str(fp32_path), load_external_data=False).graph.output
        if o.name in q_outputs and o.name not in shared
    ]
    if not shared:
        return {"layers": [], "sets": {}, "note": "the fp32 and INT8 graphs share no tensor names"}
    post = _post_qdq_names(qdq_path)
    q_names = [post.get(n, n) for n in shared]
    fp_model, q_model = with_outputs(fp32_path, shared), with_outputs(qdq_path, q_names)

    def sqnr_of(x: np.ndarray) -> dict[str, float]:
        f = run_tensors(fp_model, shared, x, optimize=False)
        q = run_tensors(q_model, q_names, x, optimize=False)
        return {n: _sqnr(f[n], q[qn]) for n, qn in zip(shared, q_names)}

    clean = sqnr_of(x_clean)
    out: dict[str, Any] = {
        "metric": "SQNR dB (fp32 vs INT8 QDQ activations; higher is closer)",
        "count_clean": int(len(x_clean)),
        "layers": [{"tensor": n, "sqnr_clean_db": _finite(clean[n])} for n in shared],
        "sets": {},
    }
    for name, xa in adversarial.items():
        adv = sqnr_of(xa)
        drops = {n: clean[n] - adv[n] for n in shared if np.isfinite(clean[n]) and np.isfinite(adv[n])}
        for row in out["layers"]:
            row[f"sqnr_{name}_db"] = _finite(adv[row["tensor"]])
        top = sorted(drops, key=lambda n: -drops[n])[:TOP]
        out["sets"][name] = {
            "count": int(len(xa)),
            "top_layers": [
                {"tensor": n, "sqnr_clean_db": clean[n], "sqnr_adv_db": adv[n], "drop_db": drops[n]} for n in top
            ],
        }
    return out


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


__all__ = ["Serialized", "localise", "run_tensors", "with_outputs"]
