"""``edgebench devices setup NAME``: make a board ready for the agent, and say what was done.

1. A virtual environment ``<workdir>/venv``, made with the device's own Python
   (``python -m venv --system-site-packages``, so JetPack's ``tensorrt`` and ``numpy`` are used
   as they are); kept when it is already there.
2. What the agent imports there and cannot (numpy, psutil, the device's runtimes; see
   :mod:`edgebench.devices.readiness`), plus any wheel the user names (NVIDIA's onnxruntime-gpu
   for JetPack, say), installed with that venv's pip: from the device's own index, or, for a
   board without internet (``offline=True``, or found when that pip cannot install from its
   index), from a **wheelhouse** the host downloads for the device's Python and platform
   (``pip download --only-binary=:all: --platform ... --python-version ... --implementation cp
   --abi ...``, read from the device's probe) and pushes over SSH, each file verified by sha256.
3. The device entry records the venv's Python (``python``) and the one it was made from
   (``base_python``), in the user inventory, so every later command runs the agent there.

Idempotent: a second run finds the venv, imports everything, reads the inventory, and changes
nothing. The probe is the one of ``devices check`` (:func:`edgebench.devices.check.run_probe`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgebench.agent.env import AGENT_NEEDS
from edgebench.devices.check import run_probe
from edgebench.devices.inventory import DeviceSpec, add_device
from edgebench.devices.readiness import fix_hint, missing_phrase, needed_modules, requirement
from edgebench.devices.ssh.deploy import Deployer
from edgebench.devices.ssh.transport import SshOptions, SshTransport
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

VENV = "venv"  # under the device's workdir
WHEELHOUSE = "wheelhouse"  # under the device's workdir: wheels pushed from the host, by name
INSTALL_TIMEOUT_S = 3600.0  # a large runtime built or unpacked on a small board takes a while
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class SetupStep:
    """One thing ``setup`` looked at: what, what it found or did, and whether it changed the device."""

    what: str
    detail: str
    changed: bool


@dataclass
class SetupReport:
    """What ``devices setup`` did. ``problems``: what is still missing (pip cannot provide it)."""

    device: str
    python: str  # the venv's interpreter on the device, as recorded in the inventory
    base_python: str
    steps: list[SetupStep] = field(default_factory=list)
    installed: dict[str, str | None] = field(default_factory=dict)  # requirement -> version now there
    modules: dict[str, str | None] = field(default_factory=dict)  # every needed module -> its version
    source: str | None = None  # "index" | "wheelhouse" | None (nothing installed)
    pushed: list[str] = field(default_factory=list)  # wheel files sent to the device
    inventory: str | None = None  # the file that records the device entry
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "changed": self.changed, "ok": self.ok}


# ---------------------------------------------------------------------------------------------
# wheels


@dataclass(frozen=True)
class LocalWheel:
    """A wheel file the user names: its distribution, version and the top-level modules inside."""

    path: Path
    dist: str
    version: str
    modules: frozenset[str]


WHEEL_NAME = re.compile(r"^(?P<dist>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def read_wheel(path: Path) -> LocalWheel:
    """*path* as a :class:`LocalWheel`; a file that is not a wheel is one line."""
    path = Path(path).expanduser()
    match = WHEEL_NAME.match(path.name)
    if not path.is_file() or not match:
        found = "nothing" if not path.is_file() else f"'{path.name}'"
        raise EdgebenchError(f"--wheel: expected a wheel file (NAME-VERSION-PY-ABI-PLATFORM.whl), found {found}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        raise EdgebenchError(f"--wheel {path}: not a wheel (not a zip archive)") from None
    modules = {n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/__init__.py")}
    modules |= {n[:-3] for n in names if "/" not in n and n.endswith(".py")}
    return LocalWheel(path.resolve(), match["dist"], match["version"], frozenset(modules))


@dataclass(frozen=True)
class WheelTarget:
    """The device's Python and platform, as ``pip download`` spells them."""

    python: str  # "3.10"
    implementation: str  # "cp"
    machine: str  # "aarch64"
    libc: tuple[str, str]  # ("glibc", "2.35"); ("", "") on musl and others

    @classmethod
    def from_probe(cls, probe: dict, device: str) -> WheelTarget:
        py = probe.get("python") or {}
        if py.get("implementation") != "cpython":
            raise EdgebenchError(
                f"device '{device}': a wheelhouse is built for CPython, found {py.get('implementation')!r} "
                "(install the packages on the device yourself, or point --python at a CPython)"
            )
        libc = [str(x) for x in (probe.get("libc") or ["", ""])] + ["", ""]
        python = ".".join(str(py.get("version")).split(".")[:2])
        return cls(python, "cp", str(probe.get("machine")), (libc[0], libc[1]))

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platforms(self) -> list[str]:
        """Every platform tag a wheel for this device may carry, newest first."""
        arch = self.machine
        if self.libc[0] != "glibc":
            return [f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}"]
        major, minor = (int(x) for x in (self.libc[1].split(".") + ["0"])[:2])
        if major != 2:
            raise EdgebenchError(f"glibc {self.libc[1]} on the device: expected a 2.x release")
        tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]
        if not tags:  # no --platform at all would make pip pick the host's wheels
            raise EdgebenchError(f"glibc {self.libc[1]} on the device: older than any manylinux wheel (2.5)")
        return tags

    def describe(self) -> str:
        return f"CPython {self.python} ({self.abi}) on {self.libc[0] or 'non-glibc'} {self.libc[1]} {self.machine}"

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--implementation", self.implementation, "--python-version", self.python]
        args += ["--abi", self.abi]
        for tag in self.platforms():
            args += ["--platform", tag]
        return args


def download_wheelhouse(requirements: list[str], target: WheelTarget, dest: Path) -> list[Path]:
    """``pip download`` on the host: wheels (with their dependencies) for *target* into *dest*."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "-d", str(dest)]
    cmd += target.pip_args() + requirements
    log.info("host: %s", " ".join(cmd))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgebenchError(
            f"pip download for {target.describe()} did not finish within {INSTALL_TIMEOUT_S:.0f} s"
        ) from None
    if res.returncode != 0:
        tail = " | ".join(line for line in res.stderr.strip().splitlines()[-2:]) or res.stdout.strip()[-200:]
        raise EdgebenchError(
            f"the host could not download wheels of {', '.join(Path(r).name for r in requirements)} for "
            f"{target.describe()} (pip download exited {res.returncode}): {tail}"
        )
    return sorted(dest.glob("*.whl"))


# ---------------------------------------------------------------------------------------------


class _Setup:
    """One run of ``devices setup`` over an open transport (see :func:`setup_device`)."""

    def __init__(
        self,
        spec: DeviceSpec,
        transport: SshTransport,
        base_python: str,
        runtimes: list[str],
        wheels: list[LocalWheel],
        offline: bool | None,
        progress: ProgressFn,
    ) -> None:
        self.spec, self.transport, self.runtimes = spec, transport, runtimes
        self.wheels, self.offline, self.progress = wheels, offline, progress
        self.deployer = Deployer(transport, base_python, spec.workdir)
        workdir = PurePosixPath(self.deployer.prepare())
        self.venv = workdir / VENV
        self.python = str(self.venv / "bin" / "python3")
        self.wheelhouse = str(workdir / WHEELHOUSE)
        self.needed = needed_modules(spec, runtimes)
        self.report = SetupReport(spec.name, self.python, base_python)

    def probe(self, python: list[str]) -> dict:
        extra = tuple(m for m in self.needed if m not in AGENT_NEEDS) + tuple(f"dist:{w.dist}" for w in self.wheels)
        return run_probe(self.transport, python, self.spec, extra)

    def step(self, what: str, detail: str, changed: bool) -> None:
        self.report.steps.append(SetupStep(what, detail, changed))

    def remote(self, argv: list[str], what: str) -> tuple[bool, str]:
        """Run *argv* on the device: (succeeded, its last lines of output, for a message)."""
        res = self.transport.run(argv, timeout_s=INSTALL_TIMEOUT_S, check=False)
        lines = (res.stderr.strip() or res.stdout.strip()).splitlines()
        tail = " | ".join(line.strip() for line in lines[-2:] if line.strip()) or "(no output)"
        if not res.ok:
            log.info("device '%s': %s exited %s: %s", self.spec.name, what, res.exit_status, res.stderr[-2000:])
        return res.ok, tail

    # -- 1. the virtual environment ---------------------------------------------------------
    def ensure_venv(self) -> dict:
        """The venv's probe, the venv made first when its Python does not run."""
        base = self.deployer.python
        info = self.deployer.remote_python or {}
        existing = self.transport.run([self.python, "-c", "pass"], timeout_s=120, check=False)
        if existing.ok:
            probe = self.probe([self.python])
            self.step("venv", f"{self.venv} is there (Python {probe['python']['version']})", False)
            return probe
        self.progress(f"creating a virtual environment at {self.venv} with {' '.join(base)}")
        ok, tail = self.remote([*base, "-m", "venv", "--system-site-packages", "--clear", str(self.venv)], "venv")
        how = ""
        if not ok:  # Debian/Ubuntu without python3-venv: no ensurepip; pip then comes from the system or a wheel
            ok, tail2 = self.remote(
                [*base, "-m", "venv", "--system-site-packages", "--without-pip", "--clear", str(self.venv)], "venv"
            )
            how = f", without pip ({tail})"
            if not ok:
                raise EdgebenchError(
                    f"device '{self.spec.name}': `{' '.join(base)} -m venv` failed: {tail2} (install the venv module, "
                    f"e.g. sudo apt install python3-venv, or pass --python PATH to another Python 3.8+)"
                )
        probe = self.probe([self.python])
        self.step(
            "venv",
            f"created {self.venv} from {info.get('executable') or ' '.join(base)} (Python {probe['python']['version']}; "
            f"system site-packages visible){how}",
            True,
        )
        return probe

    # -- 2. packages ------------------------------------------------------------------------
    def missing(self, probe: dict) -> list[str]:
        mods = probe.get("modules", {})
        return [m for m in self.needed if not mods.get(m, {}).get("available")]

    def plan(self, probe: dict) -> tuple[list[str], list[LocalWheel]]:
        """(pip requirements to install, user wheels not installed yet). A module a user wheel
        provides (its top-level packages) is left to that wheel; one pip cannot provide is left
        for the report."""
        dists = probe.get("dists", {})
        wheels = [w for w in self.wheels if dists.get(w.dist) != w.version]
        provided: set[str] = set().union(*(w.modules for w in self.wheels))
        reqs = [requirement(m).pip for m in self.missing(probe) if m not in provided]
        return [r for r in reqs if r], wheels

    def install(self, probe: dict, reqs: list[str], wheels: list[LocalWheel]) -> None:
        """*reqs* and *wheels* into the venv: from the device's index, else from a wheelhouse."""
        has_pip = bool(probe.get("modules", {}).get("pip", {}).get("available"))
        remote_wheels: list[str] = []
        if wheels:
            remote_wheels, sent = self.deployer.push_named(self.wheelhouse, [w.path for w in wheels])
            self.report.pushed += [PurePosixPath(p).name for p in sent]
        names = ", ".join([*reqs, *(w.path.name for w in wheels)])
        pip = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        reason = "--offline" if self.offline else "the venv has no pip"
        if not self.offline and has_pip:
            self.progress(f"installing {names} with the device's pip")
            ok, tail = self.remote([*pip, "--timeout", "20", "--retries", "1", *remote_wheels, *reqs], "pip install")
            if ok:
                self.report.source = "index"
                self.step("packages", f"installed {names} with the device's pip from its index", True)
                return
            if self.offline is False:
                raise EdgebenchError(f"device '{self.spec.name}': pip could not install {names}: {tail}")
            reason = f"the device's pip could not install from its index: {tail}"
        self.progress(f"building a wheelhouse on the host ({reason})")
        target = WheelTarget.from_probe(probe, self.spec.name)
        wanted = reqs + [str(w.path) for w in wheels] + ([] if has_pip else ["pip"])
        with tempfile.TemporaryDirectory(prefix="edgebench-wheelhouse-") as tmp:
            files = download_wheelhouse(wanted, target, Path(tmp))
            self.progress(f"pushing {len(files)} wheels to {self.wheelhouse}")
            remote, sent = self.deployer.push_named(self.wheelhouse, files)
        self.report.pushed += [PurePosixPath(p).name for p in sent]
        local = ["--no-index", "--find-links", self.wheelhouse]
        if not has_pip:  # pip runs from its own wheel to install itself
            pip_wheel = next(p for p in remote if PurePosixPath(p).name.startswith("pip-"))
            ok, tail = self.remote([self.python, f"{pip_wheel}/pip", "install", *local, "pip"], "pip bootstrap")
            if not ok:
                raise EdgebenchError(f"device '{self.spec.name}': could not install pip into {self.venv}: {tail}")
        here = [str(PurePosixPath(self.wheelhouse) / w.path.name) for w in wheels]
        ok, tail = self.remote([*pip, *local, *here, *reqs], "pip install (wheelhouse)")
        if not ok:
            raise EdgebenchError(
                f"device '{self.spec.name}': pip could not install {names} from the wheelhouse: {tail}"
            )
        self.report.source = "wheelhouse"
        self.step(
            "packages",
            f"installed {names} from a wheelhouse the host downloaded for {target.describe()} "
            f"({len(sent)} of {len(files)} wheels sent; {reason})",
            True,
        )

    # -- 3. the inventory -------------------------------------------------------------------
    def record(self, user_file: Path | None) -> None:
        spec = self.spec
        runtimes = tuple(dict.fromkeys([*spec.runtimes, *self.runtimes]))
        wanted = dataclasses.replace(spec, python=self.python, base_python=self.report.base_python, runtimes=runtimes)
        if (spec.python, spec.base_python, spec.runtimes) == (wanted.python, wanted.base_python, wanted.runtimes):
            self.report.inventory = spec.source
            self.step("inventory", f"'{spec.name}' already runs the agent with {self.python} ({spec.source})", False)
            return
        path = add_device(wanted, user_file, replace=True)
        self.report.inventory = str(path)
        self.step("inventory", f"recorded python {self.python} for '{spec.name}' in {path}", True)

    def run(self, user_file: Path | None) -> SetupReport:
        probe = self.ensure_venv()
        before = self.missing(probe)
        reqs, wheels = self.plan(probe)
        if reqs or wheels:
            self.install(probe, reqs, wheels)
            probe = self.probe([self.python])
        else:
            mods = probe.get("modules", {})
            have = [f"{m} {mods[m].get('version') or ''}".strip() for m in self.needed if m not in before]
            self.step("packages", f"{', '.join(have) or 'nothing needed'}: importable already", False)
        mods = probe.get("modules", {})
        still = self.missing(probe)
        self.report.modules = {m: mods[m].get("version") for m in self.needed if m not in still}
        self.report.installed = {m: mods[m].get("version") for m in before if m not in still}
        self.report.installed.update({w.dist: probe.get("dists", {}).get(w.dist) for w in wheels})
        if still:
            self.report.problems.append(f"{missing_phrase(still)} after setup: {fix_hint(self.spec, still)}")
        if not [m for m in still if m in AGENT_NEEDS]:
            self.record(user_file)
        return self.report


def default_base_python(spec: DeviceSpec) -> str:
    """The device's own Python to make the venv from: the one a previous setup recorded, else the entry's."""
    return spec.base_python or spec.python


def setup_device(
    spec: DeviceSpec,
    base_python: str | None = None,
    runtimes: Iterable[str] = (),
    wheels: Iterable[Path] = (),
    offline: bool | None = None,
    accept_new_host_key: bool | None = None,
    user_file: Path | None = None,
    progress: ProgressFn | None = None,
) -> SetupReport:
    """Make *spec* ready for the agent (see the module's docstring); connection and install
    failures raise :class:`EdgebenchError`. *offline*: True always uses a wheelhouse, False never,
    None when the device's pip cannot install from its index."""
    if spec.kind != "ssh":
        raise EdgebenchError(
            f"device '{spec.name}' is this host ({spec.kind}): its agent runs with edgebench's own Python, "
            "whose install already brings numpy and psutil; nothing to set up"
        )
    local_wheels = [read_wheel(Path(w)) for w in wheels]
    transport = SshTransport(SshOptions.from_spec(spec, accept_new_host_key), spec.name)
    try:
        transport.connect()
        setup = _Setup(
            spec,
            transport,
            base_python or default_base_python(spec),
            list(runtimes),
            local_wheels,
            offline,
            progress or (lambda _msg: None),
        )
        return setup.run(user_file)
    finally:
        transport.close()


def problem_summary(report: SetupReport) -> EdgebenchError | None:
    """The one-line error for a setup that left something missing (None when the device is ready)."""
    if report.ok:
        return None
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    return EdgebenchError(f"device '{report.device}' is not ready: {report.problems[0]}{more}")
