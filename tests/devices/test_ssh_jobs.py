"""Jobs on a real OpenSSH server on 127.0.0.1: the same agent and protocol as the local device,
files pushed once by content hash, results pulled to their host paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from loopback import LoopbackSshd

from edgebench.agent.protocol import InputSet, PredictJob, ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.inventory import builtin_local
from edgebench.devices.local import LocalDevice
from edgebench.devices.registry import open_device
from edgebench.devices.ssh import SshDevice
from edgebench.devices.ssh.deploy import LIGHT_PACKAGES, build_agent_zipapp
from edgebench.errors import EdgebenchError


def profile_job(
    model: Path,
    inputs: Path,
    budget: TimingBudget,
    result: Path | None = None,
    batches: tuple[int, ...] = (1, 4),
    modes: tuple[str, ...] = ("end_to_end", "compute"),
) -> ProfileJob:
    return ProfileJob(
        artifact=str(model),
        inputs=str(inputs),
        batches=batches,
        modes=modes,
        budget=budget,
        options=BackendOptions(threads=1),
        result=str(result) if result is not None else None,
    )


def test_profile_over_ssh_then_a_second_run_pushes_nothing(
    sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, fast_budget: TimingBudget, tmp_path: Path
) -> None:
    spec = sshd.spec(workdir=str(tmp_path / "device-workdir"))
    job = profile_job(small_onnx, digits_inputs, fast_budget, tmp_path / "out" / "profile.json")
    events: list[dict] = []
    with open_device(spec) as dev:
        assert isinstance(dev, SshDevice)
        result = dev.run_job(job, on_progress=events.append)
        first = dev.transfer_stats
    agent_size = len(build_agent_zipapp().data)
    assert first["files_pushed"] == 3  # agent, model, inputs
    assert first["bytes_pushed"] == agent_size + small_onnx.stat().st_size + digits_inputs.stat().st_size
    assert result["ok"] and result["kind"] == "profile"
    runs = {(r["batch"], r["mode"]): r["latency_ms"] for r in result["runs"]}
    assert set(runs) == {(1, "end_to_end"), (1, "compute"), (4, "end_to_end"), (4, "compute")}
    assert all(lat["samples"] >= 20 and 0 < lat["p50"] <= lat["p99"] for lat in runs.values())
    assert result["memory_mb"]["peak_rss"] >= result["memory_mb"]["rss_before_load"] > 0
    assert result["telemetry"]["source"] in ("psutil", "tegrastats", "jtop", "nvml")
    assert result["environment"]["device"] == "loopback"
    assert result["environment"]["transport"]["port"] == sshd.port
    import onnxruntime

    assert result["runtime"]["backend"] == "onnxruntime" and result["runtime"]["version"] == onnxruntime.__version__
    # progress streamed back while the agent ran, tagged with the device
    assert [e["done"] for e in events] == [1, 2, 3, 4] and {e["device"] for e in events} == {"loopback"}
    # the result file on the host is the result, written atomically
    on_disk = json.loads((tmp_path / "out" / "profile.json").read_text())
    assert on_disk["runs"] == result["runs"] and on_disk["environment"]["device"] == "loopback"

    with SshDevice(spec) as again:  # a new connection: the device is asked again, by hash
        second = again.run_job(job)
        stats = again.transfer_stats
    assert stats["bytes_pushed"] == 0 and stats["files_pushed"] == 0 and stats["files_reused"] == 2
    assert second["ok"] and second["environment"]["transport"]["agent"] == result["environment"]["transport"]["agent"]


def test_predict_over_ssh_pulls_logits_identical_to_the_local_device(
    sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, adversarial_like: Path, tmp_path: Path
) -> None:
    def job(out: Path) -> PredictJob:
        return PredictJob(
            artifact=str(small_onnx),
            batch=16,
            sets=(InputSet("clean", str(digits_inputs)), InputSet("shifted", str(adversarial_like))),
            logits=str(out / "logits.npz"),
            result=str(out / "predict.json"),
        )

    remote = SshDevice(sshd.spec()).run_job(job(tmp_path / "ssh"))
    local = LocalDevice(builtin_local()).run_job(job(tmp_path / "local"))
    for name, count in (("clean", 64), ("shifted", 32)):
        assert remote["sets"][name]["count"] == count
        assert remote["sets"][name]["predictions"] == local["sets"][name]["predictions"]
    assert remote["logits"] == str(tmp_path / "ssh" / "logits.npz")  # host path, not the device's
    with np.load(tmp_path / "ssh" / "logits.npz") as r, np.load(tmp_path / "local" / "logits.npz") as loc:
        assert r["clean"].shape == (64, 10) and r["shifted"].shape == (32, 10)
        np.testing.assert_allclose(r["clean"], loc["clean"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(r["shifted"], loc["shifted"], rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "ssh" / "predict.json").read_text())["sets"]["clean"]["count"] == 64


def test_a_model_with_external_data_travels_with_its_data(
    sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, tmp_path: Path
) -> None:
    """A model past 2 GB is a graph file and its data file: both are pushed, into a folder named by
    their joint hash (two models with the same graph and other weights do not share one), and the
    device computes what the local one does."""
    import onnx

    def external(weights_scale: float, folder: Path) -> Path:
        model = onnx.load(str(small_onnx))
        for t in model.graph.initializer:
            w = onnx.numpy_helper.to_array(t) * weights_scale
            t.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), t.name))
        folder.mkdir()
        path = folder / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
        return path

    a, b = external(1.0, tmp_path / "a"), external(-1.0, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()  # the same graph file; the weights differ

    def job(model: Path, out: Path) -> PredictJob:
        return PredictJob(
            artifact=str(model),
            batch=16,
            sets=(InputSet("clean", str(digits_inputs)),),
            logits=str(out / "logits.npz"),
            result=str(out / "predict.json"),
        )

    with SshDevice(sshd.spec(workdir=str(tmp_path / "device"))) as dev:
        for name, model in (("a", a), ("b", b)):
            dev.run_job(job(model, tmp_path / "ssh" / name))
            LocalDevice(builtin_local()).run_job(job(model, tmp_path / "local" / name))
        stats, history = dev.transfer_stats, dev.deployer.stats.history
    pushed = {Path(h["path"]).name for h in history}
    assert {"model.onnx", "model.onnx.data"} <= pushed and stats["files_pushed"] == 6  # agent, inputs, 2 x 2
    folders = {Path(h["path"]).parent.name for h in history if Path(h["path"]).name.startswith("model")}
    assert len(folders) == 2 and all(f.endswith(".d") for f in folders)
    for name in ("a", "b"):
        with (
            np.load(tmp_path / "ssh" / name / "logits.npz") as r,
            np.load(tmp_path / "local" / name / "logits.npz") as loc,
        ):
            np.testing.assert_allclose(r["clean"], loc["clean"], rtol=0, atol=1e-6)
    with np.load(tmp_path / "ssh" / "a" / "logits.npz") as ra, np.load(tmp_path / "ssh" / "b" / "logits.npz") as rb:
        assert not np.allclose(ra["clean"], rb["clean"])


def test_agent_user_error_becomes_edgebench_error_naming_host_paths(
    sshd: LoopbackSshd, small_onnx: Path, fast_budget: TimingBudget, tmp_path: Path
) -> None:
    job = profile_job(small_onnx, small_onnx, fast_budget, tmp_path / "bad.json")  # inputs: not an .npz
    with pytest.raises(EdgebenchError) as info:
        SshDevice(sshd.spec()).run_job(job)
    msg = str(info.value)
    assert msg.startswith("on device 'loopback': input data") and "not a readable .npz" in msg
    assert str(small_onnx) in msg and "/cache/" not in msg  # host path, not the device cache path
    written = json.loads((tmp_path / "bad.json").read_text())  # same as the local device: failure recorded
    assert written["ok"] is False


def test_missing_host_file_is_reported_before_anything_runs(
    sshd: LoopbackSshd, fast_budget: TimingBudget, tmp_path: Path
) -> None:
    job = profile_job(tmp_path / "nope.onnx", tmp_path / "nope.npz", fast_budget)
    with pytest.raises(EdgebenchError, match=r"file to push not found: expected a file at .*nope"):
        SshDevice(sshd.spec()).run_job(job)


def test_remote_agent_is_the_zipapp_of_light_modules(sshd: LoopbackSshd) -> None:
    build = build_agent_zipapp()
    assert build.sha256 == build_agent_zipapp().sha256  # deterministic: same sources, same version
    tops = {n.split("/")[1] for n in build.files if n.startswith("edgebench/") and n.count("/") > 1}
    assert tops == {"util", "measure", "backends", "agent"}  # telemetry lives in agent/, nothing of devices/
    assert not any(
        n.startswith(
            (
                "edgebench/cli",
                "edgebench/export",
                "edgebench/compress",
                "edgebench/robustness",
                "edgebench/report",
                "edgebench/devices",
            )
        )
        for n in build.files
    )
    assert all(any(n.startswith(f"edgebench/{p}/") for n in build.files) for p in LIGHT_PACKAGES)
    dev = SshDevice(sshd.spec())
    agent = dev.deployer.ensure_agent()
    assert agent.endswith(f"/agent/{build.version}/agent.pyz")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import edgebench.agent.jobs as j, "
        "edgebench.agent.telemetry as t; print(j.__file__); print(t.__file__)"
    )
    out = dev.transport.run([sshd.spec().python, "-c", probe, agent]).stdout.split()
    assert all(path.startswith(agent + "/edgebench/") for path in out)
    usage = dev.transport.run([sshd.spec().python, agent], check=False)
    assert usage.exit_status == 2 and "usage: python -m edgebench.agent JOB.json" in usage.stderr
    dev.close()


def test_a_corrupted_cache_file_is_detected_by_hash_and_pushed_again(
    sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, fast_budget: TimingBudget, tmp_path: Path
) -> None:
    spec = sshd.spec(workdir=str(tmp_path / "wd"))
    job = profile_job(small_onnx, digits_inputs, fast_budget, batches=(1,), modes=("compute",))
    with SshDevice(spec) as dev:
        dev.run_job(job)
    cached = sorted((tmp_path / "wd" / "cache").iterdir())
    assert len(cached) == 2 and not any(p.name.endswith(".part") for p in cached)
    model_copy = next(p for p in cached if p.stat().st_size == small_onnx.stat().st_size)
    model_copy.write_bytes(b"\0" * small_onnx.stat().st_size)  # same name and size, wrong bytes
    with SshDevice(spec) as dev:
        result = dev.run_job(job)
        stats = dev.transfer_stats
    assert result["ok"]
    assert stats["files_pushed"] == 1 and stats["bytes_pushed"] == small_onnx.stat().st_size
    assert model_copy.read_bytes() == small_onnx.read_bytes()


def test_remote_commands_are_quoted_word_by_word(sshd: LoopbackSshd, tmp_path: Path) -> None:
    """An argument full of shell syntax reaches the device as one literal word."""
    dev = SshDevice(sshd.spec())
    canary = tmp_path / "canary"
    nasty = f"a b; touch {canary} $(touch {canary}) `touch {canary}` '\" *"
    out = dev.transport.run(["printf", "%s", nasty]).stdout
    assert out == nasty and not canary.exists()
    dev.close()
    assert subprocess.run(["true"]).returncode == 0
