"""Putting the agent and the job's files on a device, each exactly once.

* The **agent** travels as a zipapp built from the package's light modules only (no torch,
  foolbox or CLI code): ``edgebench/__init__.py``, ``errors.py``, ``util/``, ``measure/``,
  ``backends/``, ``agent/`` and ``agent/telemetry/``. The archive is deterministic, so its
  sha256 names a versioned folder on the device: ``<workdir>/agent/<sha256[:16]>/agent.pyz``.
* **Artifacts and input arrays** go by content: ``<workdir>/cache/<sha256>``. Before sending,
  the device is asked which hashes it already holds (the hash is recomputed there, not trusted
  from a name); a file is uploaded to a temporary name, its sha256 computed on the device, and
  only a match is renamed into place. A file is never sent twice. Hashes the device confirmed
  are trusted for the rest of that connection (a new connection asks again).

Every remote command is an argv list quoted by :func:`edgebench.devices.ssh.transport.quote_command`;
the small remote helpers are constant Python snippets passed with ``python -c``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shlex
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError
from edgebench.util import onnx_file
from edgebench.util.io import sha256_file

if TYPE_CHECKING:
    from edgebench.devices.ssh.transport import SshTransport

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # .../edgebench
LIGHT_FILES = ("__init__.py", "errors.py")
LIGHT_PACKAGES = ("util", "measure", "backends", "agent")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

ZIPAPP_MAIN = '''"""edgebench agent (zipapp): python3 agent.pyz JOB.json"""
import sys

from edgebench.agent.__main__ import main

sys.exit(main())
'''

# Remote helpers: constant programs, run as `python -c PROGRAM ARG...` (every word quoted).
HASH_SCRIPT = r"""
import hashlib, json, sys
out = {}
for p in sys.argv[1:]:
    try:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        out[p] = h.hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        out[p] = None
print(json.dumps(out))
"""

COMMIT_SCRIPT = r"""
import hashlib, json, os, sys
args = sys.argv[1:]
out = {}
for tmp, final, want in zip(args[0::3], args[1::3], args[2::3]):
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    got = h.hexdigest()
    if got == want:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)
        out[final] = "ok"
    else:
        os.unlink(tmp)
        out[final] = got
print(json.dumps(out))
"""

PREPARE_SCRIPT = r"""
import json, os, platform, sys
root = os.path.abspath(os.path.expanduser(sys.argv[1]))
for sub in ("cache", "agent", "jobs"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
print(json.dumps({"workdir": root, "python": platform.python_version(), "executable": sys.executable}))
"""


@dataclass(frozen=True)
class AgentBuild:
    """The agent zipapp: its bytes, their sha256, and the files inside."""

    data: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def version(self) -> str:
        return self.sha256[:16]


def agent_sources(root: Path = PACKAGE_ROOT) -> list[tuple[str, bytes]]:
    """``(archive name, bytes)`` of every light module, sorted. Compiled files are left out."""
    found: dict[str, Path] = {}
    for rel in LIGHT_FILES:
        path = root / rel
        if not path.is_file():
            raise EdgebenchError(f"agent build: expected {path} in the edgebench package, found nothing")
        found[f"edgebench/{rel}"] = path
    for pkg in LIGHT_PACKAGES:
        folder = root / pkg
        if not folder.is_dir():
            raise EdgebenchError(f"agent build: expected the package folder {folder}, found nothing")
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            found[f"edgebench/{path.relative_to(root).as_posix()}"] = path
    return [(name, found[name].read_bytes()) for name in sorted(found)]


def build_agent_zipapp(root: Path = PACKAGE_ROOT) -> AgentBuild:
    """A deterministic zipapp of the light modules: same sources, same bytes, same sha256."""
    sources = agent_sources(root) + [("__main__.py", ZIPAPP_MAIN.encode())]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(sources):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    data = buf.getvalue()
    return AgentBuild(data, hashlib.sha256(data).hexdigest(), tuple(sorted(n for n, _ in sources)))


# ---------------------------------------------------------------------------------------------

_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int], str] = {}


def local_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a host file, remembered by (path, size, mtime) so a big artifact is hashed once."""
    p = Path(path).resolve()
    if not p.is_file():
        raise EdgebenchError(f"file to push not found: expected a file at {p}")
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = sha256_file(p)
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


@dataclass
class TransferStats:
    """What crossed the link. A job whose files are all cached pushes ``bytes_pushed == 0``."""

    bytes_pushed: int = 0
    files_pushed: int = 0
    files_reused: int = 0
    bytes_pulled: int = 0
    agent_pushed: bool = False
    history: list[dict] = field(default_factory=list)

    def snapshot(self) -> dict:
        return {
            "bytes_pushed": self.bytes_pushed,
            "files_pushed": self.files_pushed,
            "files_reused": self.files_reused,
            "bytes_pulled": self.bytes_pulled,
        }


class Deployer:
    """Agent and content-addressed cache on one device, reached through *transport*."""

    def __init__(
        self, transport: SshTransport, python: str = "python3", workdir: str = "~/.cache/edgebench-agent"
    ) -> None:
        self.transport = transport
        self.python = shlex.split(python) or ["python3"]
        self.workdir_spec = workdir
        self.workdir: str | None = None
        self.remote_python: dict | None = None
        self.stats = TransferStats()
        self._agent_path: str | None = None
        self._verified: set[str] = set()  # cache paths whose hash the device confirmed on this connection
        self._generation = -1
        self._lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------
    def _py(self, script: str, *args: str, timeout_s: float | None = None) -> dict:
        # -S: the helpers need the standard library only, and start faster without site-packages
        res = self.transport.run([*self.python, "-S", "-c", script, *args], timeout_s=timeout_s, check=False)
        if not res.ok:
            tail = " | ".join(res.stderr.strip().splitlines()[-2:])
            if res.exit_status in (126, 127):
                raise EdgebenchError(
                    f"device '{self.transport.name}': cannot run python {' '.join(self.python)!r} "
                    f"(exit {res.exit_status}: {tail}); set 'python' in the device file to the interpreter's path"
                )
            raise EdgebenchError(
                f"device '{self.transport.name}': remote helper failed (exit {res.exit_status}): {tail}"
            )
        try:
            return json.loads(res.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise EdgebenchError(
                f"device '{self.transport.name}': expected JSON from a remote helper, found {res.stdout[:120]!r}"
            ) from None

    def reset(self) -> None:
        """Forget what this connection verified (after a reconnect the device is asked again)."""
        with self._lock:
            self._agent_path = None
            self._verified.clear()

    def _same_link(self) -> None:
        """Drop what was verified on an earlier connection (the device may have changed since)."""
        self.transport.connect()
        if self.transport.generation != self._generation:
            self.reset()
            self._generation = self.transport.generation

    def prepare(self) -> str:
        """Resolve the work directory (``~`` expands on the device) and create its folders."""
        if self.workdir is None:
            info = self._py(PREPARE_SCRIPT, self.workdir_spec)
            self.workdir = info["workdir"]
            self.remote_python = {"version": info["python"], "executable": info["executable"]}
        return self.workdir

    def cache_path(self, sha: str) -> str:
        return str(PurePosixPath(self.prepare()) / "cache" / sha)

    def remote_hashes(self, paths: list[str]) -> dict[str, str | None]:
        """sha256 of each remote path computed on the device (``None``: missing)."""
        if not paths:
            return {}
        return self._py(HASH_SCRIPT, *paths)

    def _upload_verified(self, items: list[tuple[str, bytes | str, str]]) -> None:
        """Upload ``(final remote path, local path or bytes, sha256)`` to temp names, verify, commit."""
        if not items:
            return
        triples: list[str] = []
        cache = PurePosixPath(self.prepare()) / "cache"
        for final, source, sha in items:
            tmp = str(cache / f".{sha[:16]}.{uuid.uuid4().hex[:8]}.part")  # same file system: rename is atomic
            if isinstance(source, bytes):
                sent = self.transport.put_bytes(source, tmp)
            else:
                sent = self.transport.put_file(source, tmp)
            self.stats.bytes_pushed += sent
            self.stats.files_pushed += 1
            self.stats.history.append({"path": final, "bytes": sent})
            triples += [tmp, final, sha]
        verdict = self._py(COMMIT_SCRIPT, *triples)
        bad = {k: v for k, v in verdict.items() if v != "ok"}
        if bad:
            final, got = next(iter(bad.items()))
            want = triples[triples.index(final) + 1]
            raise EdgebenchError(
                f"device '{self.transport.name}': upload corrupted: {final} should have sha256 {want}, "
                f"the device computed {got}"
            )

    # -- public -----------------------------------------------------------------------------
    def sync(self, local_paths: list[str], build: AgentBuild | None = None) -> tuple[str, dict[str, str]]:
        """Make the agent and every host file available on the device, in one round of checks.

        Returns the agent's path and ``{host path: cache path}``. One remote hash call covers
        everything not yet verified on this connection; one upload batch and one verification
        call cover what is missing.
        """
        self._same_link()
        with self._lock:
            remote_of: dict[str, str] = {}
            items: dict[str, tuple[bytes | str, str]] = {}
            for p in local_paths:
                local = str(Path(p).resolve())
                if local in remote_of:
                    continue
                onnx_model = local.endswith(".onnx") and Path(local).is_file()  # a missing file: said below
                parts = onnx_file.files(local) if onnx_model else [Path(local)]
                if len(parts) == 1:
                    sha = local_sha256(local)
                    remote_of[local] = self.cache_path(sha)
                    items[remote_of[local]] = (local, sha)
                    continue
                # an ONNX model with external data: its files together in a folder named by their
                # joint hash, at the paths the graph names relative to itself
                folder = PurePosixPath(self.cache_path(onnx_file.sha256(local, local_sha256) + ".d"))
                for part in parts:
                    if not part.resolve().is_relative_to(Path(local).parent):
                        raise EdgebenchError(f"{local}: its external data {part} lies outside the model's folder")
                    rel = part.resolve().relative_to(Path(local).parent).as_posix()
                    items[str(folder / rel)] = (str(part), local_sha256(part))
                remote_of[local] = str(folder / Path(local).name)
            agent_path = self._agent_path
            if agent_path is None:
                build = build or build_agent_zipapp()
                agent_path = str(PurePosixPath(self.prepare()) / "agent" / build.version / "agent.pyz")
                items[agent_path] = (build.data, build.sha256)
            unverified = sorted(r for r in items if r not in self._verified)
            present = self.remote_hashes(unverified)
            todo = []
            for remote, (source, sha) in sorted(items.items()):
                if remote in self._verified or present.get(remote) == sha:
                    if remote != agent_path:
                        self.stats.files_reused += 1
                else:
                    todo.append((remote, source, sha))
                    if remote == agent_path:
                        self.stats.agent_pushed = True
            self._upload_verified(todo)
            self._verified.update(items)
            self._agent_path = agent_path
            return agent_path, remote_of

    def push_named(self, folder: str, local_paths: list[Path]) -> tuple[list[str], list[str]]:
        """Each host file to ``<folder>/<its name>`` on the device (pip needs a wheel's real file
        name), verified by sha256 there; a file already there with the same hash is not sent.
        Returns the remote paths (in the order given) and those that were sent."""
        self._same_link()
        with self._lock:
            items = {str(PurePosixPath(folder) / Path(p).name): (str(p), local_sha256(p)) for p in local_paths}
            present = self.remote_hashes(sorted(items))
            todo: list[tuple[str, bytes | str, str]] = [
                (remote, source, sha) for remote, (source, sha) in items.items() if present.get(remote) != sha
            ]
            self._upload_verified(todo)
            return list(items), [remote for remote, _, _ in todo]

    def ensure_agent(self, build: AgentBuild | None = None) -> str:
        """The agent's path on the device, uploading it only if that version is not there."""
        return self.sync([], build)[0]
