"""A remote device over SSH (a Jetson or any Linux box), running the same agent and JSON job
protocol as :class:`~edgebench.devices.local.LocalDevice`.

A job's files are pushed by content hash (:mod:`edgebench.devices.ssh.deploy`), its host paths are
rewritten to the device's cache paths, ``python agent.pyz job.json`` runs there with progress
lines streamed back, and the result (and logits) are pulled and written atomically at their
host paths. A dropped connection is retried a bounded number of times with back-off; a result
is written on the host only once fully pulled, so a failed attempt never leaves a partial file
and never touches results written earlier.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgebench.agent.protocol import Job, SessionJob, parse_progress
from edgebench.devices.base import Device, ProgressFn
from edgebench.devices.inventory import DeviceSpec
from edgebench.devices.ssh.deploy import Deployer
from edgebench.devices.ssh.transport import SshOptions, SshTransport, TransportError
from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from edgebench.devices.session import QuerySession

log = logging.getLogger(__name__)

__all__ = ["SshDevice"]

# The agent is started through this constant wrapper, so its pid is known on the device:
# `sh -c WRAPPER edgebench-agent PIDFILE PYTHON AGENT JOB` (every word quoted).
RUN_WRAPPER = 'echo $$ > "$1"; shift; exec "$@"'

# Stops an agent left running by a dropped link (only if it is still that job's agent).
STOP_STALE_SCRIPT = r"""
import os, signal, sys
pidfile, job = sys.argv[1], sys.argv[2]
try:
    pid = int(open(pidfile).read().strip())
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        if job.encode() in f.read():
            os.kill(pid, signal.SIGTERM)
            print("stopped", pid)
except (OSError, ValueError):
    pass
"""


def _replace_strings(obj: Any, mapping: dict[str, str]) -> Any:
    """*obj* with every string equal to a key of *mapping* replaced (device paths -> host paths)."""
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    if isinstance(obj, list):
        return [_replace_strings(v, mapping) for v in obj]
    if isinstance(obj, dict):
        return {k: _replace_strings(v, mapping) for k, v in obj.items()}
    return obj


class SshDevice(Device):
    """One SSH device. Thread-safe: jobs on the same device run one at a time."""

    def __init__(self, spec: DeviceSpec, accept_new_host_key: bool | None = None) -> None:
        super().__init__(spec)
        if spec.kind != "ssh":
            raise EdgebenchError(f"device '{spec.name}': expected kind 'ssh', found '{spec.kind}'")
        if int(spec.retries) < 0:
            raise EdgebenchError(f"device '{spec.name}': retries must be 0 or more, found {spec.retries}")
        self.options = SshOptions.from_spec(spec, accept_new_host_key)
        self.transport = SshTransport(self.options, spec.name)
        self.deployer = Deployer(self.transport, spec.python, spec.workdir)
        self._job_lock = threading.Lock()
        self._stale: list[tuple[str, ...]] = []  # (pidfile, job file, result, logits) of cut-off attempts
        self.attempts_last_job = 0

    @property
    def transfer_stats(self) -> dict:
        """Bytes and files pushed/reused/pulled since this device object was opened."""
        return self.deployer.stats.snapshot()

    def connect(self) -> None:
        self.transport.connect()

    def close(self) -> None:
        self.transport.close()

    def _push(self, paths: list[str]) -> tuple[str, dict[str, str]]:
        """Push the agent and the host files *paths* by hash: the agent's path and
        ``{host path as given: its cache path on the device}``."""
        agent, pushed = self.deployer.sync(paths)
        return agent, {p: pushed[str(Path(p).resolve())] for p in paths}

    def _open_session(self, job: SessionJob) -> QuerySession:
        """``python agent.pyz --serve`` on the device, the job's artifact pushed by hash first."""
        from edgebench.devices.session import QuerySession

        self.transport.connect()
        agent, files = self._push(job.paths())
        remote = job.relocated(files)
        proc = self.transport.open_process([*self.deployer.python, agent, "--serve"])
        session = QuerySession(self.name, proc.write_line, proc.read_line, proc.close, self.check_ready)
        try:
            return session.start(remote)
        except BaseException:
            proc.close()
            raise

    # -- one attempt ------------------------------------------------------------------------
    def _attempt(self, job: Job, on_progress: ProgressFn | None) -> dict:
        t = self.transport
        t.connect()
        agent, pushed = self._push(job.paths())
        self._stop_stale()
        stem = str(PurePosixPath(self.deployer.prepare()) / "jobs" / uuid.uuid4().hex[:16])
        # every output in the job's folder on the device (a result even where the host wants none)
        outputs = {k: f"{stem}.{k}{PurePosixPath(v).suffix}" for k, v in job.outputs().items()}
        outputs.setdefault("result", f"{stem}.result.json")
        remote = job.relocated(pushed, outputs)
        job_file = f"{stem}.job.json"
        pid_file = f"{stem}.pid"
        files = (pid_file, job_file, *outputs.values())
        t.put_bytes(remote.to_json().encode("utf-8"), job_file)
        tail: list[str] = []

        def on_line(line: str) -> None:
            event = parse_progress(line)
            if event is None:
                tail.append(line.rstrip())
                del tail[:-30]
            elif on_progress is not None:
                on_progress(dict(event, device=self.name))

        try:
            try:
                res = t.run(
                    ["sh", "-c", RUN_WRAPPER, "edgebench-agent", pid_file, *self.deployer.python, agent, job_file],
                    on_stderr_line=on_line,
                    check=False,
                )
            except TransportError:
                self._stale.append(files)  # the agent may still run there: stop it on reconnect
                raise
            if res.exit_status is None:
                self._stale.append(files)
                raise TransportError(
                    f"device '{self.name}': the agent's session ended without an exit status "
                    f"(connection dropped or the agent was killed): {' | '.join(tail[-3:])}"
                )
            raw = t.get_bytes(outputs["result"], missing_ok=True)
            if raw is None:
                raise EdgebenchError(
                    f"agent on '{self.name}' exited {res.exit_status} without a result: {' | '.join(tail[-3:]) or '(no output)'}"
                )
            try:
                result = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EdgebenchError(f"agent on '{self.name}' wrote a result that is not JSON: {exc}") from None
            back = {v: k for k, v in pushed.items()}
            host_outputs = job.outputs()
            back.update({outputs[k]: v for k, v in host_outputs.items()})
            if result.get("ok") and "logits" in host_outputs:
                logits = t.get_bytes(outputs["logits"])
                assert logits is not None
                self.deployer.stats.bytes_pulled += len(logits)
                atomic_write_bytes(host_outputs["logits"], logits)
            self.deployer.stats.bytes_pulled += len(raw)
            result = _replace_strings(result, back)
            if isinstance(result.get("error"), str):  # device cache paths in a message -> host paths
                for device_path, host_path in back.items():
                    result["error"] = result["error"].replace(device_path, host_path)
            if result.get("ok"):
                env = result.setdefault("environment", {})
                env["device"] = self.name
                env["transport"] = {
                    "kind": "ssh",
                    "host": self.options.host,
                    "port": self.options.port,
                    "agent": PurePosixPath(agent).parent.name,
                }
            if "result" in host_outputs:
                atomic_write_json(host_outputs["result"], result)
        finally:
            try:
                if t.connected:
                    t.remove(*files)
            except EdgebenchError:
                pass
        if not result.get("ok"):
            self.check_ready(result)
            if res.exit_status == 2:
                raise EdgebenchError(f"on device '{self.name}': {result.get('error', 'agent failed')}")
            raise RuntimeError(f"agent on '{self.name}' crashed: {result.get('error')}\n{result.get('traceback', '')}")
        return result

    def _stop_stale(self) -> None:
        """Stop agents of attempts cut off by a dropped link, so they cannot disturb this one."""
        while self._stale:
            pid_file, job_file, *rest = self._stale[0]
            try:
                out = self.transport.run(
                    [*self.deployer.python, "-S", "-c", STOP_STALE_SCRIPT, pid_file, job_file],
                    check=False,
                    timeout_s=60,
                ).stdout.strip()
                if out:
                    log.warning("device '%s': %s agent of an interrupted attempt", self.name, out)
                self.transport.remove(pid_file, job_file, *rest)
            except TransportError:
                raise
            except EdgebenchError as exc:
                log.warning("device '%s': could not clean up an interrupted attempt: %s", self.name, exc)
            self._stale.pop(0)

    # -- public -----------------------------------------------------------------------------
    def _run_job(self, job: Job, on_progress: ProgressFn | None = None) -> dict:
        """Run *job* (host paths) on the device; retry a dropped link with back-off.

        Raises :class:`TransportError` (an :class:`EdgebenchError`) when the device stays
        unreachable after ``spec.retries`` retries; nothing is written on the host then.
        """
        attempts = int(self.spec.retries) + 1
        with self._job_lock:
            last: TransportError | None = None
            for attempt in range(attempts):
                self.attempts_last_job = attempt + 1
                try:
                    return self._attempt(job, on_progress)
                except TransportError as exc:
                    last = exc
                    self.transport.close()
                    self.deployer.reset()
                    if attempt + 1 < attempts:
                        delay = float(self.spec.retry_backoff_s) * (2**attempt)
                        log.warning("%s; retrying in %.1f s (%d/%d)", exc, delay, attempt + 1, attempts - 1)
                        time.sleep(delay)
            assert last is not None
            raise TransportError(
                f"{last} (gave up after {attempts} attempt{'s' if attempts > 1 else ''}; results already "
                "written are kept, re-run to resume)"
            )
