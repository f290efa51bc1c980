"""``python -m edgebench.agent JOB.json``: run one job, write its result atomically.

Exit codes: 0 done, 2 the job could not run (the reason is in the result file and on stderr).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

from edgebench.agent.jobs import run_job
from edgebench.agent.protocol import PROTOCOL, parse_job
from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if argv == ["--serve"]:
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
        result = run_job(parse_job(raw))
        code = 0
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
