"""The environment recorded with every number: host, CPU, OS, Python, runtimes."""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
from pathlib import Path

import edgebench

# What every job imports on the device besides the standard library (its backend's runtime aside).
AGENT_NEEDS: tuple[str, ...] = ("numpy", "psutil")


def missing_modules(names: tuple[str, ...] | list[str] = AGENT_NEEDS) -> dict[str, str]:
    """``{module: why not}`` for each of *names* this Python cannot find, so the agent answers
    "not ready: psutil is missing" instead of crashing inside a job. Looked up, not imported:
    a runtime imported here would sit in the memory a profile job measures as its baseline."""
    missing: dict[str, str] = {}
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError) as exc:
            missing[name] = f"{type(exc).__name__}: {exc}"
            continue
        if not found:
            missing[name] = f"No module named '{name}'"
    return missing


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


_SIMD = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "avx_vnni",
    "asimd",
    "asimddp",
    "asimdhp",
    "sve",
    "i8mm",
    "bf16",
)


def simd_flags() -> list[str]:
    """The vector extensions the runtime's kernels may use (x86 flags or ARM features)."""
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in _SIMD if f in have]
    return []


def jetson_info() -> dict:
    """L4T release, power mode and clocks when this is a Jetson; empty otherwise."""
    out: dict = {}
    release = _read("/etc/nv_tegra_release")
    if release:
        out["l4t_release"] = release.splitlines()[0]
    model = _read("/proc/device-tree/model")
    if model:
        out["board"] = model.rstrip("\x00")
    return out


def collect() -> dict:
    """Facts about the machine this process runs on. Cheap: no subprocesses, no heavy imports."""
    import numpy
    import psutil

    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    freq = None
    try:
        f = psutil.cpu_freq()
        freq = {"current_mhz": f.current, "max_mhz": f.max} if f else None
    except Exception:  # noqa: BLE001 - not readable in some containers
        freq = None
    env = {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": affinity,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_freq": freq,
        "memory_total_mb": round(psutil.virtual_memory().total / 1048576.0, 1),
        "simd": simd_flags(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "psutil": psutil.__version__,
        "edgebench": edgebench.__version__,
    }
    env.update(jetson_info())
    return env
