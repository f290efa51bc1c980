"""The torch backend on real TorchScript and ExportedProgram files (CPU here; CUDA tests skip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.backends.torch import TorchBackend, detect_format
from edgebench.errors import EdgebenchError

SHAPE = (1, 3, 16, 16)
QUICK = TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=7, min_duration_s=0.0)


def _reference(net, x: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fixture", ["small_torchscript", "small_pt2"])
def test_outputs_match_the_module(fixture: str, request: pytest.FixtureRequest, small_net, small_inputs) -> None:  # noqa: ANN001
    path = request.getfixturevalue(fixture)
    with TorchBackend(str(path), BackendOptions(threads=1, input_shape=SHAPE)) as be:
        spec = be.input_specs()[0]
        out = be.infer({spec.name: small_inputs[:4]})
        assert be.format == ("torchscript" if fixture == "small_torchscript" else "exported_program")
        env = be.environment()
    np.testing.assert_allclose(out[0], _reference(small_net, small_inputs[:4]), rtol=1e-5, atol=1e-5)
    assert env["intra_op_threads"] == 1  # recorded (applied: test_threads_option_sets_torchs_intra_op_pool)
    assert env["device"] == "cpu" and env["version"]


def test_threads_option_sets_torchs_intra_op_pool(small_pt2: Path, small_inputs) -> None:  # noqa: ANN001
    """The thread count torch actually uses afterwards, not the option echoed back."""
    import torch

    before = torch.get_num_threads()
    want = before + 1  # differs from whatever this process (or OMP_NUM_THREADS) set
    try:
        with TorchBackend(str(small_pt2), BackendOptions(threads=want)) as be:
            be.infer({"input": small_inputs[:1]})
            assert torch.get_num_threads() == want
            assert be.environment()["intra_op_threads"] == want
    finally:
        torch.set_num_threads(before)


def test_exported_program_declares_its_shape_with_a_dynamic_batch(small_pt2: Path) -> None:
    with TorchBackend(str(small_pt2), BackendOptions()) as be:  # no input_shape needed: .pt2 stores it
        shape = be.input_specs()[0].shape
    assert shape[1:] == (3, 16, 16)
    assert not isinstance(shape[0], int)  # the exported Dim("batch")


@pytest.mark.parametrize("mode", ["compute", "end_to_end"])
def test_timing_both_modes(mode: str, small_torchscript: Path, small_inputs: np.ndarray) -> None:
    with TorchBackend(str(small_torchscript), BackendOptions(threads=1, input_shape=SHAPE)) as be:
        res = be.time([{"input": small_inputs[:2]}, {"input": small_inputs[2:4]}], QUICK, mode=mode)
    s = res.summary()
    assert s["samples"] == 7 and s["warmup_iters"] == 2
    assert 0 < s["min"] <= s["p50"] <= s["max"]
    assert res.batch == 2


def test_torchscript_without_a_shape_is_a_user_error(small_torchscript: Path) -> None:
    with pytest.raises(EdgebenchError, match="stores no input shape"):
        TorchBackend(str(small_torchscript), BackendOptions()).open()


def test_corrupt_file_is_a_one_line_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(EdgebenchError) as info:
        TorchBackend(str(bad), BackendOptions(input_shape=SHAPE)).open()
    assert "broken.pt" in str(info.value) and "\n" not in str(info.value)


def test_truncated_torchscript_is_a_user_error(small_torchscript: Path, tmp_path: Path) -> None:
    data = small_torchscript.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgebenchError, match="truncated.pt"):
        TorchBackend(str(bad), BackendOptions(input_shape=SHAPE)).open()


def test_format_detection(small_torchscript: Path, small_pt2: Path, small_onnx: Path) -> None:
    assert detect_format(small_torchscript) == "torchscript"
    assert detect_format(small_pt2) == "exported_program"
    with pytest.raises(EdgebenchError, match="not a TorchScript"):
        detect_format(small_onnx)


def _graphs_compiled() -> int:
    """How many graphs torch.compile (dynamo) has captured in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_torch_compile_option_compiles_the_module(small_pt2: Path, small_net, small_inputs) -> None:  # noqa: ANN001
    """compile=<backend>: dynamo captures the model's graph on the first call (the eager backend
    runs that graph without building kernels, so this is fast); without compile nothing is captured."""
    before = _graphs_compiled()
    with TorchBackend(str(small_pt2), BackendOptions(threads=1)) as be:
        be.infer({"input": small_inputs[:2]})
    assert _graphs_compiled() == before  # plain eager: no graph captured
    with TorchBackend(str(small_pt2), BackendOptions(threads=1, compile="eager")) as be:
        out = be.infer({"input": small_inputs[:2]})
        env = be.environment()
    assert _graphs_compiled() > before
    assert env["compile"] is True and env["compile_backend"] == "eager"
    np.testing.assert_allclose(out[0], _reference(small_net, small_inputs[:2]), rtol=1e-5, atol=1e-5)
    with pytest.raises(EdgebenchError, match="compile expects true, false or a torch.compile backend"):
        TorchBackend(str(small_pt2), BackendOptions(compile="no-such-backend")).open()


@pytest.mark.slow  # inductor compiles kernels: ~30 s
def test_torch_compile_true_builds_inductor_kernels(small_pt2: Path, small_net, small_inputs) -> None:  # noqa: ANN001
    from torch._dynamo.utils import counters

    opts = BackendOptions(threads=1, compile=True)
    before = (
        _graphs_compiled(),
        int(counters["inductor"]["fxgraph_cache_miss"] + counters["inductor"]["fxgraph_cache_hit"]),
    )
    with TorchBackend(str(small_pt2), opts) as be:
        try:
            out = be.infer({"input": small_inputs[:2]})
        except Exception as exc:  # noqa: BLE001 - inductor needs a C++ toolchain
            pytest.skip(f"torch.compile cannot build kernels here: {type(exc).__name__}: {str(exc)[:120]}")
        env = be.environment()
    after = (
        _graphs_compiled(),
        int(counters["inductor"]["fxgraph_cache_miss"] + counters["inductor"]["fxgraph_cache_hit"]),
    )
    assert env["compile_backend"] == "inductor"
    assert after[0] > before[0] and after[1] > before[1]  # a graph captured and lowered by inductor
    np.testing.assert_allclose(out[0], _reference(small_net, small_inputs[:2]), rtol=1e-4, atol=1e-4)


def test_torch_compile_refuses_torchscript(small_torchscript: Path) -> None:
    with pytest.raises(EdgebenchError, match="needs an ExportedProgram"):
        TorchBackend(str(small_torchscript), BackendOptions(input_shape=SHAPE, compile=True)).open()


# ---- CUDA: these run where a GPU is present and say why they skip elsewhere -------------------
def _cuda_or_skip() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: torch.cuda.is_available() is False")


@pytest.mark.gpu
def test_cuda_compute_latency_matches_a_bare_cuda_event_loop(small_pt2: Path) -> None:
    """The harness's compute p50 on CUDA is within 3 % of a bare CUDA-event timing loop."""
    _cuda_or_skip()
    import torch

    x = np.random.default_rng(0).random((32, 3, 16, 16), dtype=np.float32)
    opts = BackendOptions(device="cuda")
    with TorchBackend(str(small_pt2), opts) as be:
        ours = be.time(
            [{"input": x}],
            TimingBudget(warmup_iters=50, warmup_s=0.2, iterations=300, min_duration_s=1.0),
            mode="compute",
        ).summary()["p50"]
        xt = torch.from_numpy(x).cuda()
        times = []
        with torch.inference_mode():
            for _ in range(300):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                be._module(xt)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        env = be.environment()
    bare = float(np.percentile(times, 50))
    assert abs(ours - bare) / bare <= 0.03, (ours, bare)
    assert env["gpu_max_memory_allocated_mb"] > 0


@pytest.mark.gpu
def test_cuda_memory_from_the_framework_and_nvml(small_pt2: Path) -> None:
    _cuda_or_skip()
    with TorchBackend(str(small_pt2), BackendOptions(device="cuda")) as be:
        be.infer({"input": np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32)})
        env = be.environment()
    assert env["gpu_max_memory_allocated_mb"] > 0 and env["gpu_name"]
    try:
        import pynvml
    except ImportError:
        pytest.skip("nvidia-ml-py (pynvml) is not installed: NVML memory is not readable")
    pynvml.nvmlInit()
    try:
        used = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used
    finally:
        pynvml.nvmlShutdown()
    assert used / 1048576.0 >= env["gpu_max_memory_allocated_mb"]


def test_cuda_request_without_a_gpu_is_a_user_error(small_pt2: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the no-GPU error path cannot be reached")
    with pytest.raises(EdgebenchError, match="cuda"):
        TorchBackend(str(small_pt2), BackendOptions(device="cuda")).open()
