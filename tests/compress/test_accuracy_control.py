"""INT8 with accuracy control on a digits CNN with planted quantization-hostile layers: a conv
whose output has one channel 1e4 times larger than the rest (the next conv reads that channel
with weights 1e4 times smaller, so the fp32 function is the trained one). Min-max INT8 gives
that tensor a step of ~1e2, every other channel rounds to zero, and the accuracy collapses."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgebench.compress.accuracy_control import quantize_with_accuracy_control, rank_nodes
from edgebench.compress.quantize import QuantSpec, parse_quant_spec, preprocess, quantize_static
from edgebench.errors import EdgebenchError
from edgebench.export.onnx import export_onnx, ort_logits

OUTLIER = 1e4


def _plant(model: nn.Sequential, bn: int, reader: int, channel: int = 0) -> None:
    """Scale one output channel of the conv + BatchNorm before *bn* (so after its ReLU too) by
    OUTLIER and the weights with which conv *reader* reads that channel by 1 / OUTLIER."""
    with torch.no_grad():
        model[bn].weight[channel] *= OUTLIER
        model[bn].bias[channel] *= OUTLIER
        model[reader].weight[:, channel] /= OUTLIER


def _hostile(trained_cnn: nn.Module, *plants: tuple[int, int], path: Path) -> tuple[Path, list[str]]:
    """tiny_cnn: [Normalize, Conv 1, BN 2, ReLU, Conv 4, BN 5, ReLU, MaxPool, Conv 8, ...]."""
    model = copy.deepcopy(trained_cnn).eval()
    for bn, reader in plants:
        _plant(model, bn, reader)
    fp32 = export_onnx(model, path, (1, 1, 8, 8))
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    assert len(convs) == 3
    return fp32, convs


def _accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(ort_logits(path, x).argmax(1) == y))


def _float_weights(path: Path) -> set[str]:
    """Nodes of a QDQ model whose weight (input 1) is a float initializer, not dequantized."""
    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}
    return {n.name for n in m.graph.node if n.op_type in ("Conv", "Gemm") and n.input[1] in inits}


def test_one_hostile_layer_goes_back_to_float(trained_cnn, digits, tmp_path):
    fp32, convs = _hostile(trained_cnn, (5, 8), path=tmp_path / "hostile.onnx")
    x_cal, x_ev, y_ev = digits["x_cal"], digits["x_eval"], digits["y_eval"]
    budget = 0.01
    fp32_acc = _accuracy(fp32, x_ev, y_ev)
    assert fp32_acc > 0.9  # the planted channel leaves the fp32 function as trained
    plain = quantize_static(fp32, tmp_path / "plain.onnx", x_cal, QuantSpec())
    plain_acc = _accuracy(plain, x_ev, y_ev)
    assert fp32_acc - plain_acc > budget  # plain INT8 breaks the budget (~0.97 -> ~0.10)

    spec = QuantSpec(max_accuracy_drop=budget)
    out = tmp_path / "ac.onnx"
    r = quantize_with_accuracy_control(fp32, out, x_cal, spec, x_ev, y_ev)

    # one step: the reader of the outlier tensor and the conv producing it (whose Q/DQ pair it
    # shares) back in float
    assert r.met and r.reason is None
    assert [(n.name, n.op_type) for n in r.kept_float] == [(convs[1], "Conv"), (convs[2], "Conv")]
    # the reader ranks worst: run alone it sees every other channel at zero
    assert r.ranking[0].name == convs[2] and r.ranking[0].sqnr_db is not None and r.ranking[0].sqnr_db < 10
    assert r.ranking[0].group == (convs[1], convs[2])
    assert all(n.sqnr_db is None or n.sqnr_db > 20 for n in r.ranking[1:])
    assert [s.step for s in r.steps] == [0, 1] and r.chosen_step == 1
    assert r.steps[0].kept_float == [] and r.steps[0].accuracy == pytest.approx(plain_acc)
    assert r.steps[0].accuracy_drop > budget
    assert r.steps[1].kept_float == r.kept_float == r.steps[1].added
    assert r.steps[1].accuracy_drop <= budget
    # as measured: the artifact written is the step reported, its convs 2 and 3 left in float
    assert r.fp32_accuracy == pytest.approx(fp32_acc)
    assert r.accuracy == r.steps[1].accuracy == pytest.approx(_accuracy(out, x_ev, y_ev))
    assert r.accuracy_drop == pytest.approx(fp32_acc - r.accuracy)
    assert _float_weights(out) == {convs[1], convs[2]}
    assert _float_weights(plain) == set()
    assert all(s.latency_ms > 0 for s in r.steps) and r.fp32_latency_ms > 0
    d = json.loads(json.dumps(r.to_dict()))
    assert d["met"] is True and d["kept_float"] == [
        {"name": convs[1], "op_type": "Conv"},
        {"name": convs[2], "op_type": "Conv"},
    ]
    assert [s["accuracy"] for s in d["steps"]] == [s.accuracy for s in r.steps]
    assert d["eval_count"] == len(x_ev) and d["accuracy_engine"] == "onnxruntime-cpu"


def test_budget_not_met_within_the_cap_is_reported(trained_cnn, digits, tmp_path):
    """Two hostile layers and room for one group: not met, said why, the best step written."""
    fp32, convs = _hostile(trained_cnn, (2, 4), (5, 8), path=tmp_path / "two.onnx")
    x_cal, x_ev, y_ev = digits["x_cal"], digits["x_eval"], digits["y_eval"]
    out = tmp_path / "ac.onnx"
    spec = QuantSpec(max_accuracy_drop=0.01, max_float_groups=1)
    r = quantize_with_accuracy_control(fp32, out, x_cal, spec, x_ev, y_ev)
    assert not r.met
    assert r.reason is not None and "max_float_groups=1" in r.reason
    assert len(r.steps) == 2 and all(s.accuracy_drop > 0.01 for s in r.steps)
    best = max(r.steps, key=lambda s: (s.accuracy, -s.step))
    assert r.chosen_step == best.step and r.accuracy == pytest.approx(_accuracy(out, x_ev, y_ev))
    assert r.to_dict()["met"] is False

    # with the default cap the second group fits: all three convs in float, the rest INT8
    r2 = quantize_with_accuracy_control(fp32, out, x_cal, QuantSpec(max_accuracy_drop=0.01), x_ev, y_ev)
    assert r2.met and len(r2.steps) == 3
    assert {n.name for n in r2.kept_float} == set(convs)
    assert r2.accuracy_drop <= 0.01


def test_plain_int8_within_budget_is_one_step(trained_cnn, digits, tmp_path):
    fp32 = export_onnx(trained_cnn, tmp_path / "cnn.onnx", (1, 1, 8, 8))
    spec = QuantSpec(max_accuracy_drop=0.05)
    out = tmp_path / "ac.onnx"
    r = quantize_with_accuracy_control(fp32, out, digits["x_cal"], spec, digits["x_eval"], digits["y_eval"])
    assert r.met and len(r.steps) == 1 and r.kept_float == [] and r.ranking == []
    plain = quantize_static(fp32, tmp_path / "plain.onnx", digits["x_cal"], QuantSpec())
    assert np.array_equal(ort_logits(out, digits["x_eval"]), ort_logits(plain, digits["x_eval"]))


def test_groups_put_their_node_on_float_inputs(trained_resnet, tmp_path):
    """For every ranked node of a residual net (shortcuts, Adds, removed ReLUs), under both
    presets: excluding its group leaves none of the node's activation inputs dequantized."""

    x = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    fp32 = export_onnx(trained_resnet, tmp_path / "resnet.onnx", (1, 1, 8, 8))
    pre = preprocess(fp32, tmp_path / "pre.onnx")
    for preset in ("ort-cpu", "tensorrt"):
        spec = QuantSpec(preset=preset, calib_samples=32)
        q0 = quantize_static(fp32, tmp_path / "q0.onnx", x, spec)
        ranking = rank_nodes(pre, q0, x)
        assert len(ranking) >= 10 and {r.op_type for r in ranking} >= {"Conv", "Add", "Gemm"}
        for r in ranking:
            q = onnx.load(str(quantize_static(fp32, tmp_path / "q.onnx", x, spec, nodes_to_exclude=list(r.group))))
            producer = {o: n for n in q.graph.node for o in n.output}
            inits = {i.name for i in q.graph.initializer}
            node = next(n for n in q.graph.node if n.name == r.name)
            dequantized = [
                i
                for i in node.input
                if i in producer and producer[i].op_type == "DequantizeLinear" and producer[i].input[0] not in inits
            ]
            assert not dequantized, (preset, r.name, r.group, dequantized)


def test_quantize_static_nodes_to_exclude(trained_cnn, digits, tmp_path):
    fp32 = export_onnx(trained_cnn, tmp_path / "cnn.onnx", (1, 1, 8, 8))
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    q = quantize_static(fp32, tmp_path / "q.onnx", digits["x_cal"], QuantSpec(), nodes_to_exclude=[convs[0]])
    assert _float_weights(q) == {convs[0]}
    with pytest.raises(EdgebenchError, match="lacks: /nope"):
        quantize_static(fp32, tmp_path / "q.onnx", digits["x_cal"], QuantSpec(), nodes_to_exclude=["/nope"])
    with pytest.raises(EdgebenchError, match="list of node names"):
        quantize_static(fp32, tmp_path / "q.onnx", digits["x_cal"], QuantSpec(), nodes_to_exclude=convs[0])


def test_accuracy_control_needs_a_budget_and_labels(trained_cnn, digits, tmp_path):
    fp32 = export_onnx(trained_cnn, tmp_path / "cnn.onnx", (1, 1, 8, 8))
    x_cal, x_ev, y_ev = digits["x_cal"], digits["x_eval"], digits["y_eval"]
    with pytest.raises(EdgebenchError, match="max_accuracy_drop"):
        quantize_with_accuracy_control(fp32, tmp_path / "q.onnx", x_cal, QuantSpec(), x_ev, y_ev)
    spec = QuantSpec(max_accuracy_drop=0.01)
    with pytest.raises(EdgebenchError, match="label"):
        quantize_with_accuracy_control(fp32, tmp_path / "q.onnx", x_cal, spec, x_ev, y_ev[:-1])
    with pytest.raises(EdgebenchError, match="float32"):
        quantize_with_accuracy_control(fp32, tmp_path / "q.onnx", x_cal, spec, x_ev.astype(np.float64), y_ev)
    assert not (tmp_path / "q.onnx").exists()


def test_spec_accuracy_control_keys():
    plain = QuantSpec()
    # without accuracy control the recipe is the one edgebench always wrote (run folders resume)
    assert set(plain.to_dict()) == {
        "preset",
        "calibration",
        "calib_samples",
        "per_channel",
        "activation_type",
        "weight_type",
        "symmetric_activations",
        "reduce_range",
        "percentile",
        "calib_batch_size",
    }
    s = parse_quant_spec({"preset": "ort-cpu", "max_accuracy_drop": 0.01})
    assert s.to_dict()["max_accuracy_drop"] == 0.01 and s.to_dict()["max_float_groups"] == 8
    assert parse_quant_spec(s.to_dict()) == s
    t = parse_quant_spec({"max_accuracy_drop": 1 / 50, "max_float_groups": 3})
    assert parse_quant_spec(t.to_dict()).to_dict() == t.to_dict() == {**plain.to_dict(), **t.to_dict()}
    assert isinstance(parse_quant_spec({"max_accuracy_drop": np.float32(0.5)}).max_accuracy_drop, float)


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"max_accuracy_drop": 0}, r"max_accuracy_drop: expected a number in \(0, 1\)"),
        ({"max_accuracy_drop": 1}, "max_accuracy_drop"),
        ({"max_accuracy_drop": -0.01}, "max_accuracy_drop"),
        ({"max_accuracy_drop": "1%"}, "max_accuracy_drop"),
        ({"max_accuracy_drop": True}, "max_accuracy_drop"),
        ({"max_accuracy_drop": 0.01, "max_float_groups": 0}, "max_float_groups: expected an integer >= 1"),
        ({"max_accuracy_drop": 0.01, "max_float_groups": 2.5}, "max_float_groups"),
        ({"max_float_groups": 3}, "applies with max_accuracy_drop only"),
    ],
)
def test_bad_accuracy_control_specs_are_user_errors(bad, words):
    with pytest.raises(EdgebenchError, match=words):
        parse_quant_spec(bad)
