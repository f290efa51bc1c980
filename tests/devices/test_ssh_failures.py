"""Links that fail: refused, silent, killed mid-job. Each is reported as one clear
EdgebenchError; a re-run after the server is back succeeds; earlier results are untouched."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loopback import LoopbackSshd, free_port

from edgebench.agent.protocol import EnvJob, ProfileJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.ssh import SshDevice
from edgebench.devices.ssh.transport import TransportError


def long_job(model: Path, inputs: Path, result: Path, seconds: float) -> ProfileJob:
    """A profile job that runs for a while (4 timed windows of *seconds*), with progress."""
    return ProfileJob(
        artifact=str(model),
        inputs=str(inputs),
        batches=(1, 2),
        modes=("end_to_end", "compute"),
        options=BackendOptions(threads=1),
        result=str(result),
        budget=TimingBudget(warmup_iters=1, warmup_s=0.0, iterations=5, min_duration_s=seconds),
    )


def test_connection_refused_is_reported_with_the_address(sshd: LoopbackSshd) -> None:
    port = free_port()  # nothing listens there
    dev = SshDevice(sshd.spec(name="gone", port=port, retries=1, retry_backoff_s=0.05))
    with pytest.raises(TransportError) as info:
        dev.run_job(EnvJob())
    msg = str(info.value)
    assert "device 'gone' (" in msg and f"127.0.0.1:{port}" in msg and "connection refused" in msg
    assert "gave up after 2 attempts" in msg and dev.attempts_last_job == 2


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (not an SSH server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_a_server_that_never_speaks_ssh_times_out_clearly(sshd: LoopbackSshd, silent_server: int) -> None:
    dev = SshDevice(sshd.spec(name="mute", port=silent_server, connect_timeout_s=1.0, retries=0))
    with pytest.raises(TransportError) as info:
        dev.run_job({"kind": "env"})
    msg = str(info.value)
    assert f"127.0.0.1:{silent_server}" in msg and "timed out after 1 s connecting" in msg
    assert "gave up after 1 attempt;" in msg


def test_server_killed_mid_job_is_reported_then_a_rerun_after_restart_succeeds(
    make_sshd: Callable[..., LoopbackSshd],
    small_onnx: Path,
    digits_inputs: Path,
    fast_budget: TimingBudget,
    tmp_path: Path,
) -> None:
    server = make_sshd("flaky")
    dev = SshDevice(server.spec(retries=1, retry_backoff_s=0.1))
    done_file = tmp_path / "done.json"
    dev.run_job(
        ProfileJob(
            artifact=str(small_onnx),
            inputs=str(digits_inputs),
            modes=("compute",),
            budget=fast_budget,
            result=str(done_file),
        )
    )
    done_bytes = done_file.read_bytes()

    interrupted = tmp_path / "interrupted.json"
    with pytest.raises(TransportError) as info:  # the server dies at the job's first progress line
        dev.run_job(long_job(small_onnx, digits_inputs, interrupted, 30.0), on_progress=lambda e: server.kill())
    msg = str(info.value)
    assert "device 'flaky'" in msg and f"127.0.0.1:{server.port}" in msg
    assert "gave up after 2 attempts" in msg and "re-run to resume" in msg
    assert not interrupted.exists()  # nothing half-written on the host
    assert done_file.read_bytes() == done_bytes  # the earlier result is untouched

    server.start()  # the device is back (same address, same host key)
    result = dev.run_job(long_job(small_onnx, digits_inputs, interrupted, 0.05))
    assert result["ok"] and json.loads(interrupted.read_text())["ok"] is True
    assert dev.transfer_stats["files_pushed"] == 3  # only the very first job pushed anything
    assert done_file.read_bytes() == done_bytes
    dev.close()


def test_a_dropped_link_is_retried_and_the_job_completes(
    make_sshd: Callable[..., LoopbackSshd], small_onnx: Path, digits_inputs: Path, tmp_path: Path
) -> None:
    server = make_sshd("blip")
    # back-off 0.5, 1, 2 ... 32 s: the server is back long before the retries run out, however busy
    dev = SshDevice(server.spec(retries=7, retry_backoff_s=0.5))
    dropped = threading.Event()

    def on_progress(event: dict) -> None:
        if not dropped.is_set():
            dropped.set()
            server.kill()  # the link drops while the job runs (before its first window ends) ...
            threading.Thread(target=server.start, daemon=True).start()  # ... and the board is back at once

    result = dev.run_job(long_job(small_onnx, digits_inputs, tmp_path / "r.json", 0.5), on_progress=on_progress)
    assert result["ok"] and dev.attempts_last_job >= 2
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    dev.close()


@pytest.mark.slow
def test_an_agent_left_running_by_a_dropped_link_is_stopped_before_the_retry(
    make_sshd: Callable[..., LoopbackSshd],
    small_onnx: Path,
    digits_inputs: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the SSH session processes die (as when the network drops); the agent lives on, and
    the retry must stop it so two agents never measure at the same time."""
    import psutil

    server = make_sshd("wobbly")
    dev = SshDevice(server.spec(retries=2, retry_backoff_s=0.1))
    agents: list[int] = []

    def cut_link(event: dict) -> None:
        if agents:
            return
        assert server.proc is not None
        below = psutil.Process(server.proc.pid).children(recursive=True)
        agents.extend(p.pid for p in below if "agent.pyz" in " ".join(p.cmdline()))
        for p in below:
            if p.pid not in agents and p.name() == "sshd":
                p.kill()

    with caplog.at_level("WARNING", logger="edgebench.devices.ssh"):
        job = dataclasses.replace(long_job(small_onnx, digits_inputs, tmp_path / "r.json", 3.0), batches=(1,))
        result = dev.run_job(job, on_progress=cut_link)
    assert result["ok"] and dev.attempts_last_job >= 2 and len(agents) == 1
    assert not psutil.pid_exists(agents[0]) or psutil.Process(agents[0]).status() == psutil.STATUS_ZOMBIE
    assert any(f"stopped {agents[0]} agent of an interrupted attempt" in r.getMessage() for r in caplog.records)
    dev.close()
