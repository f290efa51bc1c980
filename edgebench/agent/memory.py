"""Resident memory of this process: before load, after load, and peak while running.

The peak combines a background sampler (psutil, every few ms) with the kernel's exact
high-water mark. On Linux that is ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s
``ru_maxrss`` survives ``fork`` + ``exec`` and so reports the *forking parent's* peak when that
was larger (an agent started from a host process holding torch showed 928 MB for 70 MB of its
own), while ``VmHWM`` belongs to this process image only. Elsewhere ``ru_maxrss`` is used.
"""

from __future__ import annotations

import threading
import time

MB = 1024.0 * 1024.0


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MB


def _vm_hwm_mb(status: str = "/proc/self/status") -> float | None:
    """``VmHWM`` (peak RSS of this process image, kB in the file) in MB; None if unreadable."""
    try:
        with open(status) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def ru_maxrss_mb() -> float | None:
    """Peak RSS of this process since it started (MB), without the forking parent's peak:
    ``VmHWM`` on Linux, ``getrusage`` elsewhere."""
    import sys

    if sys.platform.startswith("linux"):
        hwm = _vm_hwm_mb()
        if hwm is not None:
            return hwm
    return getrusage_maxrss_mb()


def getrusage_maxrss_mb() -> float | None:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (on Linux it includes the forking parent's peak)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    # Linux reports kilobytes, macOS bytes.
    import sys

    val = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return val / MB if sys.platform == "darwin" else val / 1024.0


class RssSampler:
    """Samples this process's RSS in a thread while a block runs; ``peak_mb`` afterwards."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, proc.memory_info().rss / MB)
            self.samples += 1
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._run, name="edgebench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
