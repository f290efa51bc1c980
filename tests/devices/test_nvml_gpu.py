"""NVML telemetry on a real NVIDIA GPU: the sampler reads the board while CUDA work runs.
Skipped, saying why, where torch sees no GPU or NVML does not load; run by scripts/gpu-check.sh."""

from __future__ import annotations

import time

import pytest

from edgebench.agent.telemetry.nvml import MB, NvmlSampler, nvml_unavailable_reason


@pytest.mark.gpu
def test_nvml_sees_the_memory_and_the_gpu_that_cuda_work_uses() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: torch.cuda.is_available() is False")
    reason = nvml_unavailable_reason()
    if reason is not None:
        pytest.skip(f"NVML is unavailable here: {reason}")
    sampler = NvmlSampler(interval_s=0.05)
    sampler.start()
    try:
        held = torch.empty(512 * 1024 * 1024 // 4, device="cuda")  # 512 MiB held while sampled
        a = torch.randn(4096, 4096, device="cuda")
        until = time.perf_counter() + 1.0
        while time.perf_counter() < until:
            a = a @ a
            a = a / a.norm()
            torch.cuda.synchronize()
        allocated = torch.cuda.memory_allocated() / MB
    finally:
        out = sampler.stop()
    del held
    assert out["source"] == "nvml" and out["samples"] >= 5
    name = torch.cuda.get_device_name()
    assert out["gpu_name"] and (out["gpu_name"] in name or name in out["gpu_name"]), (out["gpu_name"], name)
    assert out["gpu_mem_used_peak_mb"] >= allocated >= 512  # device-wide use covers what torch holds
    if out["gpu_util_peak_pct"] is not None:  # a board may not report utilisation (stays None)
        assert out["gpu_util_peak_pct"] > 0
