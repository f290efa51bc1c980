"""NVML (``pynvml`` from nvidia-ml-py) for discrete NVIDIA GPUs: board power, GPU utilisation,
memory used (device-wide and by this process), temperature. Jetsons have no NVML; they use
tegrastats or jtop. Imports pynvml lazily; availability is decided by actually loading NVML.
"""

from __future__ import annotations

import logging
import os
import threading

from edgebench.agent.telemetry.base import PsutilSampler
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

MB = 1048576.0


def nvml_unavailable_reason() -> str | None:
    """``None`` when NVML loads and sees a GPU; otherwise why not (one line)."""
    try:
        import pynvml
    except ImportError as exc:
        return f"pynvml not importable ({exc}); pip install nvidia-ml-py"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        return f"NVML did not load: {type(exc).__name__}: {exc}"
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    return None if count > 0 else "NVML loaded but reports no GPU"


def _device_index() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else 0


class NvmlSampler:
    """Samples GPU 0 (or the first of ``CUDA_VISIBLE_DEVICES``) plus psutil's CPU/RAM view.

    A reading the GPU does not support (power on some boards) stays ``None``.
    """

    source = "nvml"

    def __init__(self, interval_s: float = 0.1) -> None:
        reason = nvml_unavailable_reason()
        if reason:
            raise EdgebenchError(f"telemetry 'nvml' is unavailable: {reason}")
        self.interval_s = interval_s
        self._host = PsutilSampler(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._power: list[float] = []
        self._util: list[float] = []
        self._mem: list[float] = []
        self._proc_mem: list[float] = []
        self._temp: list[float] = []
        self._name: str | None = None

    def _sample(self, nv, handle) -> None:  # noqa: ANN001 - pynvml objects
        pid = os.getpid()
        for values, read in (
            (self._power, lambda: float(nv.nvmlDeviceGetPowerUsage(handle))),  # milliwatts
            (self._util, lambda: float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)),
            (self._mem, lambda: nv.nvmlDeviceGetMemoryInfo(handle).used / MB),
            (self._temp, lambda: float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))),
        ):
            try:
                values.append(read())
            except nv.NVMLError:
                pass  # not supported on this board: stays unavailable
        try:
            procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
            mine = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory]
            if mine:
                self._proc_mem.append(sum(mine) / MB)
        except nv.NVMLError:
            pass

    def _run(self) -> None:
        import pynvml as nv

        nv.nvmlInit()
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(_device_index())
            name = nv.nvmlDeviceGetName(handle)
            self._name = name.decode() if isinstance(name, bytes) else str(name)
            self._sample(nv, handle)
            while not self._stop.wait(self.interval_s):
                self._sample(nv, handle)
            self._sample(nv, handle)
        finally:
            nv.nvmlShutdown()

    def start(self) -> None:
        self._host.start()
        self._thread = threading.Thread(target=self._run, name="edgebench-nvml", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        host = self._host.stop()

        def mean(v: list[float]) -> float | None:
            return sum(v) / len(v) if v else None

        host.update(
            source=self.source,
            samples=max(len(self._util), len(self._power)),
            gpu_name=self._name,
            gpu_util_mean_pct=mean(self._util),
            gpu_util_peak_pct=max(self._util) if self._util else None,
            gpu_mem_used_peak_mb=max(self._mem) if self._mem else None,
            gpu_mem_process_peak_mb=max(self._proc_mem) if self._proc_mem else None,
            power_mean_mw=mean(self._power),
            power_peak_mw=max(self._power) if self._power else None,
            power_source="nvml board power" if self._power else None,
            temp_peak_c={"gpu": max(self._temp)} if self._temp else None,
        )
        return host
