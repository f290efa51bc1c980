"""A backend whose speed drifts over time, as a device that heats up or gains load does.

Its artifact is a JSON file ``{"cost_ms": ...}``: each inference busy-waits that long times the
device's slowdown, which ramps linearly from 1 at the first timed inference of any instance to
``1 + RAMP`` after ``RAMP_S`` seconds (and stays there). Busy-waiting, not sleeping: sleep's
granularity is coarser than the costs timed here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from edgebench.backends.base import Backend, Capabilities, TensorSpec

RAMP = 2.0  # the device ends 3x slower
RAMP_S = 1.0
_clock: dict[str, float] = {}  # start of the drift, shared by every instance in the process


def slowdown(now: float) -> float:
    start = _clock.setdefault("start", now)
    return 1.0 + RAMP * min(1.0, (now - start) / RAMP_S)


def reset() -> None:
    _clock.clear()


class DriftingBackend(Backend):
    name = "drifting"
    capabilities = Capabilities(user_models=False)

    def _open(self) -> None:
        with open(str(self.artifact)) as f:
            self._cost_s = json.load(f)["cost_ms"] / 1000.0

    def _close(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec("input", ("batch", 4), "float32")]

    def _execute(self, prepared: Any) -> Any:
        t0 = time.perf_counter()
        end = t0 + self._cost_s * slowdown(t0)
        while time.perf_counter() < end:
            pass
        return [np.zeros((next(iter(prepared.values())).shape[0], 2), dtype=np.float32)]

    def environment(self) -> dict:
        return {"backend": self.name, "version": "0"}
