"""A persistent agent session: ``python -m edgebench.agent --serve``.

For work that needs many small round trips to the deployed engine (a decision-based black-box
attack sends thousands of queries), starting an agent per query would measure process start-up,
not the engine. The session loads the artifact once, then answers JSON lines on stdin:

    -> {"protocol": 1, "kind": "session", "artifact": ..., "backend": ..., "options": {...}}  (first line)
    <- {"ok": true, "input": {"name", "shape", "dtype"}, "runtime": {...}}
    -> {"protocol": 1, "kind": "query", "x": "<base64 of float32 C-order bytes>", "shape": [n, c, h, w]}
    <- {"ok": true, "logits": "<base64 float32>", "shape": [n, k]}
    -> (end of input)  the session closes

Both kinds of line are messages of :mod:`edgebench.agent.protocol` (``SessionJob``, ``Query``).
An error answers ``{"ok": false, "error": "..."}`` and the session goes on (or ends, if the
artifact could not be loaded).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import IO

import numpy as np

from edgebench.agent.protocol import Query, SessionJob
from edgebench.errors import EdgebenchError


def encode(arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return {"data": base64.b64encode(arr.tobytes()).decode("ascii"), "shape": list(arr.shape)}


def decode(data: str, shape: list[int]) -> np.ndarray:
    """A writable float32 array (a bytearray buffer: callers hand it to torch, which writes)."""
    return np.frombuffer(bytearray(base64.b64decode(data)), dtype=np.float32).reshape(shape)


def _reply(out: IO[str], msg: dict) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def serve(inp: IO[str] = sys.stdin, out: IO[str] = sys.stdout) -> int:
    from edgebench.backends.registry import create

    first = inp.readline()
    try:
        job = SessionJob.from_json(first)
        backend = create(job.backend, job.artifact, job.options)
        backend.open()
    except EdgebenchError as exc:
        _reply(out, {"ok": False, "error": str(exc)})
        return 2
    spec = backend.input_specs()[0]
    _reply(
        out,
        {
            "ok": True,
            "input": {"name": spec.name, "shape": [str(d) for d in spec.shape], "dtype": spec.dtype},
            "runtime": backend.environment(),
        },
    )
    queries = 0
    try:
        for line in inp:
            if not line.strip():
                continue
            try:
                msg = Query.from_json(line)
                x = decode(msg.x, list(msg.shape))
                logits = backend.infer({spec.name: x.astype(spec.dtype, copy=False)})[0]
                queries += int(x.shape[0])
                enc = encode(logits)
                _reply(out, {"ok": True, "logits": enc["data"], "shape": enc["shape"], "queries": queries})
            except (EdgebenchError, ValueError) as exc:
                _reply(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        backend.close()
    return 0
