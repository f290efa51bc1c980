"""``edgebench devices check NAME``: can this device run the agent, and in what state is it?

Connects (with the same strict host-key rules as a run), then runs one read-only probe with
the device's Python and reports: Python, numpy/psutil (the agent's needs), runtimes with
versions (onnxruntime and its execution providers, TensorRT), the Jetson's L4T and JetPack
release, power mode (``nvpmodel -q``) and clocks (``jetson_clocks --show``, where present),
telemetry sources, free disk at the work directory, and the clock skew between device and host.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from edgebench.agent.env import AGENT_NEEDS
from edgebench.devices.inventory import DeviceSpec
from edgebench.devices.readiness import fix_hint, missing_phrase, needed_modules
from edgebench.devices.ssh.deploy import Deployer
from edgebench.devices.ssh.transport import SshOptions, SshTransport
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

SKEW_WARN_S = 2.0
DISK_WARN_GB = 1.0

# Runs on the device with its Python: standard library only, read-only, every tool optional.
# Extra arguments: more modules to try, and "dist:NAME" for installed distributions' versions.
PROBE_SCRIPT = r"""
import importlib, json, os, platform, shutil, subprocess, sys
out = {"python": {"version": platform.python_version(), "executable": sys.executable,
                  "implementation": sys.implementation.name, "prefix": sys.prefix, "base_prefix": sys.base_prefix},
       "machine": platform.machine(), "os": platform.platform(), "libc": list(platform.libc_ver()),
       "modules": {}, "dists": {}}
extra = [a for a in sys.argv[2:] if not a.startswith("dist:")]
for name in ("numpy", "psutil", "onnxruntime", "tensorrt", "pynvml", "jtop", "pip") + tuple(extra):
    try:
        mod = importlib.import_module(name)
        row = {"available": True, "version": getattr(mod, "__version__", None)}
        if name == "onnxruntime":
            row["providers"] = list(mod.get_available_providers())
        out["modules"][name] = row
    except Exception as exc:
        out["modules"][name] = {"available": False, "reason": type(exc).__name__ + ": " + str(exc)[:200]}

def run(argv, timeout=10):
    exe = shutil.which(argv[0]) or (argv[0] if os.path.isfile(argv[0]) else None)
    if not exe:
        return None
    try:
        p = subprocess.run([exe] + argv[1:], capture_output=True, text=True, timeout=timeout)
        return {"rc": p.returncode, "out": p.stdout.strip()[-4000:], "err": p.stderr.strip()[-500:]}
    except Exception as exc:
        return {"rc": None, "out": "", "err": type(exc).__name__ + ": " + str(exc)}

def read(path):
    try:
        with open(path) as f:
            return f.read().strip().rstrip("\x00")
    except OSError:
        return None

for arg in sys.argv[2:]:
    if arg.startswith("dist:"):
        try:
            from importlib import metadata
            out["dists"][arg[5:]] = metadata.version(arg[5:])
        except Exception:
            out["dists"][arg[5:]] = None

out["l4t_release"] = read("/etc/nv_tegra_release")
out["board"] = read("/proc/device-tree/model")
out["jetpack"] = run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
out["nvpmodel"] = run(["nvpmodel", "-q"])
out["jetson_clocks"] = run(["jetson_clocks", "--show"])
out["tegrastats"] = shutil.which("tegrastats")
out["jtop_socket"] = os.path.exists("/run/jtop.sock")
out["nvidia_smi"] = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
root = os.path.abspath(os.path.expanduser(sys.argv[1]))
probe = root
while not os.path.isdir(probe):
    probe = os.path.dirname(probe)
du = shutil.disk_usage(probe)
out["workdir"] = root
out["disk_free_gb"] = du.free / 1e9
out["workdir_writable"] = os.access(probe, os.W_OK)
print(json.dumps(out))
"""

TIME_SCRIPT = "import time; print(repr(time.time()))"


@dataclass
class CheckReport:
    """What ``devices check`` found. ``problems`` block a run; ``warnings`` do not."""

    device: str
    address: str
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "address": self.address,
            "ok": self.ok,
            **self.facts,
            "problems": self.problems,
            "warnings": self.warnings,
        }


def runtime_modules(spec: DeviceSpec) -> tuple[str, ...]:
    """The modules of the runtimes *spec* lists (what the probe must try besides its own list)."""
    return tuple(m for m in needed_modules(spec) if m not in AGENT_NEEDS)


def parse_nvpmodel(text: str) -> dict:
    """``nvpmodel -q`` -> ``{"name": "15W", "id": 0}`` (either may be missing)."""
    out: dict[str, Any] = {"name": None, "id": None}
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith("nv power mode"):
            out["name"] = line.split(":", 1)[1].strip() if ":" in line else None
        elif line.isdigit():
            out["id"] = int(line)
    return out


def parse_l4t(text: str | None) -> str | None:
    """``# R36 (release), REVISION: 4.0, ...`` -> ``"36.4.0"``."""
    import re

    if not text:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else text.splitlines()[0]


def clock_skew(transport: SshTransport, python: list[str]) -> tuple[float, float]:
    """Remote minus local wall-clock time (s) and its uncertainty.

    The device reads its clock just before answering, after Python's start-up; so the local
    time of that reading is taken as the answer's arrival minus half a bare round trip
    (measured with ``true``), and the uncertainty is that half round trip.
    """
    t0 = time.time()
    transport.run(["true"], timeout_s=30)
    half_rtt = (time.time() - t0) / 2.0
    res = transport.run([*python, "-c", TIME_SCRIPT], timeout_s=30)
    t1 = time.time()
    remote = float(res.stdout.strip())
    return remote - (t1 - half_rtt), half_rtt


def run_probe(transport: SshTransport, python: list[str], spec: DeviceSpec, extra: tuple[str, ...] = ()) -> dict:
    """The read-only probe, run on the device with *python*: what :data:`PROBE_SCRIPT` prints.
    *extra*: more modules to try, and ``dist:NAME`` for an installed distribution's version."""
    res = transport.run([*python, "-c", PROBE_SCRIPT, spec.workdir, *extra], timeout_s=120, check=False)
    if res.exit_status in (126, 127):
        raise EdgebenchError(
            f"device '{spec.name}': cannot run python {' '.join(python)!r} (exit {res.exit_status}); "
            f"install Python 3 or set 'python' in the device file to its path (`edgebench devices setup "
            f"{spec.name} --python PATH` makes a virtual environment from it)"
        )
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise EdgebenchError(f"device '{spec.name}': the probe failed (exit {res.exit_status}): {tail}") from None


def check_device(spec: DeviceSpec, accept_new_host_key: bool | None = None) -> CheckReport:
    """Connect to *spec* and report; connection failures raise :class:`EdgebenchError`."""
    if spec.kind != "ssh":
        return check_local(spec)
    options = SshOptions.from_spec(spec, accept_new_host_key)
    transport = SshTransport(options, spec.name)
    report = CheckReport(spec.name, f"{spec.user + '@' if spec.user else ''}{options.address}")
    try:
        t0 = time.perf_counter()
        transport.connect()
        report.facts["connect_s"] = round(time.perf_counter() - t0, 3)
        report.facts["host_key_recorded"] = transport.host_key_recorded
        deployer = Deployer(transport, spec.python, spec.workdir)
        probe = run_probe(transport, deployer.python, spec, runtime_modules(spec))
        skew, uncertainty = clock_skew(transport, deployer.python)
    finally:
        transport.close()
    _interpret(spec, probe, report)
    report.facts["clock_skew_s"] = round(skew, 3)
    report.facts["clock_skew_uncertainty_s"] = round(uncertainty, 3)
    if abs(skew) > SKEW_WARN_S + uncertainty:
        report.warnings.append(
            f"device clock is {skew:+.1f} s off the host's; timestamps in results will disagree (enable NTP on the device)"
        )
    return report


def _interpret(spec: DeviceSpec, probe: dict, report: CheckReport) -> None:
    mods = probe.get("modules", {})
    py = probe.get("python", {})
    report.facts["python"] = py
    report.facts["machine"] = probe.get("machine")
    report.facts["os"] = probe.get("os")
    major_minor = tuple(int(x) for x in (py.get("version") or "0.0").split(".")[:2])
    if major_minor < (3, 8):
        report.problems.append(f"Python {py.get('version')} on the device: the agent needs Python 3.8 or newer")
    lacking = [need for need in AGENT_NEEDS if not mods.get(need, {}).get("available")]
    if lacking:
        report.problems.append(f"{missing_phrase(lacking)}: {fix_hint(spec, lacking)}")
    runtimes: dict[str, Any] = {}
    ort = mods.get("onnxruntime", {})
    runtimes["onnxruntime"] = (
        {"version": ort.get("version"), "providers": ort.get("providers")} if ort.get("available") else None
    )
    trt = mods.get("tensorrt", {})
    runtimes["tensorrt"] = {"version": trt.get("version")} if trt.get("available") else None
    report.facts["runtimes"] = runtimes
    for wanted in runtime_modules(spec):
        if not mods.get(wanted, {}).get("available"):
            reason = mods.get(wanted, {}).get("reason", "not importable")
            report.problems.append(
                f"runtime '{wanted}' listed for this device is unavailable there: {reason}; {fix_hint(spec, [wanted])}"
            )
    jetpack = probe.get("jetpack") or {}
    nvp = probe.get("nvpmodel")
    clocks = probe.get("jetson_clocks")
    report.facts["jetson"] = {
        "board": probe.get("board"),
        "l4t_release": parse_l4t(probe.get("l4t_release")),
        "jetpack": jetpack.get("out") if jetpack.get("rc") == 0 and jetpack.get("out") else None,
        "power_mode": parse_nvpmodel(nvp["out"]) if nvp and nvp.get("rc") == 0 else None,
        "power_mode_error": (nvp.get("err") or f"exit {nvp.get('rc')}") if nvp and nvp.get("rc") != 0 else None,
        "jetson_clocks": clocks.get("out") if clocks and clocks.get("rc") == 0 else None,
        "jetson_clocks_error": (clocks.get("err") or f"exit {clocks.get('rc')}")
        if clocks and clocks.get("rc") != 0
        else None,
    }
    if probe.get("l4t_release") and not nvp:
        report.warnings.append("nvpmodel not found: the power mode will not be recorded with results")
    if clocks and clocks.get("rc") != 0:
        report.warnings.append("jetson_clocks --show failed (it usually needs root): clock state not recorded")
    telemetry = []
    if mods.get("jtop", {}).get("available") and probe.get("jtop_socket"):
        telemetry.append("jtop")
    if probe.get("tegrastats"):
        telemetry.append("tegrastats")
    if mods.get("pynvml", {}).get("available") and probe.get("nvidia_smi") and probe["nvidia_smi"].get("rc") == 0:
        telemetry.append("nvml")
    if mods.get("psutil", {}).get("available"):
        telemetry.append("psutil")
    report.facts["telemetry"] = telemetry
    report.facts["telemetry_auto"] = telemetry[0] if telemetry else None
    report.facts["workdir"] = probe.get("workdir")
    report.facts["disk_free_gb"] = round(float(probe.get("disk_free_gb", 0.0)), 2)
    if not probe.get("workdir_writable", True):
        report.problems.append(f"work directory {probe.get('workdir')} is not writable on the device")
    if report.facts["disk_free_gb"] < DISK_WARN_GB:
        report.warnings.append(f"only {report.facts['disk_free_gb']} GB free at {probe.get('workdir')}")


def check_local(spec: DeviceSpec) -> CheckReport:
    """The same report for this host (no SSH): the probe runs in-process."""
    import subprocess
    import sys

    report = CheckReport(spec.name, "this host")
    res = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, spec.workdir, *runtime_modules(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        probe = json.loads(res.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise EdgebenchError(f"local probe failed: {res.stderr.strip()[-200:]}") from None
    _interpret(spec, probe, report)
    report.facts["clock_skew_s"] = 0.0
    return report
