"""Which engine runs a candidate on a device: ONNX Runtime (default) or a TensorRT engine built
on the device by the agent.

A candidate names ``engine: tensorrt`` with ``precision: fp16 | int8``. fp16 builds from the fp32
ONNX artifact; int8 is explicit quantization and needs the symmetric S8S8 QDQ artifact
(``quantize: {preset: tensorrt}``), whose scales TensorRT takes from the graph. Optional
``builder: trtexec`` builds with the trtexec binary instead of the Python API. A device that does
not list the ``tensorrt`` runtime skips such a candidate: its measurements are recorded as
skipped with the reason, and its verdict is UNMEASURED.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from edgebench.agent.protocol import SessionJob
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.backends.base import Capabilities
    from edgebench.compress.quantize import QuantSpec

# a candidate's typed engine fields (study/config.py CandidateConfig)
Engine = Literal["onnxruntime", "tensorrt"]
TrtPrecision = Literal["fp16", "int8"]
TrtBuilder = Literal["api", "trtexec"]
ENGINES = get_args(Engine)
TRT_PRECISIONS = get_args(TrtPrecision)
TRT_BUILDERS = get_args(TrtBuilder)
PREDICT_BATCH = 128  # the replay job's batch: the engine's optimization profile must cover it


@dataclass(frozen=True)
class DeployEngine:
    """One way a candidate's artifact is deployed (its ``engine:`` value): the backend that runs
    it, the runtime a device must list to run it, and the engine's own recipe check. What a job
    on it needs (the device kind, a fixed set of batch sizes, a build precision, a builder) is
    read from that backend's :class:`~edgebench.backends.base.Capabilities`, not from its name."""

    name: str
    backend: str  # edgebench.backends.registry name
    runtime: str | None  # the device must list it in ``runtimes`` (None: the agent's own ONNX Runtime)
    check: Callable[[str | None, str | None, QuantSpec | None], None]


def _check_onnxruntime(precision: str | None, builder: str | None, quantize: QuantSpec | None) -> None:
    if precision is not None or builder is not None:
        raise EdgebenchError(
            "'precision' and 'builder' choose how a TensorRT engine is built; "
            "expected engine: tensorrt with them, found engine: onnxruntime"
        )


def _check_tensorrt(precision: str | None, builder: str | None, quantize: QuantSpec | None) -> None:
    if precision is None:
        raise EdgebenchError(f"precision: expected one of {list(TRT_PRECISIONS)} for engine tensorrt, found none")
    found = "none" if quantize is None else f"{{preset: {quantize.preset}}}"
    if precision == "int8" and (quantize is None or quantize.preset != "tensorrt"):
        raise EdgebenchError(
            "engine tensorrt with precision int8 takes its scales from the symmetric S8S8 QDQ "
            f"artifact; expected quantize: {{preset: tensorrt}}, found {found}"
        )
    if precision == "fp16" and quantize is not None:
        raise EdgebenchError(
            "engine tensorrt with precision fp16 builds from the fp32 model; expected no quantize "
            f"recipe (use precision: int8 for the QDQ artifact), found {found}"
        )


# the deploy-engine registry: adding one is a backend (edgebench/backends/) and one entry here
DEPLOY_ENGINES: dict[str, DeployEngine] = {
    e.name: e
    for e in (
        DeployEngine("onnxruntime", "onnxruntime", None, _check_onnxruntime),
        DeployEngine("tensorrt", "tensorrt", "tensorrt", _check_tensorrt),
    )
}


def _capabilities(engine: DeployEngine) -> Capabilities:
    from edgebench.backends.registry import backend_class

    return backend_class(engine.backend).capabilities


def check_engine(engine: str, precision: str | None, builder: str | None, quantize: QuantSpec | None) -> None:
    """Refuse engine settings that do not go together, or with the candidate's quantize recipe.

    Messages name the candidate's keys (``precision: ...``); the study config places them."""
    DEPLOY_ENGINES[engine].check(precision, builder, quantize)


def skip_reason(candidate: Any, device_spec: Any) -> str | None:
    """Why *candidate* cannot be measured on *device_spec* (None: it can): its engine needs a
    runtime the device does not list."""
    engine = DEPLOY_ENGINES[getattr(candidate, "engine", "onnxruntime")]
    runtimes = list(getattr(device_spec, "runtimes", None) or [])
    if engine.runtime is None or engine.runtime in runtimes:
        return None
    return (
        f"engine {engine.name}: device '{device_spec.name}' does not list the {engine.runtime} runtime "
        f"(runtimes: {', '.join(runtimes) or 'none'}); add it to the device to build and measure the engine there"
    )


def apply_engine(job: SessionJob, candidate: Any, batches: tuple[int, ...] | list[int]) -> SessionJob:
    """*job* pointed at the candidate's engine: its backend, and what the backend's capabilities
    ask for: its device when it does not run on the CPU, the candidate's build precision, a fixed
    set of batch sizes (every profiled batch and the replay batch) and the builder."""
    engine = DEPLOY_ENGINES[getattr(candidate, "engine", "onnxruntime")]
    if engine.backend == job.backend:
        return job
    caps = _capabilities(engine)
    changes: dict[str, Any] = {}
    if "cpu" not in caps.devices:
        changes["device"] = caps.devices[0]
    precision = getattr(candidate, "precision", None)
    if precision is not None and precision in caps.builds_precisions:
        changes["precision"] = precision
    if caps.needs_batches:
        changes["batches"] = tuple(sorted({1, PREDICT_BATCH, *[int(b) for b in batches]}))
        changes["opt_batch"] = 1
    if caps.takes("builder"):
        changes["builder"] = getattr(candidate, "builder", None) or "api"
    return dataclasses.replace(job, backend=engine.backend, options=dataclasses.replace(job.options, **changes))


def skipped_record(reason: str, artifact_sha256: str | None) -> dict:
    """What the run folder stores for a measurement that was skipped (resume sees it as done)."""
    return {"skipped": reason, "artifact_sha256": artifact_sha256}


def record_skips(store: Any, candidate: str, device: str, kinds: list[str], reason: str, sha: str | None) -> None:
    """Store a skipped record for every measurement *kinds* of candidate x device."""
    for kind in kinds:
        store.save(candidate, device, kind, skipped_record(reason, sha))


def clear_skips(store: Any, candidate: str, device: str) -> None:
    """Forget skipped records of candidate x device (the device can measure it now), so resume
    measures instead of keeping the skip."""
    for kind in ("profile", "replay", "blackbox"):
        data = store.load(candidate, device, kind)
        if data is not None and data.get("skipped"):
            store.measurement_path(candidate, device, kind).unlink()


def skipped_reason(*measurements: dict | None) -> str | None:
    """The skip reason recorded in any of *measurements* (None: none was skipped)."""
    return next((m["skipped"] for m in measurements if m and m.get("skipped")), None)
