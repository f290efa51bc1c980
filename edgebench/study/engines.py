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
from typing import TYPE_CHECKING, Any, Literal, get_args

from edgebench.agent.protocol import SessionJob
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.compress.quantize import QuantSpec

# a candidate's typed engine fields (study/config.py CandidateConfig)
Engine = Literal["onnxruntime", "tensorrt"]
TrtPrecision = Literal["fp16", "int8"]
TrtBuilder = Literal["api", "trtexec"]
ENGINES = get_args(Engine)
TRT_PRECISIONS = get_args(TrtPrecision)
TRT_BUILDERS = get_args(TrtBuilder)
PREDICT_BATCH = 128  # the replay job's batch: the engine's optimization profile must cover it


def check_engine(engine: str, precision: str | None, builder: str | None, quantize: QuantSpec | None) -> None:
    """Refuse engine settings that do not go together, or with the candidate's quantize recipe.

    Messages name the candidate's keys (``precision: ...``); the study config places them."""
    if engine == "onnxruntime":
        if precision is not None or builder is not None:
            raise EdgebenchError(
                "'precision' and 'builder' choose how a TensorRT engine is built; "
                f"expected engine: tensorrt with them, found engine: {engine}"
            )
        return
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


def skip_reason(candidate: Any, device_spec: Any) -> str | None:
    """Why *candidate* cannot be measured on *device_spec* (None: it can)."""
    if getattr(candidate, "engine", "onnxruntime") != "tensorrt":
        return None
    runtimes = list(getattr(device_spec, "runtimes", None) or [])
    if "tensorrt" not in runtimes:
        return (
            f"engine tensorrt: device '{device_spec.name}' does not list the tensorrt runtime "
            f"(runtimes: {', '.join(runtimes) or 'none'}); add it to the device to build and measure the engine there"
        )
    return None


def apply_engine(job: SessionJob, candidate: Any, batches: tuple[int, ...] | list[int]) -> SessionJob:
    """*job* pointed at the candidate's engine: backend, precision and TensorRT build options
    (the optimization profile covers every profiled batch and the replay batch)."""
    if getattr(candidate, "engine", "onnxruntime") != "tensorrt":
        return job
    options = dataclasses.replace(
        job.options,
        device="cuda",
        precision=candidate.precision,
        batches=tuple(sorted({1, PREDICT_BATCH, *[int(b) for b in batches]})),
        opt_batch=1,
        builder=candidate.builder or "api",
    )
    return dataclasses.replace(job, backend="tensorrt", options=options)


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
