"""``python -m edgebench.agent JOB.json``: run one job, write its result atomically.

Exit codes: 0 done, 2 the job could not run (the reason is in the result file and on stderr).
A Python that lacks a module the job needs (numpy, psutil, the backend's runtime) is answered
before the job starts, with ``missing`` ({module: reason}) and ``python`` in the result, so the
host can say what to install (``edgebench devices setup``) rather than show a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

from edgebench.agent.env import AGENT_NEEDS, missing_modules
from edgebench.agent.protocol import PROTOCOL, Job, parse_job
from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_json


def job_runtimes(job: Job) -> list[str]:
    """The runtime modules of the backends *job* names (itself, or each of its entries)."""
    from edgebench.backends.registry import BACKENDS

    names = [getattr(job, "backend", None)] + [getattr(e, "backend", None) for e in getattr(job, "entries", ())]
    runtimes = [BACKENDS[n][2] for n in names if isinstance(n, str) and n in BACKENDS]
    return sorted({r for r in runtimes if r})


def not_ready(kind: Any, missing: dict[str, str]) -> dict:
    """The answer for a Python that lacks *missing*: one line, and the modules for the host."""
    names = ", ".join(missing)
    return {
        "protocol": PROTOCOL,
        "kind": kind,
        "ok": False,
        "error": f"not ready: {names} missing from {sys.executable} ({next(iter(missing.values()))})",
        "missing": missing,
        "python": sys.executable,
    }


def _serve_not_ready(missing: dict[str, str]) -> int:
    """A session on a Python without the agent's needs: read the opening line, answer why not."""
    sys.stdin.readline()
    sys.stdout.write(json.dumps(not_ready("session", missing)) + "\n")
    sys.stdout.flush()
    return 2


def _answer(raw: Any, kind: Any) -> tuple[dict, int]:
    """Run the job in *raw*, or say what is missing to run it: (result, exit code)."""
    missing = missing_modules(AGENT_NEEDS)
    if missing:  # checked before anything imports numpy: the job is not even parsed
        return not_ready(kind, missing), 2
    job = parse_job(raw)
    missing = missing_modules(job_runtimes(job))
    if missing:
        return not_ready(kind, missing), 2
    from edgebench.agent.jobs import run_job

    return run_job(job), 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if argv == ["--serve"]:
        missing = missing_modules(AGENT_NEEDS)
        if missing:
            return _serve_not_ready(missing)
        from edgebench.agent.serve import serve

        return serve()
    if len(argv) != 1:
        sys.stderr.write("usage: python -m edgebench.agent JOB.json | --serve\n")
        return 2
    try:
        with open(argv[0], encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        sys.stderr.write(f"error: cannot read job {argv[0]}: {exc}\n")
        return 2
    # where to answer and as which kind, read before the job is checked: a malformed job is
    # answered there too, with the one line that says what is wrong
    result_path = raw.get("result") if isinstance(raw, dict) and isinstance(raw.get("result"), str) else None
    kind = raw.get("kind") if isinstance(raw, dict) else None
    try:
        result, code = _answer(raw, kind)
        if code:
            sys.stderr.write(f"error: {result['error']}\n")
    except EdgebenchError as exc:
        result = {"protocol": PROTOCOL, "kind": kind, "ok": False, "error": str(exc)}
        sys.stderr.write(f"error: {exc}\n")
        code = 2
    except Exception as exc:  # noqa: BLE001 - report, then fail loudly
        result = {
            "protocol": PROTOCOL,
            "kind": kind,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        sys.stderr.write(traceback.format_exc())
        code = 1
    if result_path:
        atomic_write_json(result_path, result)
    else:
        sys.stdout.write(json.dumps(result) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
