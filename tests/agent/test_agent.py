"""The agent, run as a real subprocess by the local device, on a real exported model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.protocol import InputSet, PredictJob, ProfileJob, SessionJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.inventory import builtin_local
from edgebench.devices.local import LocalDevice
from edgebench.errors import EdgebenchError

FAST = TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=15, min_duration_s=0.0)


def test_profile_job_measures_latency_memory_and_environment(
    tiny_onnx: Path, digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the agent's temporary files, ORT's profile among them
    events: list[dict] = []
    result = LocalDevice(builtin_local()).run_job(
        ProfileJob(
            artifact=str(tiny_onnx),
            inputs=str(digits_npz),
            batches=(1, 4),
            modes=("end_to_end", "compute"),
            budget=FAST,
            options=BackendOptions(threads=1, profile_ops=True),
        ),
        on_progress=events.append,
    )
    assert result["ok"] and result["kind"] == "profile"
    runs = {(r["batch"], r["mode"]): r["latency_ms"] for r in result["runs"]}
    assert set(runs) == {(1, "end_to_end"), (1, "compute"), (4, "end_to_end"), (4, "compute")}
    for lat in runs.values():
        assert lat["samples"] == 15 and 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
    mem = result["memory_mb"]
    assert mem["rss_before_load"] < mem["rss_after_load"] <= mem["peak_rss"]
    assert result["runtime"]["backend"] == "onnxruntime" and result["runtime"]["intra_op_threads"] == 1
    env = result["environment"]
    assert env["cpu_model"] and env["python"] and env["device"] == "local"
    assert [e["done"] for e in events] == [1, 2, 3, 4]
    ops = result["op_profile"]
    assert ops and {"Conv"} <= {o["op_type"] for o in ops}
    assert sum(o["share"] for o in ops) <= 1.0 + 1e-9
    assert list(tmp_path.glob("edgebench-ortprof-*")) == []  # read, then removed on the device


def test_predict_job_returns_predictions_and_logits(
    tiny_onnx: Path, tiny_model, digits_npz: Path, tmp_path: Path
) -> None:
    import torch

    logits_path = tmp_path / "logits.npz"
    result = LocalDevice(builtin_local()).run_job(
        PredictJob(
            artifact=str(tiny_onnx), sets=(InputSet("clean", str(digits_npz)),), batch=50, logits=str(logits_path)
        )
    )
    with np.load(digits_npz) as d:
        x, y = d["x"], d["y"]
    preds = np.asarray(result["sets"]["clean"]["predictions"])
    assert preds.shape == (len(x),)
    with torch.inference_mode():
        ref = tiny_model(torch.from_numpy(x)).numpy()
    assert (preds == ref.argmax(1)).mean() > 0.99
    assert (preds == y).mean() > 0.8  # a trained model, not noise
    with np.load(logits_path) as d:
        np.testing.assert_allclose(d["clean"], ref, atol=1e-4)


def test_missing_model_is_a_user_error(digits_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgebenchError, match="ONNX model not found: expected a file at"):
        LocalDevice(builtin_local()).run_job(
            ProfileJob(artifact=str(tmp_path / "nope.onnx"), inputs=str(digits_npz), budget=FAST)
        )


def test_corrupt_model_is_a_user_error(digits_npz: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"this is not protobuf" * 10)
    with pytest.raises(EdgebenchError, match="onnxruntime could not load"):
        LocalDevice(builtin_local()).run_job(ProfileJob(artifact=str(bad), inputs=str(digits_npz), budget=FAST))


def test_wrong_shape_data_is_a_user_error(tiny_onnx: Path, tmp_path: Path) -> None:
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.random.rand(4, 1, 28, 28).astype(np.float32))
    with pytest.raises(
        EdgebenchError, match=r"model expects shape \(\?, 1, 8, 8\), data has per-item shape \(1, 28, 28\)"
    ):
        LocalDevice(builtin_local()).run_job(ProfileJob(artifact=str(tiny_onnx), inputs=str(data), budget=FAST))


def test_unknown_backend_is_a_user_error(tiny_onnx: Path, digits_npz: Path) -> None:
    with pytest.raises(EdgebenchError, match="unknown backend 'nope'"):
        LocalDevice(builtin_local()).run_job(
            ProfileJob(backend="nope", artifact=str(tiny_onnx), inputs=str(digits_npz), budget=FAST)
        )


def test_agent_cli_writes_result_atomically_and_exits_2_on_user_error(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    result = tmp_path / "result.json"
    job.write_text(
        PredictJob(
            artifact=str(tmp_path / "missing.onnx"), sets=(InputSet("a", str(tmp_path / "a.npz")),), result=str(result)
        ).to_json()
    )
    proc = subprocess.run([sys.executable, "-m", "edgebench.agent", str(job)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    body = json.loads(result.read_text())
    assert body["ok"] is False and "not found" in body["error"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_agent_imports_no_torch(tiny_onnx: Path, digits_npz: Path, tmp_path: Path) -> None:
    """The agent must run on a device with only numpy, psutil and the runtime."""
    job = tmp_path / "job.json"
    job.write_text(
        ProfileJob(
            artifact=str(tiny_onnx), inputs=str(digits_npz), budget=FAST, result=str(tmp_path / "r.json")
        ).to_json()
    )
    code = (
        f"import sys, runpy; sys.argv=['agent', {str(job)!r}]; "
        f"import edgebench.agent.__main__ as m; rc=m.main([{str(job)!r}]); "
        "bad=[k for k in sys.modules if k.split('.')[0] in ('torch','foolbox','torch_pruning','matplotlib','typer','rich')]; "
        "print(bad); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_an_option_the_backend_does_not_take_is_refused_on_the_host(
    tiny_onnx: Path, digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before any agent starts (or any file is pushed to a remote device)."""
    import edgebench.devices.local as local

    def no_agent(*args: object, **kwargs: object) -> None:
        raise AssertionError("an agent was started for a job the host should have refused")

    monkeypatch.setattr(local.subprocess, "Popen", no_agent)
    device = LocalDevice(builtin_local())
    job = ProfileJob(artifact=str(tiny_onnx), inputs=str(digits_npz), options=BackendOptions(compile=True))
    with pytest.raises(EdgebenchError, match="^backend onnxruntime: option compile is not one it takes"):
        device.run_job(job)
    with pytest.raises(EdgebenchError, match="^backend onnxruntime: option builder is not one it takes"):
        device.open_session(SessionJob(artifact=str(tiny_onnx), options=BackendOptions(builder="trtexec")))
