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
from typing import Any

from edgebench.agent.protocol import SessionJob
from edgebench.errors import EdgebenchError

ENGINES = ("onnxruntime", "tensorrt")
TRT_PRECISIONS = ("fp16", "int8")
TRT_BUILDERS = ("api", "trtexec")
PREDICT_BATCH = 128  # the replay job's batch: the engine's optimization profile must cover it


def parse_engine(item: dict, where: str) -> tuple[str, str | None, str | None]:
    """``(engine, precision, builder)`` from a candidate mapping, validated against its quantize recipe."""
    engine = item.get("engine", "onnxruntime")
    precision = item.get("precision")
    builder = item.get("builder")
    if engine not in ENGINES:
        raise EdgebenchError(f"{where}.engine: expected one of {list(ENGINES)}, found {engine!r}")
    if engine == "onnxruntime":
        if precision is not None or builder is not None:
            raise EdgebenchError(
                f"{where}: 'precision' and 'builder' choose how a TensorRT engine is built; "
                f"expected engine: tensorrt with them, found engine: {engine}"
            )
        return engine, None, None
    if precision not in TRT_PRECISIONS:
        raise EdgebenchError(
            f"{where}.precision: expected one of {list(TRT_PRECISIONS)} for engine tensorrt, found {precision!r}"
        )
    if builder is not None and builder not in TRT_BUILDERS:
        raise EdgebenchError(f"{where}.builder: expected one of {list(TRT_BUILDERS)}, found {builder!r}")
    preset = (item.get("quantize") or {}).get("preset") if isinstance(item.get("quantize"), dict) else None
    if precision == "int8" and preset != "tensorrt":
        raise EdgebenchError(
            f"{where}: engine tensorrt with precision int8 takes its scales from the symmetric S8S8 QDQ "
            f"artifact; expected quantize: {{preset: tensorrt}}, found {item.get('quantize')!r}"
        )
    if precision == "fp16" and item.get("quantize") is not None:
        raise EdgebenchError(
            f"{where}: engine tensorrt with precision fp16 builds from the fp32 model; expected no quantize "
            f"recipe (use precision: int8 for the QDQ artifact), found {item.get('quantize')!r}"
        )
    return engine, precision, builder


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
