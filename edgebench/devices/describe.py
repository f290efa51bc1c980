"""The local device describes itself: CPU model, cores, SIMD flags, and a *measured* fp32 peak
and memory bandwidth from a short numpy microbenchmark, cached per machine.

A checked-in YAML describing one development host is wrong on every other machine; this runs on
the machine that measures. The peak is what numpy's BLAS reaches on an sgemm (an attainable
peak, below the datasheet's theoretical one), the bandwidth a STREAM-like copy counting read +
write bytes. Only fp32 is measured; other precisions stay unknown (None) rather than guessed.
The result is cached in ``<cache>/devices/local-<fingerprint>.json``, the fingerprint covering
host name, CPU model, logical cores, flags and numpy's version, so another machine (or a
changed one) measures again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# SIMD features worth showing, x86 and Arm (names as /proc/cpuinfo spells them)
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)
GEMM_N = 1024
COPY_MB = 64
REPEATS = 5


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """``{model, cores_logical, cores_physical, simd}`` from /proc/cpuinfo where present."""
    model, flags = None, set()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        physical = None
    return {
        "model": model or platform.processor() or platform.machine() or None,
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "simd": [f for f in SIMD_FLAGS if f in flags],
    }


def measure_peaks(gemm_n: int = GEMM_N, copy_mb: int = COPY_MB, repeats: int = REPEATS) -> dict:
    """Best-of-*repeats* numpy sgemm GFLOP/s and copy GB/s (read + write bytes) on this machine."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((gemm_n, gemm_n), dtype=np.float32)
    b = rng.random((gemm_n, gemm_n), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up: BLAS threads started, pages touched
    best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    sgemm = 2.0 * gemm_n**3 / best / 1e9
    src = np.ones(copy_mb * (1 << 20) // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    copy = 2.0 * src.nbytes / best / 1e9
    return {
        "sgemm_gops": sgemm,
        "copy_gbs": copy,
        "method": f"numpy {np.__version__}: {gemm_n}x{gemm_n} float32 matmul and a {copy_mb} MB copy "
        f"(read + write bytes), best of {repeats}",
    }


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fingerprint(info: dict) -> str:
    import numpy as np

    key = json.dumps([platform.node(), info.get("model"), info.get("cores_logical"), info.get("simd"), np.__version__])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def describe_local(cache_dir: Path | None = None, refresh: bool = False) -> dict:
    """A device ``profile`` for this machine (see the module docstring); measured once per machine."""
    from edgebench import settings
    from edgebench.util.io import atomic_write_json

    info = cpu_info()
    folder = Path(cache_dir) if cache_dir is not None else settings.cache_dir() / "devices"
    path = folder / f"local-{fingerprint(info)}.json"
    measured = None
    if path.is_file() and not refresh:
        try:
            measured = json.loads(path.read_text())
        except (OSError, ValueError):
            measured = None
    if measured is None:
        log.info("measuring this machine's fp32 peak and memory bandwidth (cached in %s)", path)
        measured = dict(measure_peaks(), measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write_json(path, measured)
    cores = info["cores_logical"]
    return {
        "cpu": f"{info['model']}, {cores} logical cores" if info["model"] else None,
        "cpu_info": info,
        "peak_gops": {"fp32": round(measured["sgemm_gops"], 1)},
        "memory_bandwidth_gbs": round(measured["copy_gbs"], 1),
        "peak_kind": "measured",
        "peak_source": f"measured: {measured['method']}",
        "bandwidth_source": f"measured: {measured['method']}",
        "measured": measured,
        "cache": str(path),
    }


def device_profile(spec: Any) -> dict:
    """The profile a roofline should use for *spec*: the YAML's, except that a ``local`` device
    whose YAML gives no ``peak_gops`` describes itself (:func:`describe_local`)."""
    profile = dict(getattr(spec, "profile", None) or {})
    if getattr(spec, "kind", None) == "local" and not profile.get("peak_gops"):
        try:
            return {**describe_local(), **profile}
        except Exception as exc:  # noqa: BLE001 - a description is optional; say why it is missing
            log.warning("local device could not describe itself: %s", exc)
            profile["describe_error"] = str(exc)
    return profile
