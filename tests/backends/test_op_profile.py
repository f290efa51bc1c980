"""Per-operator profile from ONNX Runtime on a real model: the operators are the model's own."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgebench.backends.onnxruntime import OnnxRuntimeBackend
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError
from edgebench.measure.onnx_stats import onnx_stats

# kernels ONNX Runtime creates itself when it fuses or re-lays-out the graph
ORT_INTERNAL = {"FusedConv", "FusedGemm", "ReorderInput", "ReorderOutput", "MemcpyFromHost", "MemcpyToHost"}


def test_op_profile_matches_the_model(small_onnx: Path, small_inputs: np.ndarray) -> None:
    iterations = 12
    with OnnxRuntimeBackend(str(small_onnx), BackendOptions(threads=1, profile_ops=True)) as be:
        name = be.input_specs()[0].name
        be.time(
            [{name: small_inputs[:2]}],
            TimingBudget(warmup_iters=3, warmup_s=0.0, iterations=iterations, min_duration_s=0.0),
            mode="end_to_end",
        )
        ops = be.op_profile()
    assert ops, "profiling was on, yet no operator was reported"
    model_ops = set(onnx_stats(small_onnx).op_types)
    seen = {o["op_type"] for o in ops}
    assert seen <= model_ops | ORT_INTERNAL, seen - model_ops - ORT_INTERNAL
    assert "Conv" in seen or "FusedConv" in seen
    assert sum(o["share"] for o in ops) <= 1.0 + 1e-9
    assert all(0 <= o["share"] <= 1 and o["total_ms"] >= 0 for o in ops)
    assert [o["total_ms"] for o in ops] == sorted((o["total_ms"] for o in ops), reverse=True)
    conv = next(o for o in ops if o["op_type"] in ("Conv", "FusedConv"))
    # the small net has two convolutions, each run once per inference (warm-up included)
    assert conv["node_count"] == 2
    assert conv["calls"] >= 2 * iterations


def test_no_profile_unless_asked(small_onnx: Path, small_inputs: np.ndarray) -> None:
    with OnnxRuntimeBackend(str(small_onnx), BackendOptions(threads=1)) as be:
        be.infer({be.input_specs()[0].name: small_inputs[:1]})
        assert be.op_profile() is None


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR (and this process's tempfile) pointed at a folder of this test's own."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    assert tempfile.gettempdir() == str(tmp_path)
    return tmp_path


def _ortprof(folder: Path) -> list[Path]:
    return sorted(folder.glob("edgebench-ortprof-*"))


@pytest.mark.parametrize("read", ["while_open", "after_close"])
def test_op_profile_leaves_no_folder_behind(
    small_onnx: Path, small_inputs: np.ndarray, private_tmp: Path, read: str
) -> None:
    # after_close is the agent's order (jobs._op_profile_pass): close(), then op_profile()
    with OnnxRuntimeBackend(str(small_onnx), BackendOptions(threads=1, profile_ops=True)) as be:
        assert len(_ortprof(private_tmp)) == 1  # ORT's trace goes to TMPDIR: the test sees it
        name = be.input_specs()[0].name
        for _ in range(3):
            be.infer({name: small_inputs[:1]})
        ops = be.op_profile() if read == "while_open" else None
        be.close()
        ops = ops or be.op_profile()
    assert ops and ("Conv" in {o["op_type"] for o in ops} or "FusedConv" in {o["op_type"] for o in ops})
    assert _ortprof(private_tmp) == [] and list(private_tmp.rglob("*.json")) == []


def test_a_failed_run_leaves_no_folder_behind(small_onnx: Path, small_inputs: np.ndarray, private_tmp: Path) -> None:
    with pytest.raises(EdgebenchError):
        with OnnxRuntimeBackend(str(small_onnx), BackendOptions(threads=1, profile_ops=True)) as be:
            name = be.input_specs()[0].name
            be.infer({name: small_inputs[:1]})
            be.infer({name: small_inputs[:1, :2]})  # two channels where the model takes three
    assert _ortprof(private_tmp) == [] and list(private_tmp.rglob("*.json")) == []


def test_a_failed_load_leaves_no_folder_behind(private_tmp: Path) -> None:
    bad = private_tmp / "corrupt.onnx"
    bad.write_bytes(b"this is not protobuf" * 10)
    with pytest.raises(EdgebenchError, match="onnxruntime could not load"):
        OnnxRuntimeBackend(str(bad), BackendOptions(threads=1, profile_ops=True)).open()
    assert _ortprof(private_tmp) == []
