"""This host. The agent runs in a subprocess so its memory and imports are isolated."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from edgebench.agent.protocol import parse_progress
from edgebench.devices.base import Device, ProgressFn
from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_json, read_json

log = logging.getLogger(__name__)


def agent_command(python: str = sys.executable) -> list[str]:
    return [python, "-m", "edgebench.agent"]


class LocalDevice(Device):
    def run_job(self, job: dict, on_progress: ProgressFn | None = None) -> dict:
        job = dict(job)
        for key in ("artifact", "inputs", "result", "logits"):
            if job.get(key):
                job[key] = str(Path(job[key]).resolve())
        job["sets"] = [dict(s, path=str(Path(s["path"]).resolve())) for s in job.get("sets") or []]
        if self.spec.threads and not (job.get("options") or {}).get("threads"):
            job.setdefault("options", {})["threads"] = self.spec.threads
        with tempfile.TemporaryDirectory(prefix="edgebench-job-") as tmp:
            job_path = Path(tmp) / "job.json"
            result_path = job.get("result") or str(Path(tmp) / "result.json")
            job["result"] = result_path
            atomic_write_json(job_path, job)
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            proc = subprocess.Popen(agent_command() + [str(job_path)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
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
                raise EdgebenchError(f"agent on '{self.name}' exited {proc.returncode} without a result: {' | '.join(tail[-3:])}")
            result = read_json(result_path, "agent result")
        if not result.get("ok"):
            if proc.returncode == 2:
                raise EdgebenchError(result.get("error", "agent failed"))
            raise RuntimeError(f"agent on '{self.name}' crashed: {result.get('error')}\n{result.get('traceback', '')}")
        result.setdefault("environment", {})["device"] = self.name
        return result
