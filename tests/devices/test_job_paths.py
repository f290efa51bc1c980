"""Host paths become device paths in one place (``Job.relocated``), for local and SSH devices:
what the agent is handed is recorded here, and the job then runs there for real."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from loopback import LoopbackSshd

from edgebench.agent.protocol import InputSet, Job, PredictJob, parse_job
from edgebench.backends.options import BackendOptions
from edgebench.devices.inventory import builtin_local
from edgebench.devices.local import LocalDevice
from edgebench.devices.ssh import SshDevice


def relative_job(tmp_path: Path, small_onnx: Path, digits_inputs: Path, adversarial_like: Path) -> PredictJob:
    """A predict job whose every path is relative to *tmp_path* (the current folder)."""
    for src, name in ((small_onnx, "model.onnx"), (digits_inputs, "clean.npz"), (adversarial_like, "adv.npz")):
        shutil.copy(src, tmp_path / name)
    return PredictJob(
        artifact="model.onnx",
        sets=(InputSet("clean", "clean.npz"), InputSet("adv", "adv.npz", key="x")),
        options=BackendOptions(device="cpu"),
        batch=16,
        logits="out/logits.npz",
    )


def test_a_local_device_hands_the_agent_absolute_host_paths(
    tmp_path: Path, small_onnx: Path, digits_inputs: Path, adversarial_like: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgebench.devices.local as local

    monkeypatch.chdir(tmp_path)
    job = relative_job(tmp_path, small_onnx, digits_inputs, adversarial_like)
    seen: list[Job] = []
    write = local.atomic_write_text
    monkeypatch.setattr(
        local, "atomic_write_text", lambda path, text: (seen.append(parse_job(text)), write(path, text))[1]
    )
    device = LocalDevice(dataclasses.replace(builtin_local(), threads=1))
    result = device.run_job(job)

    (sent,) = seen
    assert isinstance(sent, PredictJob)
    assert sent.paths() == [str(tmp_path / "model.onnx"), str(tmp_path / "clean.npz"), str(tmp_path / "adv.npz")]
    assert sent.logits == str(tmp_path / "out" / "logits.npz")
    assert sent.result is not None and Path(sent.result).is_absolute()  # a result file even where none was asked
    assert sent.options == BackendOptions(threads=1)  # the device's threads, where the job left them open
    assert result["logits"] == str(tmp_path / "out" / "logits.npz")
    with np.load(tmp_path / "out" / "logits.npz") as d:
        assert d["clean"].shape == (64, 10) and d["adv"].shape == (32, 10)


@pytest.mark.ssh
def test_an_ssh_device_hands_the_agent_cache_paths_and_brings_outputs_home(
    sshd: LoopbackSshd,
    tmp_path: Path,
    small_onnx: Path,
    digits_inputs: Path,
    adversarial_like: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    job = relative_job(tmp_path, small_onnx, digits_inputs, adversarial_like)
    workdir = tmp_path / "device"
    device = SshDevice(sshd.spec(workdir=str(workdir), threads=1))
    seen: list[Job] = []
    put = device.transport.put_bytes

    def record(data: bytes, remote: str) -> int:
        if remote.endswith(".job.json"):
            seen.append(parse_job(data.decode("utf-8")))
        return put(data, remote)

    monkeypatch.setattr(device.transport, "put_bytes", record)
    with device:
        result = device.run_job(job)

    (sent,) = seen
    assert isinstance(sent, PredictJob)
    cache = workdir / "cache"
    for host, remote in zip(job.paths(), sent.paths()):  # each file read from its cache copy, by content
        assert Path(remote).parent == cache and Path(remote).read_bytes() == (tmp_path / host).read_bytes()
    jobs = PurePosixPath(str(workdir / "jobs"))
    assert {PurePosixPath(p).parent for p in sent.outputs().values()} == {jobs}
    assert set(sent.outputs()) == {"result", "logits"}
    assert [(s.name, s.key) for s in sent.sets] == [("clean", "x"), ("adv", "x")]
    assert sent.options == BackendOptions(threads=1)
    # outputs pulled back to the host paths the job named, and the result speaks of host paths
    assert result["logits"] == "out/logits.npz"
    with np.load(tmp_path / "out" / "logits.npz") as d:
        assert d["clean"].shape == (64, 10) and d["adv"].shape == (32, 10)
    assert not list((workdir / "jobs").iterdir())  # the job's files on the device are cleaned up
