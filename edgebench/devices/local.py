"""This host. The agent runs in a subprocess so its memory and imports are isolated."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.agent.protocol import Job, SessionJob, parse_progress
from edgebench.devices.base import Device, ProgressFn

if TYPE_CHECKING:
    from edgebench.devices.session import QuerySession
from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_text, read_json

log = logging.getLogger(__name__)


def agent_command(python: str = sys.executable) -> list[str]:
    return [python, "-m", "edgebench.agent"]


def _agent_env() -> dict[str, str]:
    """The environment for a local agent: this source tree first on the import path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _absolute(path: str) -> str:
    """A local device's path for a host file: the same file, absolute (the agent runs elsewhere)."""
    return str(Path(path).resolve())


class LocalDevice(Device):
    def __enter__(self) -> LocalDevice:
        """Describe this machine before any job (its peak microbenchmark must never run while an
        agent measures here; measured once per machine, then read from the cache)."""
        from edgebench.devices.describe import device_profile

        device_profile(self.spec)
        return self

    def _run_job(self, job: Job, on_progress: ProgressFn | None = None) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgebench-job-") as tmp:
            job_path = Path(tmp) / "job.json"
            outputs = {k: _absolute(v) for k, v in job.outputs().items()}
            result_path = outputs.setdefault("result", str(Path(tmp) / "result.json"))
            local = job.relocated({p: _absolute(p) for p in job.paths()}, outputs)
            atomic_write_text(job_path, local.to_json())
            proc = subprocess.Popen(
                agent_command() + [str(job_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_agent_env(),
            )
            tail: list[str] = []
            assert proc.stderr is not None
            for line in proc.stderr:
                event = parse_progress(line)
                if event is not None:
                    if on_progress:
                        on_progress(event)
                else:
                    tail.append(line.rstrip())
                    tail = tail[-30:]
            proc.wait()
            if not Path(result_path).is_file():
                raise EdgebenchError(
                    f"agent on '{self.name}' exited {proc.returncode} without a result: {' | '.join(tail[-3:])}"
                )
            result = read_json(result_path, "agent result")
        if not result.get("ok"):
            self.check_ready(result)
            if proc.returncode == 2:
                raise EdgebenchError(result.get("error", "agent failed"))
            raise RuntimeError(f"agent on '{self.name}' crashed: {result.get('error')}\n{result.get('traceback', '')}")
        result.setdefault("environment", {})["device"] = self.name
        return result

    def _open_session(self, job: SessionJob) -> QuerySession:
        from edgebench.devices.session import QuerySession

        local = job.relocated({p: _absolute(p) for p in job.paths()})
        proc = subprocess.Popen(
            agent_command() + ["--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_agent_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None

        def write(line: str) -> None:
            proc.stdin.write(line)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]

        def close() -> None:
            if proc.poll() is None:
                proc.stdin.close()  # type: ignore[union-attr]
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

        session = QuerySession(self.name, write, proc.stdout.readline, close, self.check_ready)
        try:
            return session.start(local)
        except BaseException:
            close()
            raise
