"""Per-operator profile from ONNX Runtime on a real model: the operators are the model's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.backends.onnxruntime import OnnxRuntimeBackend
from edgebench.backends.options import BackendOptions, TimingBudget
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
