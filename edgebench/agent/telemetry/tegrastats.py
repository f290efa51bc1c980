"""tegrastats: a parser for every line format seen across Jetson boards and JetPack releases,
and a sampler that runs ``tegrastats --interval N`` during a measurement window.

Formats handled (see ``/work/shared/fixtures/tegrastats.txt`` and the tests):

* an optional leading timestamp ``MM-DD-YYYY HH:MM:SS`` (JetPack 5/6);
* ``RAM used/totalMB (lfb NxSMB)``, ``SWAP used/totalMB (cached NMB)``;
* ``CPU [19%@729,off,...]`` (offline cores are ``off``), and the old ``CPU [2%,off]@1734``;
* ``EMC_FREQ 4%@2133`` and ``EMC_FREQ 0%`` (no frequency);
* every ``GR3D_FREQ`` form: ``0%``, ``0%@305``, ``0%@[305]``, ``0%@[0,0]`` (one frequency per
  GPC), ``off``; likewise ``GR3D2_FREQ`` (the second GPU cluster on some boards);
* temperatures ``name@46.5C`` in any case (``CPU@``, ``cpu@``, ``tj@``); a sensor that reads
  ``-256C`` is absent and is dropped;
* power rails ``VDD_IN 5704mW/5704mW`` (current/average) and the unit-less JetPack 4 form
  ``GPU 463/463``.

Total power (:attr:`TegrastatsReading.power_total_mw`) is the module's input rail when the
board reports one (``VDD_IN``; ``POM_5V_IN`` on JetPack 4 Nano/TX2), else the sum of all rails.
The sum may under-count the module's input power (regulator losses and unmonitored rails), so
``power_source`` always says which one was used. Runs in the agent: standard library only.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

ABSENT_SENSOR_C = -256.0
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")  # whole-module input power, when the board reports it

_TS = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB(?: \(lfb (\d+)x(\d+)MB\))?")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB(?: \(cached (\d+)MB\))?")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\b(GR3D2?)_FREQ (?:(\d+)%(?:@(\[[\d,]*\]|\d+))?|(off))")
_TEMP = re.compile(r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"(?<![\w@\[,])([A-Za-z][A-Za-z0-9_]*) (\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?![\w%@])")
_ENGINE = re.compile(
    r"\b(VIC_FREQ|VIC|APE|NVENC\d?|NVDEC\d?|NVJPG\d?|OFA|PVA\d_FREQ|NVDLA\d|MSENC|SE) "
    r"(off|\d+%@\d+|\d+)\b"
)
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}


@dataclass(frozen=True)
class CpuCore:
    index: int
    online: bool
    load_pct: float | None
    freq_mhz: int | None


@dataclass(frozen=True)
class Rail:
    """One power rail: instantaneous and running-average power in milliwatts."""

    name: str
    current_mw: float
    average_mw: float


@dataclass(frozen=True)
class TegrastatsReading:
    """One tegrastats line, typed. Fields the line did not carry are ``None`` (or empty)."""

    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    lfb_blocks: int | None = None
    lfb_block_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    swap_cached_mb: int | None = None
    cpus: tuple[CpuCore, ...] = ()
    emc_util_pct: float | None = None
    emc_freq_mhz: int | None = None
    gpu_util_pct: float | None = None
    gpu_freq_mhz: tuple[int, ...] = ()  # one per GPC on boards that print a list
    gpu2_util_pct: float | None = None
    gpu2_freq_mhz: tuple[int, ...] = ()
    engines: dict[str, str] = field(default_factory=dict)  # "off", "729" or "0%@115"
    temps_c: dict[str, float] = field(default_factory=dict)  # absent (-256C) sensors dropped
    rails: tuple[Rail, ...] = ()
    power_total_mw: float | None = None
    power_source: str | None = None  # the input rail's name, or "sum of rails"

    @property
    def cpu_util_mean_pct(self) -> float | None:
        """Mean load over the online cores that report one."""
        loads = [c.load_pct for c in self.cpus if c.online and c.load_pct is not None]
        return sum(loads) / len(loads) if loads else None

    @property
    def rails_mw(self) -> dict[str, float]:
        """Instantaneous power per rail; a repeated name (``NC``) gets ``#2``, ``#3``..."""
        out: dict[str, float] = {}
        for rail in self.rails:
            key, n = rail.name, 1
            while key in out:
                n += 1
                key = f"{rail.name}#{n}"
            out[key] = rail.current_mw
        return out


def _freqs(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(int(v) for v in text.strip("[]").split(",") if v)


def _cpus(body: str, shared_freq: str | None) -> tuple[CpuCore, ...]:
    cores = []
    for i, item in enumerate(x.strip() for x in body.split(",")):
        if item == "off" or not item:
            cores.append(CpuCore(i, False, None, None))
            continue
        m = _CORE.match(item)
        if not m:
            raise EdgebenchError(f"tegrastats: CPU core {i}: expected 'N%@MHz' or 'off', found {item!r}")
        freq = m.group(2) or shared_freq
        cores.append(CpuCore(i, True, float(m.group(1)), int(freq) if freq else None))
    return tuple(cores)


def parse_tegrastats_line(line: str) -> TegrastatsReading:
    """Parse one tegrastats output line. A line without a ``RAM`` field is not tegrastats output."""
    text = line.strip()
    ts = _TS.match(text)
    timestamp = ts.group(1) if ts else None
    ram = _RAM.search(text)
    if ram is None:
        shown = text if len(text) < 80 else text[:77] + "..."
        raise EdgebenchError(f"tegrastats: expected a line with 'RAM used/totalMB', found {shown!r}")
    values: dict = {
        "timestamp": timestamp,
        "ram_used_mb": int(ram.group(1)),
        "ram_total_mb": int(ram.group(2)),
        "lfb_blocks": int(ram.group(3)) if ram.group(3) else None,
        "lfb_block_mb": int(ram.group(4)) if ram.group(4) else None,
    }
    swap = _SWAP.search(text)
    if swap:
        values.update(
            swap_used_mb=int(swap.group(1)),
            swap_total_mb=int(swap.group(2)),
            swap_cached_mb=int(swap.group(3)) if swap.group(3) else None,
        )
    cpu = _CPU.search(text)
    if cpu:
        values["cpus"] = _cpus(cpu.group(1), cpu.group(2))
    emc = _EMC.search(text)
    if emc:
        values["emc_util_pct"] = float(emc.group(1))
        values["emc_freq_mhz"] = int(emc.group(2)) if emc.group(2) else None
    for m in _GR3D.finditer(text):
        prefix = "gpu" if m.group(1) == "GR3D" else "gpu2"
        values[f"{prefix}_util_pct"] = None if m.group(4) else float(m.group(2))
        values[f"{prefix}_freq_mhz"] = _freqs(m.group(3))
    values["engines"] = {m.group(1): m.group(2) for m in _ENGINE.finditer(text)}
    temps: dict[str, float] = {}
    for m in _TEMP.finditer(text):
        value = float(m.group(2))
        if value > ABSENT_SENSOR_C:
            temps[m.group(1)] = value
    values["temps_c"] = temps
    rails = tuple(
        Rail(m.group(1), float(m.group(2)), float(m.group(3)))
        for m in _RAIL.finditer(text)
        if m.group(1) not in _NOT_RAILS
    )
    values["rails"] = rails
    if rails:
        by_name = {r.name: r for r in rails}
        source = next((name for name in INPUT_RAILS if name in by_name), None)
        if source:
            values["power_total_mw"] = by_name[source].current_mw
            values["power_source"] = source
        else:
            values["power_total_mw"] = sum(r.current_mw for r in rails)
            values["power_source"] = "sum of rails"
    return TegrastatsReading(**values)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(readings: list[TegrastatsReading], interval_s: float | None = None) -> dict:
    """Summarize readings over a window: peaks of RAM/temperatures, means of power and loads."""
    powers = [r.power_total_mw for r in readings if r.power_total_mw is not None]
    rails: dict[str, list[float]] = {}
    temps: dict[str, float] = {}
    for r in readings:
        for name, mw in r.rails_mw.items():
            rails.setdefault(name, []).append(mw)
        for name, c in r.temps_c.items():
            temps[name] = max(c, temps.get(name, c))
    gpu = [r.gpu_util_pct for r in readings if r.gpu_util_pct is not None]
    gpu_freq = [sum(r.gpu_freq_mhz) / len(r.gpu_freq_mhz) for r in readings if r.gpu_freq_mhz]
    ram = [r.ram_used_mb for r in readings if r.ram_used_mb is not None]
    sources = sorted({r.power_source for r in readings if r.power_source})
    return {
        "source": "tegrastats",
        "samples": len(readings),
        "interval_s": interval_s,
        "cpu_util_mean_pct": _mean([u for r in readings if (u := r.cpu_util_mean_pct) is not None]),
        "ram_used_peak_mb": float(max(ram)) if ram else None,
        "ram_total_mb": float(readings[-1].ram_total_mb) if readings and readings[-1].ram_total_mb else None,
        "swap_used_peak_mb": _peak([r.swap_used_mb for r in readings]),
        "gpu_util_mean_pct": _mean(gpu),
        "gpu_util_peak_pct": max(gpu) if gpu else None,
        "gpu_freq_mean_mhz": _mean(gpu_freq),
        "gpu_mem_used_peak_mb": None,  # unified memory: GPU allocations are part of RAM above
        "emc_util_mean_pct": _mean([r.emc_util_pct for r in readings if r.emc_util_pct is not None]),
        "power_mean_mw": _mean(powers),
        "power_peak_mw": max(powers) if powers else None,
        "power_source": ", ".join(sources) if sources else None,
        "rails_mean_mw": {k: sum(v) / len(v) for k, v in rails.items()} or None,
        "temp_peak_c": temps or None,
    }


def _peak(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(max(present)) if present else None


def input_rail_trace(timed: list[tuple[float, TegrastatsReading]], make: type) -> tuple[str | None, list, str | None]:
    """The input rail's instantaneous power over *timed* ``(arrival, reading)`` pairs."""
    rail = next((r.power_source for _, r in timed if r.power_source in INPUT_RAILS), None)
    if rail is None:
        if not timed:
            return None, [], "no tegrastats line arrived"
        return (
            None,
            [],
            f"the board reports no input rail ({' / '.join(INPUT_RAILS)}); a sum of module rails misses "
            "regulator losses, so no energy is computed",
        )
    samples = [make(t, r.power_total_mw) for t, r in timed if r.power_source == rail and r.power_total_mw is not None]
    return rail, samples, None


def tegrastats_path() -> str | None:
    return shutil.which("tegrastats")


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` for the measurement window and parses its lines.

    ``stop()`` waits (up to two intervals) for at least one line, so a short window still
    yields a reading. Lines that do not parse are counted in ``unparsed_lines``, never guessed.
    """

    source = "tegrastats"

    def __init__(self, interval_s: float = 0.2, binary: str | None = None) -> None:
        self.interval_s = interval_s
        found = binary or tegrastats_path()
        if not found:
            raise EdgebenchError("telemetry 'tegrastats': expected the tegrastats binary on PATH, found none")
        self.binary: str = found
        self._readings: list[TegrastatsReading] = []
        self._arrivals: list[float] = []  # time.perf_counter() when each reading's line arrived
        self._unparsed = 0
        self._first = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.strip():
                continue
            arrived = time.perf_counter()
            try:
                self._readings.append(parse_tegrastats_line(line))
                self._arrivals.append(arrived)
                self._first.set()
            except EdgebenchError as exc:
                self._unparsed += 1
                log.debug("%s", exc)

    def start(self) -> None:
        ms = max(1, int(round(self.interval_s * 1000)))
        self._proc = subprocess.Popen(
            [self.binary, "--interval", str(ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, name="edgebench-tegrastats", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        if self._proc is None:
            raise RuntimeError("TegrastatsSampler.stop() before start()")
        self._first.wait(timeout=max(2 * self.interval_s, 1.0))
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        out = aggregate(list(self._readings), self.interval_s)
        out["unparsed_lines"] = self._unparsed
        return out

    def power_trace(self) -> tuple[str | None, list, str | None]:
        """``(rail, samples, reason)``: the board's input rail (VDD_IN / POM_5V_IN) as
        timestamped :class:`~edgebench.agent.telemetry.energy.PowerSample` s, or a reason
        when the board reports none (a sum of module rails is never used for energy)."""
        from edgebench.agent.telemetry.energy import PowerSample

        return input_rail_trace(list(zip(self._arrivals, self._readings)), PowerSample)
