"""A device whose SSH server has no SFTP subsystem (a real sshd started without a
``Subsystem sftp`` line): files fall back to exec channels, a whole job works, uploads stay
sha256-verified."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import LoopbackSshd, sshd_missing_reason

from edgebench.agent.protocol import ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.registry import open_device
from edgebench.devices.ssh import SshDevice
from edgebench.devices.ssh.transport import SshOptions, SshTransport
from edgebench.errors import EdgebenchError


@pytest.fixture
def no_sftp(tmp_path: Path) -> Iterator[LoopbackSshd]:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(f"no OpenSSH server for the loopback device tests: {reason}")
    server = LoopbackSshd(tmp_path / "sshd", name="nosftp", sftp=False).start()
    yield server
    server.kill()


def test_server_really_has_no_sftp(no_sftp: LoopbackSshd) -> None:
    assert "Subsystem" not in no_sftp.config.read_text()


def test_file_operations_over_exec_channels(no_sftp: LoopbackSshd, tmp_path: Path) -> None:
    t = SshTransport(SshOptions.from_spec(no_sftp.spec()), "nosftp")
    try:
        data = os.urandom(3 * (1 << 20) + 17)  # several chunks, binary, not a multiple of the chunk
        remote = str(tmp_path / "dir with space" / "it's.bin")
        Path(remote).parent.mkdir()
        assert t.put_bytes(data, remote) == len(data)
        assert t.file_channel == "exec"
        assert Path(remote).read_bytes() == data and t.get_bytes(remote) == data
        local = tmp_path / "local.bin"
        local.write_bytes(data[::-1])
        assert t.put_file(local, remote + ".2") == len(data)
        assert Path(remote + ".2").read_bytes() == data[::-1]
        assert t.exists(remote) and not t.exists(remote + ".none")
        assert t.get_bytes(remote + ".none", missing_ok=True) is None
        with pytest.raises(EdgebenchError, match="no such file"):
            t.get_bytes(remote + ".none")
        t.remove(remote, remote + ".none")
        assert not Path(remote).exists()
        with pytest.raises(EdgebenchError, match="Directory nonexistent|No such file"):
            t.put_bytes(b"x", str(tmp_path / "missing-dir" / "f"))
        assert t.connected  # a failed command is not a lost link
    finally:
        t.close()


def test_a_profile_job_on_a_device_without_sftp(
    no_sftp: LoopbackSshd, small_onnx: Path, digits_inputs: Path, fast_budget: TimingBudget, tmp_path: Path
) -> None:
    spec = no_sftp.spec(workdir=str(tmp_path / "device-workdir"))
    job = ProfileJob(
        artifact=str(small_onnx),
        inputs=str(digits_inputs),
        modes=("end_to_end",),
        budget=fast_budget,
        options=BackendOptions(threads=1),
        telemetry="none",
        result=str(tmp_path / "out" / "profile.json"),
    )
    with open_device(spec) as dev:
        assert isinstance(dev, SshDevice)
        result = dev.run_job(job)
        assert dev.transport.file_channel == "exec"
        assert dev.transfer_stats["files_pushed"] == 3  # agent, model, inputs: verified by sha256 on commit
    assert result["ok"] and result["runs"][0]["latency_ms"]["samples"] >= 20
    assert (tmp_path / "out" / "profile.json").is_file()
