"""What every telemetry sampler shares: the reading keys, the :class:`Sampler` protocol,
:func:`complete`, and the two samplers that need nothing but psutil (:class:`PsutilSampler`,
also the host view inside NVML's) or nothing at all (:class:`NullSampler`).

Kept apart from the package's registry so a sampler module can build on these without
importing the registry that imports it.
"""

from __future__ import annotations

import threading
from typing import Protocol

KEYS = (
    "source",
    "samples",
    "interval_s",
    "cpu_util_mean_pct",
    "ram_used_peak_mb",
    "gpu_util_mean_pct",
    "gpu_util_peak_pct",
    "gpu_mem_used_peak_mb",
    "power_mean_mw",
    "power_peak_mw",
    "power_source",
    "rails_mean_mw",
    "temp_peak_c",
)


class Sampler(Protocol):
    def start(self) -> None: ...

    def stop(self) -> dict: ...


def complete(reading: dict) -> dict:
    """*reading* with every key of :data:`KEYS` present (``None`` where not measured)."""
    out = {k: None for k in KEYS}
    out.update(reading)
    return out


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
        return complete(
            {
                "source": self.source,
                "samples": len(self._cpu),
                "interval_s": self.interval_s,
                "cpu_util_mean_pct": sum(self._cpu) / len(self._cpu) if self._cpu else None,
                "ram_used_peak_mb": max(self._mem) if self._mem else None,
                "power_mean_mw": None,
                "gpu_util_mean_pct": None,
            }
        )


class NullSampler:
    """``telemetry: none``: nothing sampled, every reading unavailable."""

    source = "none"

    def start(self) -> None:
        pass

    def stop(self) -> dict:
        return complete({"source": self.source, "samples": 0})
