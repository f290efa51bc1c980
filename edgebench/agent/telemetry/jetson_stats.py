"""jetson-stats (``jtop``): the jtop service's view of a Jetson (RAM, GPU load, power rails,
temperatures). Needs the ``jetson-stats`` package and its service (``/run/jtop.sock``); when
either is missing the sampler is unavailable with the reason, and ``auto`` moves on to
tegrastats.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

JTOP_SOCKET = "/run/jtop.sock"


def jtop_unavailable_reason() -> str | None:
    try:
        import jtop  # noqa: F401
    except ImportError as exc:
        return f"jetson-stats not importable ({exc}); pip install jetson-stats"
    if not os.path.exists(JTOP_SOCKET):
        return f"jtop service not running ({JTOP_SOCKET} missing): sudo systemctl start jtop.service"
    return None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def input_rail_reading(stats: dict) -> tuple[str, float] | None:
    """``(rail, mW)`` of the board's input rail in a ``jetson.stats`` dict (``Power VDD_IN`` or
    ``Power POM_5V_IN``), or None; ``Power TOT`` may be a sum of module rails and is never used."""
    from edgebench.agent.telemetry.tegrastats import INPUT_RAILS

    for rail in INPUT_RAILS:
        value = _num(stats.get(f"Power {rail}"))
        if value is not None:
            return rail, value
    return None


class JtopSampler:
    """Reads ``jetson.stats`` and ``jetson.memory`` on every jtop update during the window."""

    source = "jtop"

    def __init__(self, interval_s: float = 0.2) -> None:
        reason = jtop_unavailable_reason()
        if reason:
            raise EdgebenchError(f"telemetry 'jtop' is unavailable: {reason}")
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: str | None = None
        self._gpu: list[float] = []
        self._power: list[float] = []
        self._ram_mb: list[float] = []
        self._cpu: list[float] = []
        self._rails: dict[str, list[float]] = {}
        self._temps: dict[str, float] = {}
        self._input: list[tuple[float, str, float]] = []  # (perf_counter s, rail, mW) per update

    def _record(self, jetson) -> None:  # noqa: ANN001 - a jtop object
        stats = dict(jetson.stats or {})
        rail = input_rail_reading(stats)
        if rail is not None:
            self._input.append((time.perf_counter(), rail[0], rail[1]))
        gpu = _num(stats.get("GPU"))
        if gpu is not None:
            self._gpu.append(gpu)
        total = _num(stats.get("Power TOT"))
        if total is not None:
            self._power.append(total)
        cpus = [v for k, v in stats.items() if k.startswith("CPU") and _num(v) is not None]
        if cpus:
            self._cpu.append(sum(cpus) / len(cpus))
        for key, value in stats.items():
            v = _num(value)
            if v is None:
                continue
            if key.startswith("Power ") and key != "Power TOT":
                self._rails.setdefault(key[6:], []).append(v)
            elif key.startswith("Temp ") and v > -256:
                name = key[5:]
                self._temps[name] = max(v, self._temps.get(name, v))
        try:
            ram = jetson.memory["RAM"]
            self._ram_mb.append(float(ram["used"]) / 1024.0)  # jtop reports kB
        except (KeyError, TypeError, AttributeError):
            pass

    def _run(self) -> None:
        from jtop import jtop

        try:
            with jtop(interval=self.interval_s) as jetson:
                self._ready.set()
                while jetson.ok() and not self._stop.is_set():
                    self._record(jetson)
        except Exception as exc:  # noqa: BLE001 - jtop raises its own JtopException types
            self._error = f"{type(exc).__name__}: {exc}"
            self._ready.set()

    def power_trace(self) -> tuple[str | None, list, str | None]:
        """The input rail's samples, timestamped when jtop delivered them (see
        :class:`~edgebench.agent.telemetry.energy.PowerTrace`)."""
        from edgebench.agent.telemetry.energy import PowerSample

        if not self._input:
            return None, [], "jtop reported no input rail (Power VDD_IN / POM_5V_IN) on this board"
        rail = self._input[0][1]
        return rail, [PowerSample(t, mw) for t, r, mw in self._input if r == rail], None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgebench-jtop", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

        def mean(v: list[float]) -> float | None:
            return sum(v) / len(v) if v else None

        return {
            "source": self.source,
            "samples": max(len(self._gpu), len(self._power), len(self._ram_mb)),
            "interval_s": self.interval_s,
            "error": self._error,
            "cpu_util_mean_pct": mean(self._cpu),
            "ram_used_peak_mb": max(self._ram_mb) if self._ram_mb else None,
            "gpu_util_mean_pct": mean(self._gpu),
            "gpu_util_peak_pct": max(self._gpu) if self._gpu else None,
            "gpu_mem_used_peak_mb": None,  # unified memory: part of RAM
            "power_mean_mw": mean(self._power),
            "power_peak_mw": max(self._power) if self._power else None,
            "power_source": "jtop Power TOT" if self._power else None,
            "rails_mean_mw": {k: sum(v) / len(v) for k, v in self._rails.items()} or None,
            "temp_peak_c": dict(self._temps) or None,
        }
