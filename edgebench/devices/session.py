"""A query session with an agent on a device (``python -m edgebench.agent --serve``).

Used where work needs many small round trips to the deployed engine, like a decision-based
black-box attack. The transport (a local pipe or an SSH channel) only has to move text lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np

from edgebench.agent.protocol import Message, Query, SessionJob
from edgebench.agent.serve import decode, encode
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)


class QuerySession:
    """``query(x) -> logits`` against an artifact loaded once in an agent on a device."""

    def __init__(
        self,
        device_name: str,
        write_line: Callable[[str], None],
        read_line: Callable[[], str],
        close: Callable[[], None],
        check_reply: Callable[[dict], None] | None = None,
    ) -> None:
        self.device_name = device_name
        self._write, self._read, self._close = write_line, read_line, close
        self._check = check_reply  # raises the device's not-ready error for an agent that lacks a module
        self.queries = 0
        self.runtime: dict = {}
        self.input: dict = {}

    def _call(self, msg: Message) -> dict:
        self._write(msg.to_json() + "\n")
        line = self._read()
        if not line:
            raise EdgebenchError(f"agent session on '{self.device_name}' ended unexpectedly")
        reply = json.loads(line)
        if not reply.get("ok") and self._check is not None:
            self._check(reply)
        if not reply.get("ok"):
            raise EdgebenchError(f"agent session on '{self.device_name}': {reply.get('error')}")
        return reply

    def start(self, job: SessionJob) -> QuerySession:
        """Send the session's first line (*job*, device paths in it); the agent loads the artifact."""
        reply = self._call(job)
        self.runtime, self.input = reply.get("runtime", {}), reply.get("input", {})
        return self

    def query(self, x: np.ndarray) -> np.ndarray:
        """Logits of the deployed artifact for the float32 batch *x*."""
        enc = encode(x)
        reply = self._call(Query(x=enc["data"], shape=tuple(enc["shape"])))
        self.queries += int(x.shape[0])
        return decode(reply["logits"], reply["shape"])

    def close(self) -> None:
        self._close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
