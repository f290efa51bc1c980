"""TensorRT: the engine cache key, profile shapes and builder plan (pure), and the backend itself
where tensorrt and a GPU exist (skipped with the reason elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.backends.base import BackendOptions, TimingBudget
from edgebench.backends.registry import availability
from edgebench.backends.tensorrt import TrtBuildOptions, build_plan, engine_cache_key, profile_shapes
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
    assert build_plan(TrtBuildOptions(precision="fp32")) == {"flags": [], "workspace_bytes": 1024 << 20}
    assert build_plan(TrtBuildOptions(precision="fp16", workspace_mb=256))["flags"] == ["FP16"]
    assert build_plan(TrtBuildOptions(precision="int8"))["flags"] == ["INT8", "FP16"]


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
    opts = TrtBuildOptions.from_backend_options(BackendOptions(precision="int8", extra=(("batches", [1, 4]),)))
    assert opts.precision == "int8" and opts.batches == (1, 4)


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
        extra=(("batches", [1, 4]), ("engine_cache_dir", str(tmp_path)), ("input_shape", [1, 3, 16, 16])),
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
