"""Waiting on events in tests, never on the clock.

A test waits for what it needs (a file appears, a process exits, a port answers) and fails on
time only when nothing happens for :data:`HANG_S`: a limit that catches a hang, which a busy
machine (a full CI runner, a fresh clone's first run) never reaches. Nothing a test asserts
depends on how fast the machine is.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HANG_S = 900.0  # seconds without the awaited event: only a hang takes this long


def wait_for(condition: Callable[[], T], what: str, hang_s: float = HANG_S, poll_s: float = 0.05) -> T:
    """Poll *condition* until it returns something truthy, and return that; fail the test, naming
    *what* was awaited, only after *hang_s* without it."""
    deadline = time.monotonic() + hang_s
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"hang: no {what} after {hang_s:.0f} s")
        time.sleep(poll_s)


def finish(proc: subprocess.Popen, hang_s: float = HANG_S) -> int:
    """Wait for *proc* to exit (its output must go to files, not pipes nobody reads); kill it and
    fail only after *hang_s*."""
    try:
        return proc.wait(timeout=hang_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"hang: {proc.args!r} still running after {hang_s:.0f} s") from None
