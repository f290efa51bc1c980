"""ONNX files past protobuf's 2 GB: the graph in NAME.onnx, the weights in NAME.onnx.data.

A real 2 GB model is too big for the suite; the limit is lowered instead, so a small real CNN
takes the same path (what a 2.3 GB model does is in benchmarks/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgebench.export.onnx import export_onnx
from edgebench.util import onnx_file


def cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    ).eval()


def ort_out(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_file, "SINGLE_FILE_LIMIT", 4096)  # the CNN's 20 KB of weights are "too big"


def test_a_model_past_the_limit_is_written_with_one_external_data_file(
    monkeypatch: pytest.MonkeyPatch, x: np.ndarray, tmp_path: Path
) -> None:
    single = export_onnx(cnn(), tmp_path / "ref" / "m.onnx", (1, 1, 8, 8))
    assert onnx_file.data_files(single) == []
    monkeypatch.setattr(onnx_file, "SINGLE_FILE_LIMIT", 4096)
    model = onnx.load(str(single))
    raw = {t.name: t.raw_data for t in model.graph.initializer}
    out = onnx_file.save(model, tmp_path / "big" / "m.onnx")
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx", "m.onnx.data"]  # nothing staged left
    assert onnx_file.data_files(out) == [out.with_name("m.onnx.data")]
    assert out.stat().st_size < 2048 < out.with_name("m.onnx.data").stat().st_size
    assert onnx_file.size_bytes(out) == out.stat().st_size + out.with_name("m.onnx.data").stat().st_size
    np.testing.assert_allclose(ort_out(out, x), ort_out(single, x), rtol=0, atol=1e-6)
    # the message handed in still holds its weights (saving moved the bytes out of a copy)
    assert {t.name: t.raw_data for t in model.graph.initializer} == raw


def pooled(sign: float = 1.0) -> torch.nn.Module:
    """Adaptive pooling to a size that does not divide 8: the TorchScript exporter refuses it,
    the dynamo exporter (which writes external data) takes it."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d((3, 3)),
        torch.nn.Flatten(),
        torch.nn.Linear(36, 300),
    ).eval()
    with torch.no_grad():
        m[3].weight.mul_(sign)
    return m


def test_the_exporter_gathers_external_weights_and_the_hash_covers_them(
    small_limit: None, x: np.ndarray, tmp_path: Path
) -> None:
    a = export_onnx(pooled(), tmp_path / "a.onnx", (1, 1, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "a.onnx.data"]  # the exporter's files gathered
    with torch.no_grad():
        np.testing.assert_allclose(ort_out(a, x), pooled()(torch.from_numpy(x)).numpy(), atol=1e-5)
    b = export_onnx(pooled(-1.0), tmp_path / "b" / "a.onnx", (1, 1, 8, 8))  # same graph, other weights
    assert a.read_bytes() == b.read_bytes()  # the graph files are identical ...
    assert onnx_file.sha256(a) != onnx_file.sha256(b)  # ... the model hash is not
    a.with_name("a.onnx.data").unlink()
    with pytest.raises(Exception, match="external data file a.onnx.data is missing"):
        onnx_file.sha256(a)


def test_below_the_limit_the_exporter_writes_one_file(x: np.ndarray, tmp_path: Path) -> None:
    """torch's dynamo exporter always writes NAME.onnx.data; a model that fits is one file again."""
    out = export_onnx(pooled(), tmp_path / "m.onnx", (1, 1, 8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and onnx_file.files(out) == [out]
    with torch.no_grad():
        np.testing.assert_allclose(ort_out(out, x), pooled()(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_copy_renames_the_data_and_remove_takes_both(small_limit: None, x: np.ndarray, tmp_path: Path) -> None:
    src = export_onnx(pooled(), tmp_path / "src.onnx", (1, 1, 8, 8))
    dst = onnx_file.copy(src, tmp_path / "out" / "int8.onnx")
    assert [p.name for p in onnx_file.files(dst)] == ["int8.onnx", "int8.onnx.data"]
    np.testing.assert_allclose(ort_out(dst, x), ort_out(src, x), rtol=0, atol=0)
    onnx_file.remove(src)
    assert not src.exists() and not src.with_name("src.onnx.data").exists()
    np.testing.assert_allclose(ort_out(dst, x), ort_out(dst, x))  # the copy stands alone


def test_a_single_file_written_over_an_external_one_drops_its_stale_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(onnx_file, "SINGLE_FILE_LIMIT", 4096)
    path = export_onnx(pooled(), tmp_path / "m.onnx", (1, 1, 8, 8))
    assert path.with_name("m.onnx.data").is_file()
    monkeypatch.setattr(onnx_file, "SINGLE_FILE_LIMIT", 2**31 - 2**24)
    export_onnx(pooled(), path, (1, 1, 8, 8))
    assert not path.with_name("m.onnx.data").exists() and onnx_file.files(path) == [path]


def test_shape_inference_and_version_conversion_past_the_limit(
    small_limit: None, x: np.ndarray, tmp_path: Path
) -> None:
    """onnx's own functions serialize the model they are given, which fails past 2 GB: they run
    on a copy without the weights' bytes, and the converted model gets its weights back."""
    import onnx.shape_inference

    path = onnx_file.copy(export_onnx(cnn(), tmp_path / "m.onnx", (1, 1, 8, 8)), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert not onnx_file.fits_one_file(model)
    light, aside = onnx_file.weights_aside(model)
    assert light.ByteSize() < 2048 and sum(map(len, aside.values())) > 20_000
    assert all(t.raw_data for t in model.graph.initializer if t.dims)  # the original keeps its bytes
    ref = onnx.shape_inference.infer_shapes(model)
    got = onnx_file.infer_shapes(model)
    assert [str(v) for v in got.graph.value_info] == [str(v) for v in ref.graph.value_info] and ref.graph.value_info
    converted = onnx_file.convert_version(model, 18)
    assert converted.opset_import[0].version == 18
    onnx_file.save(converted, tmp_path / "v18.onnx")
    np.testing.assert_allclose(ort_out(tmp_path / "v18.onnx", x), ort_out(path, x), rtol=0, atol=1e-6)


def test_a_model_past_the_limit_converts_to_pytorch(small_limit: None, x: np.ndarray, tmp_path: Path) -> None:
    from edgebench.export.to_torch import onnx_to_torch

    path = export_onnx(cnn(), tmp_path / "m.onnx", (1, 1, 8, 8))
    model = onnx.load(str(path))
    assert not onnx_file.fits_one_file(model)
    module = onnx_to_torch(model, "m.onnx").module
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), ort_out(path, x), atol=1e-5)


def test_external_data_files_get_the_mode_a_plain_write_gives(small_limit: None, tmp_path: Path) -> None:
    import os

    out = onnx_file.save(onnx.load(str(export_onnx(cnn(), tmp_path / "a.onnx", (1, 1, 8, 8)))), tmp_path / "b.onnx")
    mask = os.umask(0)
    os.umask(mask)
    assert {f.stat().st_mode & 0o777 for f in onnx_file.files(out)} == {0o666 & ~mask}
