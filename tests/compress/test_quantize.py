"""ONNX Runtime static INT8 on tiny digits models: agreement with fp32, Q/DQ nodes, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgebench.compress.finetune import FinetuneSpec
from edgebench.compress.prune import PruneSpec, prune
from edgebench.compress.quantize import (
    ArrayCalibrationReader,
    QuantSpec,
    count_qdq_nodes,
    parse_quant_spec,
    quantize_static,
)
from edgebench.errors import EdgebenchError
from edgebench.export.onnx import export_onnx, ort_logits, torch_logits


@pytest.fixture(scope="module")
def fp32_onnx(trained_cnn, tmp_path_factory) -> Path:
    return export_onnx(trained_cnn, tmp_path_factory.mktemp("q") / "cnn.onnx", (1, 1, 8, 8))


def _agreement(model_path: Path, torch_model: torch.nn.Module, x: np.ndarray) -> float:
    ref = torch_logits(torch_model, x).argmax(1)
    return float(np.mean(ort_logits(model_path, x).argmax(1) == ref))


def _zero_points(path: Path) -> list[np.ndarray]:
    """Zero points of the activation QuantizeLinear nodes."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return [
        inits[n.input[2]]
        for n in m.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[0] not in inits
    ]


@pytest.mark.parametrize("calibration", ["minmax", "entropy", "percentile"])
def test_ort_cpu_int8_agrees_with_fp32(calibration, fp32_onnx, trained_cnn, digits, tmp_path):
    out = quantize_static(fp32_onnx, tmp_path / "int8.onnx", digits["x_cal"], QuantSpec(calibration=calibration))
    assert out.is_file() and not (tmp_path / "int8.onnx.tmp").exists()
    counts = count_qdq_nodes(out)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > 0
    assert count_qdq_nodes(fp32_onnx) == {"QuantizeLinear": 0, "DequantizeLinear": 0}
    assert _agreement(out, trained_cnn, digits["x_eval"]) > 0.95
    zps = _zero_points(out)
    assert zps and all(z.dtype == np.uint8 for z in zps)  # U8 activations, asymmetric
    assert any(int(z) != 128 for z in zps)


def _reference_agreement(model_path: Path, torch_model: torch.nn.Module, x: np.ndarray) -> float:
    """Top-1 agreement of the QDQ arithmetic itself (every node run as written) with PyTorch."""
    ref = torch_logits(torch_model, x).argmax(1)
    return float(np.mean(ort_logits(model_path, x, reference=True).argmax(1) == ref))


def _host_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def test_tensorrt_preset_is_symmetric_s8(fp32_onnx, trained_cnn, digits, tmp_path):
    out = quantize_static(fp32_onnx, tmp_path / "trt.onnx", digits["x_cal"], QuantSpec(preset="tensorrt"))
    zps = _zero_points(out)
    assert zps and all(z.dtype == np.int8 and int(z) == 0 for z in zps)
    # The S8S8 artifact is for TensorRT (int32 accumulation): its QDQ arithmetic must keep the
    # decisions. This host's fused ORT kernels are a different engine (see the next test).
    assert _reference_agreement(out, trained_cnn, digits["x_eval"]) > 0.95


def test_int8_host_kernels_against_the_exact_qdq_arithmetic(fp32_onnx, trained_cnn, digits, tmp_path):
    """Why the S8S8 artifact scored 0.90 on this CPU: not nondeterminism (the same number on every
    run) and not its quantization (the exact QDQ arithmetic agrees with fp32), but ONNX Runtime's
    x86 int8 kernels on a CPU without VNNI, whose u8 x s8 pair sums saturate int16. With 7-bit
    weights (reduce_range, the documented remedy) no sum can saturate and the fused kernels
    reproduce the exact arithmetic bit for bit in decisions."""
    x = digits["x_eval"]
    trt = quantize_static(fp32_onnx, tmp_path / "trt.onnx", digits["x_cal"], QuantSpec(preset="tensorrt"))
    again = quantize_static(fp32_onnx, tmp_path / "trt2.onnx", digits["x_cal"], QuantSpec(preset="tensorrt"))
    np.testing.assert_array_equal(ort_logits(trt, x), ort_logits(again, x))  # deterministic
    seven_bit = quantize_static(
        fp32_onnx, tmp_path / "rr.onnx", digits["x_cal"], QuantSpec(preset="ort-cpu", reduce_range=True)
    )
    fused = ort_logits(seven_bit, x).argmax(1)
    exact = ort_logits(seven_bit, x, reference=True).argmax(1)
    assert np.array_equal(fused, exact)
    assert _agreement(seven_bit, trained_cnn, x) > 0.95
    if _host_has_vnni():  # int32 accumulation: the S8S8 artifact runs exactly on this host too
        assert _agreement(trt, trained_cnn, x) > 0.95


def test_pruned_resnet_then_int8(trained_resnet, digits, tmp_path):
    pruned = prune(
        trained_resnet,
        PruneSpec(ratio=0.5, finetune=FinetuneSpec(epochs=2, lr=3e-3, batch_size=32)),
        torch.rand(1, 1, 8, 8),
        (digits["x_train"], digits["y_train"]),
    )
    fp32 = export_onnx(pruned, tmp_path / "pruned.onnx", (1, 1, 8, 8))
    q = quantize_static(fp32, tmp_path / "pruned-int8.onnx", digits["x_cal"], QuantSpec(calib_samples=64))
    assert _agreement(q, pruned, digits["x_eval"]) > 0.95


def test_calibration_reader_reads_name_and_batches(fp32_onnx, digits):
    from onnxruntime.quantization import CalibrationDataReader

    x = digits["x_cal"][:37]
    r = ArrayCalibrationReader(fp32_onnx, x, batch_size=16)
    assert isinstance(r, CalibrationDataReader)
    assert r.input_name == onnx.load(str(fp32_onnx)).graph.input[0].name
    batches = list(r)
    assert len(r) == 3 and [len(b[r.input_name]) for b in batches] == [16, 16, 5]
    assert np.array_equal(np.concatenate([b[r.input_name] for b in batches]), x)
    assert r.get_next() is None
    r.rewind()
    assert np.array_equal(r.get_next()[r.input_name], x[:16])


def test_only_the_first_calib_samples_are_used(fp32_onnx, digits, tmp_path):
    """Changing images beyond calib_samples must not change the result."""
    x = digits["x_cal"].copy()
    a = quantize_static(fp32_onnx, tmp_path / "a.onnx", x, QuantSpec(calib_samples=32))
    x[32:] = 1.0
    b = quantize_static(fp32_onnx, tmp_path / "b.onnx", x, QuantSpec(calib_samples=32))
    c = quantize_static(fp32_onnx, tmp_path / "c.onnx", x, QuantSpec(calib_samples=64))
    init = lambda p: {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(p)).graph.initializer}  # noqa: E731
    assert init(a) == init(b)
    assert init(a) != init(c)


def test_spec_roundtrip_and_resolution():
    s = parse_quant_spec({"preset": "tensorrt", "calibration": "percentile", "percentile": 99.99, "calib_samples": 64})
    assert (s.act_type, s.w_type, s.act_symmetric) == ("s8", "s8", True)
    assert QuantSpec().to_dict()["activation_type"] == "u8"
    assert parse_quant_spec(s.to_dict()).to_dict() == s.to_dict()


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"preset": "tensorrt", "activation_type": "u8"}, "tensorrt needs S8 activations"),
        ({"preset": "tensorrt", "symmetric_activations": False}, "symmetric"),
        ({"preset": "tensorrt", "weight_type": "u8"}, "S8 weights"),
        ({"preset": "tensorrt", "reduce_range": True}, "reduce_range"),
        ({"preset": "openvino"}, "preset"),
        ({"calibration": "kl"}, "calibration"),
        ({"calib_samples": 0}, "calib_samples"),
        ({"activation_type": "int8"}, "activation_type"),
        ({"percentile": 99.9}, "calibration=percentile only"),
        ({"calibration": "percentile", "percentile": 50}, "percentile"),
        ({"per_channel": "yes"}, "per_channel"),
        ({"method": "minmax"}, "'method'"),
    ],
)
def test_bad_quant_specs_are_user_errors(bad, words):
    with pytest.raises(EdgebenchError, match=words):
        parse_quant_spec(bad)


def test_bad_quantize_calls_are_user_errors(fp32_onnx, digits, tmp_path):
    x = digits["x_cal"]
    with pytest.raises(EdgebenchError, match=f"calib_samples=500 but only {len(x)}"):
        quantize_static(fp32_onnx, tmp_path / "q.onnx", x, QuantSpec(calib_samples=500))
    with pytest.raises(EdgebenchError, match="no file"):
        quantize_static(tmp_path / "missing.onnx", tmp_path / "q.onnx", x, QuantSpec())
    with pytest.raises(EdgebenchError, match=r"\[0, 1\]"):
        quantize_static(fp32_onnx, tmp_path / "q.onnx", x * 16, QuantSpec())
    with pytest.raises(EdgebenchError, match="shape"):
        quantize_static(fp32_onnx, tmp_path / "q.onnx", x[:, :, :4, :4], QuantSpec())
    with pytest.raises(EdgebenchError, match="float32"):
        quantize_static(fp32_onnx, tmp_path / "q.onnx", x.astype(np.float64), QuantSpec())
    assert not (tmp_path / "q.onnx").exists()
