"""TensorRT: the engine cache key, profile shapes and builder plan (pure), and the backend itself
where tensorrt and a GPU exist (skipped with the reason elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.backends.registry import availability
from edgebench.backends.tensorrt import (
    TrtBuildOptions,
    build_plan,
    engine_cache_key,
    layer_rows,
    profile_shapes,
    trtexec_build_command,
)
from edgebench.errors import EdgebenchError

SHAPES = ((1, 3, 224, 224), (1, 3, 224, 224), (32, 3, 224, 224))
BASE = dict(
    onnx_sha256="a" * 64, device_name="NVIDIA Jetson Orin Nano", trt_version="10.3.0", precision="fp16", shapes=SHAPES
)


def test_cache_key_changes_with_every_component() -> None:
    key = engine_cache_key(**BASE)
    assert key == engine_cache_key(**BASE)  # deterministic
    changes = [
        {"onnx_sha256": "b" * 64},
        {"device_name": "NVIDIA GeForce RTX 4090"},
        {"trt_version": "10.4.0"},
        {"precision": "int8"},
        {"shapes": ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))},
        {"shapes": None},
    ]
    keys = {engine_cache_key(**{**BASE, **c}) for c in changes}
    assert key not in keys and len(keys) == len(changes)
    assert engine_cache_key(**BASE, workspace_mb=2048) != key
    # same GPU name, another compute capability (e.g. a MIG or a different SKU): another engine
    assert engine_cache_key(**BASE, compute_capability="8.7") != engine_cache_key(**BASE, compute_capability="8.9")
    assert engine_cache_key(**BASE, builder="trtexec") != key


def test_profile_shapes_cover_the_batches() -> None:
    opts = TrtBuildOptions(batches=(1, 8, 32))
    assert profile_shapes(("batch", 3, 224, 224), None, opts) == ((1, 3, 224, 224), (1, 3, 224, 224), (32, 3, 224, 224))
    opts = TrtBuildOptions(batches=(1, 8, 32), opt_batch=8)
    assert profile_shapes(("N", 3, "H", "W"), (3, 64, 96), opts) == ((1, 3, 64, 96), (8, 3, 64, 96), (32, 3, 64, 96))
    assert profile_shapes((1, 3, 224, 224), None, opts) is None  # a static model needs no profile


def test_profile_shapes_refuse_unfixed_or_mismatched_dims() -> None:
    opts = TrtBuildOptions()
    with pytest.raises(EdgebenchError, match="dynamic"):
        profile_shapes(("N", 3, "H", "W"), None, opts)
    with pytest.raises(EdgebenchError, match="dimension 2 = 224, found 64"):
        profile_shapes(("N", 3, 224, 224), (3, 64, 64), opts)


def test_build_plan_per_precision() -> None:
    assert build_plan(TrtBuildOptions(precision="fp32")) == {
        "flags": [],
        "workspace_bytes": 1024 << 20,
        "profiling_verbosity": "DETAILED",  # layer names for the per-layer profile
    }
    assert build_plan(TrtBuildOptions(precision="fp16", workspace_mb=256))["flags"] == ["FP16"]
    assert build_plan(TrtBuildOptions(precision="int8"))["flags"] == ["INT8", "FP16"]


def test_trtexec_build_command_matches_the_api_plan() -> None:
    shapes = ((1, 3, 32, 32), (1, 3, 32, 32), (128, 3, 32, 32))
    argv = trtexec_build_command(
        "/usr/src/tensorrt/bin/trtexec",
        "m.onnx",
        "e.plan",
        TrtBuildOptions(precision="int8", workspace_mb=512),
        "input",
        shapes,
    )
    assert argv == [
        "/usr/src/tensorrt/bin/trtexec",
        "--onnx=m.onnx",
        "--saveEngine=e.plan",
        "--memPoolSize=workspace:512M",  # TensorRT 10 spelling (--workspace is gone)
        "--profilingVerbosity=detailed",
        "--skipInference",
        "--int8",
        "--fp16",
        "--minShapes=input:1x3x32x32",
        "--optShapes=input:1x3x32x32",
        "--maxShapes=input:128x3x32x32",
    ]
    fp32 = trtexec_build_command("trtexec", "m.onnx", "e.plan", TrtBuildOptions(), "input", None)
    assert not any(a in fp32 for a in ("--fp16", "--int8")) and not any("Shapes" in a for a in fp32)


def test_layer_rows_aggregate_the_engine_profiler() -> None:
    # what report_layer_time delivers: every layer once per inference, three inferences
    records = [("z_conv + relu", 0.5), ("fc", 0.1), ("a_pool", 0.05)] * 3
    rows = layer_rows(records, top=2)
    assert [r["layer"] for r in rows] == ["z_conv + relu", "fc"]  # by time, not by name
    assert (
        rows[0]["calls"] == 3 and rows[0]["total_ms"] == pytest.approx(1.5) and rows[0]["mean_ms"] == pytest.approx(0.5)
    )
    assert rows[0]["share"] == pytest.approx(1.5 / 1.95) and rows[0]["op_type"] == "z_conv + relu"
    assert layer_rows([]) == []


@pytest.mark.parametrize(
    ("device", "provider", "precision", "first"),
    [
        ("cpu", None, "fp32", "CPUExecutionProvider"),
        ("cuda:1", None, "fp32", ("CUDAExecutionProvider", {"device_id": 1})),
        (
            "cuda",
            "tensorrt",
            "int8",
            ("TensorrtExecutionProvider", {"device_id": 0, "trt_fp16_enable": True, "trt_int8_enable": True}),
        ),
    ],
)
def test_onnxruntime_execution_providers(device: str, provider: str | None, precision: str, first: object) -> None:
    from edgebench.backends.onnxruntime import ort_providers

    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = ort_providers(device, provider, every, precision)
    assert providers[0] == first and providers[-1] == "CPUExecutionProvider"
    with pytest.raises(EdgebenchError, match="provider tensorrt requested, but this onnxruntime build has only"):
        ort_providers("cuda", "tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"], "fp16")
    cached = ort_providers("cuda", "tensorrt", every, "fp16", "/tmp/trt")[0][1]
    assert cached["trt_engine_cache_enable"] is True and cached["trt_engine_cache_path"] == "/tmp/trt"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "fp8"}, "precision"),
        ({"workspace_mb": 0}, "workspace_mb"),
        ({"batches": ()}, "batches"),
        ({"batches": (1, 8), "opt_batch": 16}, "opt_batch"),
    ],
)
def test_build_options_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(EdgebenchError, match=message):
        TrtBuildOptions(**kwargs)


def test_build_options_from_backend_options() -> None:
    opts = TrtBuildOptions.from_backend_options(
        BackendOptions(precision="int8", batches=(1, 4), opt_batch=4, workspace_mb=64)
    )
    assert opts == TrtBuildOptions(precision="int8", batches=(1, 4), opt_batch=4, workspace_mb=64)


def _tensorrt_or_skip() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"tensorrt is not importable here: {exc}")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: torch.cuda.is_available() is False")


def test_registry_reports_tensorrt_with_a_reason() -> None:
    row = next(r for r in availability() if r["name"] == "tensorrt")
    try:
        import tensorrt  # noqa: F401

        assert row["available"] is True
    except ImportError:
        assert row["available"] is False and "tensorrt" in row["reason"]


def test_open_without_tensorrt_is_a_clear_error(small_onnx: Path) -> None:
    from edgebench.backends.tensorrt import TensorRTBackend

    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed: the missing-package error cannot be reached")
    except ImportError:
        pass
    with pytest.raises(EdgebenchError, match="tensorrt Python package is not importable"):
        TensorRTBackend(str(small_onnx)).open()


@pytest.mark.gpu
def test_build_run_and_cache_an_engine(small_onnx: Path, small_net, tmp_path: Path) -> None:  # noqa: ANN001
    _tensorrt_or_skip()
    import torch

    from edgebench.backends.tensorrt import TensorRTBackend

    x = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
    opts = BackendOptions(
        device="cuda",
        precision="fp32",
        batches=(1, 4),
        engine_cache_dir=str(tmp_path),
        input_shape=(1, 3, 16, 16),
    )
    with TensorRTBackend(str(small_onnx), opts) as be:
        assert be.engine_cached is False
        out = be.infer({be.input_specs()[0].name: x})[0]
        res = be.time(
            [{be.input_specs()[0].name: x}],
            TimingBudget(warmup_iters=5, iterations=20, min_duration_s=0.0),
            mode="compute",
        )
    with torch.inference_mode():
        ref = small_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
    assert res.summary()["samples"] == 20
    with TensorRTBackend(str(small_onnx), opts) as be:
        assert be.engine_cached is True  # same key: loaded from the cache, not rebuilt
