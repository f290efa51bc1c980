"""The Jetson agent image's entry point, run for real on this machine (the L4T base and the
Docker build itself need a Jetson): it generates a host key and an sshd config that a real sshd
accepts, and the host then profiles through it like any SSH device. The Dockerfile keeps the
CPU image as its default (last) stage and gains a `jetson-agent` target on an L4T base ARG."""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from events import HANG_S, wait_for
from loopback import free_port, sshd_missing_reason, write_keypair

from edgebench.agent.protocol import ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.inventory import DeviceSpec
from edgebench.devices.registry import open_device

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "jetson-agent-entrypoint.sh"


def test_dockerfile_targets() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["jetson-agent", "cpu"]  # `docker build .` still builds the CPU image
    assert stages[0][0] == "${L4T_BASE}" and re.search(r"^ARG L4T_BASE=nvcr\.io/nvidia/l4t-", text, re.MULTILINE)
    assert text.index("ARG L4T_BASE") < text.index("FROM ")  # a global ARG, usable in FROM
    assert "COPY docker/jetson-agent-entrypoint.sh" in text and ENTRYPOINT.is_file()


@pytest.fixture
def agent_server(tmp_path: Path):  # noqa: ANN201
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(f"no OpenSSH server to run the entry point with: {reason}")
    user_key = tmp_path / "id_ed25519"
    pub = write_keypair(user_key).read_text().strip()
    port = free_port()
    env = dict(
        os.environ,
        EDGEBENCH_SSH_PORT=str(port),
        EDGEBENCH_SSH_DIR=str(tmp_path / "ssh"),
        EDGEBENCH_AGENT_USER=getpass.getuser(),
        EDGEBENCH_AGENT_HOME=str(tmp_path / "home"),  # not this machine's real home
        EDGEBENCH_AUTHORIZED_KEYS_FILE=str(tmp_path / "authorized_keys"),
        AUTHORIZED_KEYS=pub,
        LD_LIBRARY_PATH="/usr/local/cuda/lib64",
    )
    log = open(tmp_path / "entrypoint.log", "wb")
    proc = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"entry point exited {proc.returncode}: {(tmp_path / 'entrypoint.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    wait_for(answers, f"SSH banner from the entry point's sshd on port {port}", poll_s=0.1)
    host_pub = (tmp_path / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_pub)}\n")
    yield port, user_key, tmp_path
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()


def test_entrypoint_serves_an_ssh_device(
    agent_server, small_onnx: Path, digits_inputs: Path, fast_budget: TimingBudget
) -> None:  # noqa: ANN001
    import sys

    port, user_key, tmp = agent_server
    config = (tmp / "ssh" / "sshd_config").read_text()
    assert f"Port {port}" in config and "PasswordAuthentication no" in config and "Subsystem sftp" in config
    assert "LD_LIBRARY_PATH=/usr/local/cuda/lib64" in (tmp / "home" / ".ssh" / "environment").read_text()
    spec = DeviceSpec(
        name="jetson-container",
        kind="ssh",
        host="127.0.0.1",
        port=port,
        user=getpass.getuser(),
        identity_file=str(user_key),
        known_hosts=str(tmp / "known_hosts"),
        python=sys.executable,
        workdir=str(tmp / "device"),
    )
    job = ProfileJob(
        artifact=str(small_onnx),
        inputs=str(digits_inputs),
        modes=("end_to_end",),
        budget=fast_budget,
        options=BackendOptions(threads=1),
        telemetry="none",
    )
    with open_device(spec) as dev:
        result = dev.run_job(job)
    assert result["ok"] and result["runs"][0]["latency_ms"]["samples"] >= 20


def test_entrypoint_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        EDGEBENCH_SSH_DIR=str(tmp_path / "ssh"),
        EDGEBENCH_AGENT_USER=getpass.getuser(),
        EDGEBENCH_AGENT_HOME=str(tmp_path / "home"),
        EDGEBENCH_AUTHORIZED_KEYS_FILE=str(tmp_path / "none"),
    )
    env.pop("AUTHORIZED_KEYS", None)
    out = subprocess.run(["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 2 and "no authorized key" in out.stderr
