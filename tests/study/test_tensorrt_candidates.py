"""TensorRT candidates in a study: config validation, the job each one becomes, and, end to end
on the local device (which has no TensorRT), the skip recorded as UNMEASURED with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgebench.agent.protocol import SessionJob
from edgebench.backends.options import BackendOptions
from edgebench.backends.tensorrt import TensorRTBackend
from edgebench.devices.inventory import DeviceSpec
from edgebench.errors import EdgebenchError
from edgebench.study.config import load_study, study_from_dict
from edgebench.study.engines import apply_engine, clear_skips, record_skips, skip_reason
from edgebench.study.pipeline import Pipeline
from edgebench.study.store import RunStore

TRT_INT8 = {
    "name": "trt-int8",
    "engine": "tensorrt",
    "precision": "int8",
    "quantize": {"preset": "tensorrt", "calib_samples": 32},
}
TRT_FP16 = {"name": "trt-fp16", "engine": "tensorrt", "precision": "fp16", "builder": "trtexec"}


def _cands(*items: dict) -> dict:
    return {c.name: c for c in study_from_dict({"candidates": ["base", *items]}).candidates}


def test_candidates_name_an_engine_and_precision() -> None:
    c = _cands(TRT_INT8, TRT_FP16)
    assert (c["trt-int8"].engine, c["trt-int8"].precision, c["trt-int8"].builder) == ("tensorrt", "int8", None)
    assert (c["trt-fp16"].engine, c["trt-fp16"].precision, c["trt-fp16"].builder) == ("tensorrt", "fp16", "trtexec")
    assert c["base"].engine == "onnxruntime" and "engine" not in c["base"].recipe()
    assert c["trt-int8"].recipe()["engine"] == {"name": "tensorrt", "precision": "int8", "builder": None}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "x", "engine": "tvm"}, "candidates[0].engine: expected 'onnxruntime' or 'tensorrt', found 'tvm'"),
        ({"name": "x", "engine": "tensorrt"}, "candidates[0].precision: expected one of ['fp16', 'int8']"),
        (
            {"name": "x", "engine": "tensorrt", "precision": "int4"},
            "candidates[0].precision: expected 'fp16' or 'int8', found 'int4'",
        ),
        ({"name": "x", "engine": "tensorrt", "precision": "int8"}, "expected quantize: {preset: tensorrt}, found none"),
        (
            {"name": "x", "engine": "tensorrt", "precision": "int8", "quantize": {"preset": "ort-cpu"}},
            "S8S8 QDQ artifact; expected quantize: {preset: tensorrt}, found {preset: ort-cpu}",
        ),
        ({"name": "x", "engine": "tensorrt", "precision": "fp16", "quantize": {"preset": "tensorrt"}}, "fp32 model"),
        ({"name": "x", "precision": "fp16"}, "candidates[0]: 'precision' and 'builder' choose"),
        (
            {"name": "x", "engine": "tensorrt", "precision": "fp16", "builder": "polygraphy"},
            "candidates[0].builder: expected 'api' or 'trtexec', found 'polygraphy'",
        ),
    ],
)
def test_bad_engine_settings_are_refused(item: dict, message: str) -> None:
    with pytest.raises(EdgebenchError) as exc:
        study_from_dict({"candidates": [item]})
    assert message in str(exc.value) and "\n" not in str(exc.value), exc.value


def test_a_tensorrt_candidate_becomes_a_tensorrt_job() -> None:
    c = _cands(TRT_FP16)
    job = SessionJob(artifact="m.onnx", options=BackendOptions(threads=1, device="cpu", precision="fp32"))
    trt = apply_engine(job, c["trt-fp16"], (1, 32))
    assert trt.backend == "tensorrt" and trt.artifact == "m.onnx"
    # the optimization profile covers every profiled batch and the replay batch
    assert trt.options == BackendOptions(
        threads=1, device="cuda", precision="fp16", batches=(1, 32, 128), opt_batch=1, builder="trtexec"
    )
    TensorRTBackend("m.onnx", trt.options)  # every option set is one the tensorrt backend takes
    assert apply_engine(job, c["base"], (1,)) == job


def test_skip_reason_depends_on_the_device_runtimes() -> None:
    c = _cands(TRT_FP16)
    local = DeviceSpec(name="local", kind="local", runtimes=("onnxruntime", "torch"))
    orin = DeviceSpec(name="orin", kind="ssh", host="192.0.2.1", runtimes=("onnxruntime", "tensorrt"))
    reason = skip_reason(c["trt-fp16"], local)
    assert reason is not None and "does not list the tensorrt runtime" in reason and "onnxruntime, torch" in reason
    assert skip_reason(c["trt-fp16"], orin) is None and skip_reason(c["base"], local) is None


def test_skips_are_forgotten_when_the_device_can_measure(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    record_skips(store, "trt-fp16", "orin", ["profile", "replay"], "no tensorrt", "ab" * 32)
    store.save("base", "orin", "profile", {"runs": []})
    assert store.load("trt-fp16", "orin", "profile") == {"skipped": "no tensorrt", "artifact_sha256": "ab" * 32}
    clear_skips(store, "trt-fp16", "orin")
    clear_skips(store, "base", "orin")
    assert not store.has("trt-fp16", "orin", "profile") and not store.has("trt-fp16", "orin", "replay")
    assert store.has("base", "orin", "profile")  # real measurements are kept


def test_study_on_a_device_without_tensorrt_reports_unmeasured(tmp_path: Path) -> None:
    study = {
        "name": "trt",
        "model": {"arch": "resnet8", "train_epochs": 1},
        "data": {"name": "digits", "eval_count": 64, "calib_count": 32, "train_count": 400},
        "candidates": ["base", TRT_INT8, {"name": "trt-fp16", "engine": "tensorrt", "precision": "fp16"}],
        "attacks": {"samples": 16, "suite": [{"name": "fgsm", "eps_255": [8]}]},
        "profile": {
            "batches": [1],
            "iterations": 5,
            "min_duration_s": 0.0,
            "warmup_iters": 1,
            "warmup_s": 0.0,
            "threads": 1,
        },
        "budgets": {
            "max_p99_latency_ms": 1000.0,
            "max_peak_memory_mb": 4096,
            "max_accuracy_drop": 0.5,
            "max_robustness_drop": 0.5,
        },
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    Pipeline(load_study(path), out).run()
    results = json.loads((out / "results.json").read_text())
    by = {c["name"]: c for c in results["candidates"]}
    assert by["trt-int8"]["artifact"]["precision"] == "int8"  # the S8S8 QDQ artifact was built on the host
    for name in ("trt-int8", "trt-fp16"):
        d = by[name]["devices"]["local"]
        assert d["verdict"]["status"] == "UNMEASURED"
        assert "does not list the tensorrt runtime" in d["unmeasured_reason"] == d["verdict"]["reason"]
        assert d["latency_ms"] is None and d["clean_accuracy"] is None
    assert by["base"]["devices"]["local"]["latency_ms"]["samples"] >= 5  # the rest of the study ran
    # resume: nothing is re-measured, the skip stays
    Pipeline(load_study(path), out).run()
    again = json.loads((out / "results.json").read_text())
    assert {c["name"]: c["devices"]["local"]["verdict"]["status"] for c in again["candidates"]}[
        "trt-fp16"
    ] == "UNMEASURED"


def test_deploy_engine_registry_matches_the_config_and_reads_capabilities() -> None:
    """Every engine the study accepts is in the registry, and what a job needs comes from the
    backend's declared capabilities (a backend that runs only on CUDA and builds for fixed batches)."""
    from edgebench.agent.protocol import SessionJob
    from edgebench.backends.options import BackendOptions
    from edgebench.backends.registry import backend_class
    from edgebench.study.engines import DEPLOY_ENGINES, ENGINES, apply_engine

    assert tuple(DEPLOY_ENGINES) == ENGINES
    caps = backend_class("tensorrt").capabilities
    cand = type("C", (), {"engine": "tensorrt", "precision": "fp16", "builder": None})()
    job = apply_engine(SessionJob(artifact="a.onnx", options=BackendOptions(threads=1)), cand, [1, 8])
    assert job.backend == "tensorrt" and job.options.device == caps.devices[0] == "cuda"
    assert job.options.batches == (1, 8, 128) and job.options.precision == "fp16" and job.options.builder == "api"
    plain = SessionJob(artifact="a.onnx", options=BackendOptions(threads=1))
    assert apply_engine(plain, type("C", (), {"engine": "onnxruntime"})(), [1]) is plain
