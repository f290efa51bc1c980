"""What a backend is asked to do: its options and the timing budget, as typed values.

Standard library only (and importable on Python 3.8): the agent's job protocol
(:mod:`edgebench.agent.protocol`) carries these over JSON to devices with an old Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgebench.errors import EdgebenchError

COLD_START_ITERS = 10  # first iterations reported apart from the steady state (as Qualcomm AI Hub does)

# The options every backend understands; the others are read by the backends that list them in
# ``Capabilities.options`` (a backend given one it does not list refuses it, see
# :func:`check_options`).
COMMON_OPTIONS = ("threads", "device", "precision", "profile_ops")


@dataclass(frozen=True)
class BackendOptions:
    """Every option any backend reads, each typed; the backend-specific ones say whose they are."""

    threads: int | None = None  # intra-op threads; None = runtime default
    device: str = "cpu"  # "cpu" or "cuda" (or "cuda:N")
    precision: str | None = None  # fp32, fp16, int8: informational, except a TensorRT engine builds it
    profile_ops: bool = False  # collect a per-operator profile where supported
    # onnxruntime: "all" (what an application gets: fused int8 kernels) or "none" (every node as
    # written: QuantizeLinear/DequantizeLinear run literally, the exact QDQ arithmetic)
    graph_optimization: str = "all"
    provider: str | None = None  # onnxruntime: execution provider cpu | cuda | tensorrt
    trt_cache_dir: str | None = None  # onnxruntime: engine cache of its TensorRT execution provider
    # torch, tensorrt, null: the profiled input shape, batch first (TorchScript stores none)
    input_shape: tuple[int, ...] | None = None
    compile: bool | str = False  # torch: True = torch.compile (inductor), or a torch.compile backend name
    classes: int = 10  # null: logits per item
    batches: tuple[int, ...] = (1,)  # tensorrt: batch sizes the optimization profile covers
    opt_batch: int | None = None  # tensorrt: the profile's optimum (default: the smallest batch)
    workspace_mb: int = 1024  # tensorrt: builder workspace
    builder: str = "api"  # tensorrt: "api" (Python API) or "trtexec"
    engine_cache_dir: str | None = None  # tensorrt: where built engines are kept (default: the cache)
    trtexec: str | None = None  # tensorrt: the trtexec binary (default: on PATH, then JetPack's)

    def set_options(self) -> list[str]:
        """Names of the options that differ from their defaults (what a backend must accept)."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != f.default]


def check_options(backend: str, options: BackendOptions, takes: tuple[str, ...]) -> None:
    """Refuse an option *backend* does not read (it reads :data:`COMMON_OPTIONS` and *takes*),
    so a misdirected option fails up front instead of being silently ignored."""
    refused = [n for n in options.set_options() if n not in COMMON_OPTIONS and n not in takes]
    if refused:
        raise EdgebenchError(
            f"backend {backend}: option {', '.join(refused)} is not one it takes; expected some of "
            f"{', '.join(COMMON_OPTIONS + takes)}"
        )


@dataclass(frozen=True)
class TimingBudget:
    """How long to measure: warm-up by count *and* time, iterations by count *and* duration.

    Warm-up runs until both ``warmup_iters`` and ``warmup_s`` are reached. Measurement runs at
    least ``iterations`` times and at least ``min_duration_s`` seconds, and stops at
    ``max_iterations`` whatever the duration.
    """

    warmup_iters: int = 10
    warmup_s: float = 0.2
    iterations: int = 50
    min_duration_s: float = 1.0
    max_iterations: int = 100_000

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.max_iterations < self.iterations:
            raise EdgebenchError(
                f"timing budget: expected 1 <= iterations <= max_iterations, found "
                f"iterations={self.iterations}, max_iterations={self.max_iterations}"
            )
        if self.warmup_iters < 0 or self.warmup_s < 0 or self.min_duration_s < 0:
            raise EdgebenchError("timing budget: warm-up and durations must not be negative")
