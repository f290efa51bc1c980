"""SSH transport: a small synchronous facade over asyncssh (the rest of edgebench is synchronous).

Security defaults, as OpenSSH users expect them:

* **Strict host-key checking** against ``known_hosts`` (``DeviceSpec.known_hosts`` or
  ``~/.ssh/known_hosts``). An unknown host is refused unless the user opted in to record a
  *new* host's key (``accept_new_host_key``, like ``StrictHostKeyChecking=accept-new``). A
  *changed* key is always refused, with a message naming the host, port and known_hosts file.
* Key or agent authentication only (``identity_file``, else the SSH agent and default keys);
  never passwords or keyboard-interactive prompts.
* Remote commands are built only from :func:`shlex.quote`'d arguments (:func:`quote_command`).
* Connect and command time-outs, keep-alives (a dead link is noticed within
  ``keepalive_interval_s * keepalive_count_max``).
* Files go over SFTP; a server without the SFTP subsystem (common on small boards' Dropbear or
  trimmed OpenSSH) gets them over an exec channel instead (``cat``, ``test``, ``rm`` with quoted
  arguments, see :mod:`edgebench.devices.ssh.exec_files`); uploads are sha256-verified either way.

All transports share one event loop running in a daemon thread, so several devices can be
driven from several threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shlex
import socket
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgebench.devices.ssh import exec_files
from edgebench.devices.ssh.exec_files import ExecFileError
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.devices.inventory import DeviceSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
LineFn = Callable[[str], None]


class TransportError(EdgebenchError):
    """The link to the device failed (refused, timed out, dropped). A retry may succeed."""


class HostKeyError(EdgebenchError):
    """The device's host key is unknown or changed. Never retried."""


class RemoteCommandError(EdgebenchError):
    """A remote command exited non-zero (the link itself is fine)."""


@dataclass(frozen=True)
class SshOptions:
    """How to reach one device. Built from a :class:`DeviceSpec` with :meth:`from_spec`."""

    host: str
    port: int = 22
    user: str | None = None
    identity_file: str | None = None  # None: the SSH agent and ~/.ssh/id_* keys
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    accept_new_host_key: bool = False
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 900.0
    keepalive_interval_s: float = 15.0
    keepalive_count_max: int = 3

    def __post_init__(self) -> None:
        if not self.host:
            raise EdgebenchError("ssh: expected a host name or address, found none")
        if not 0 < int(self.port) < 65536:
            raise EdgebenchError(f"ssh: expected a port in 1..65535, found {self.port}")
        if self.connect_timeout_s <= 0 or self.command_timeout_s <= 0:
            raise EdgebenchError("ssh: time-outs must be positive numbers of seconds")

    @classmethod
    def from_spec(cls, spec: DeviceSpec, accept_new_host_key: bool | None = None) -> SshOptions:
        if not spec.host:
            raise EdgebenchError(f"device '{spec.name}': an ssh device needs a 'host'")
        return cls(
            host=spec.host,
            port=int(spec.port),
            user=spec.user,
            identity_file=spec.identity_file,
            known_hosts=spec.known_hosts,
            accept_new_host_key=spec.accept_new_host_key if accept_new_host_key is None else accept_new_host_key,
            connect_timeout_s=float(spec.connect_timeout_s),
            command_timeout_s=float(spec.command_timeout_s),
            keepalive_interval_s=float(getattr(spec, "keepalive_interval_s", 15.0)),
        )

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts or "~/.ssh/known_hosts").expanduser()

    @property
    def address(self) -> str:
        """``host:port`` as shown in messages (``[host]:port`` is the known_hosts spelling)."""
        return f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def quote_command(argv: Sequence[str]) -> str:
    """The one way a remote command line is made: every argument through :func:`shlex.quote`."""
    if not argv:
        raise ValueError("empty remote command")
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass
class CommandResult:
    exit_status: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


# ---------------------------------------------------------------------------------------------
# one event loop for every transport, in a daemon thread

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="edgebench-ssh-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def _run_sync(coro: Coroutine[Any, Any, T], timeout_s: float | None) -> T:
    """Run *coro* on the shared loop and wait for it (the coroutine enforces its own time-outs;
    *timeout_s* is a safety net a little beyond them)."""
    future = asyncio.run_coroutine_threadsafe(coro, _event_loop())
    try:
        return future.result(timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TransportError(f"ssh: no answer within {timeout_s:.0f} s") from None


# ---------------------------------------------------------------------------------------------
# host keys


def _fingerprint(key: Any) -> str:
    try:
        return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
    except Exception:  # noqa: BLE001 - only for messages
        return "?"


def append_known_host(path: Path, name: str, key: Any) -> None:
    """Record *key* for *name* (``host`` or ``[host]:port``) in *path*, atomically."""
    from edgebench.util.io import atomic_write_text

    algo_and_b64 = key.export_public_key("openssh").decode().split()[:2]
    line = f"{name} {' '.join(algo_and_b64)}\n"
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_text(path, existing + line)
    os.chmod(path, 0o600)


class _HostKeyPolicy:
    """Matches known_hosts itself, so it can tell an unknown host from a changed key."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self.path = options.known_hosts_path
        self.had_entries = False
        self.refusal: str | None = None  # "changed" | "unknown" | "unreadable"
        self.offered: Any = None
        self.recorded = False
        self.error: str | None = None

    def match(self, host: str, addr: str, port: int | None) -> tuple[list, list, list]:
        import asyncssh

        if not self.path.is_file():
            return [], [], []
        try:
            matched = asyncssh.read_known_hosts(str(self.path)).match(host, addr, port)
        except (ValueError, OSError) as exc:
            self.error = f"{self.path} is not a readable known_hosts file: {exc}"
            self.had_entries = True  # never accept anything new when the file is unreadable
            return [], [], []
        host_keys, ca_keys, revoked = list(matched[0]), list(matched[1]), list(matched[2])
        self.had_entries = bool(host_keys or ca_keys)
        return host_keys, ca_keys, revoked

    def validate(self, key: Any) -> bool:
        """Called only for a key known_hosts does not trust."""
        self.offered = key
        if self.error:
            self.refusal = "unreadable"
            return False
        if self.had_entries:
            self.refusal = "changed"
            return False
        if not self.options.accept_new_host_key:
            self.refusal = "unknown"
            return False
        append_known_host(self.path, self.options.known_hosts_name, key)
        self.recorded = True
        log.warning("recorded new host key for %s in %s: %s", self.options.address, self.path, _fingerprint(key))
        return True

    def message(self, fallback: str) -> str:
        o = self.options
        fp = _fingerprint(self.offered) if self.offered is not None else "?"
        if self.refusal == "changed":
            return (
                f"host key for {o.address} has CHANGED: the server offered {fp}, which does not match "
                f"the key recorded in {self.path}. Someone may be intercepting the connection, or the "
                f"device was reinstalled; if you trust the change, remove the old key with "
                f"`ssh-keygen -R '{o.known_hosts_name}' -f {self.path}` and connect again"
            )
        if self.refusal == "unknown":
            return (
                f"host key for {o.address} is unknown: no entry for it in {self.path} (the server offered "
                f"{fp}). Verify that fingerprint, then add it (`ssh-keyscan -p {o.port} {o.host} >> "
                f"{self.path}`) or opt in to record it on first connect (accept_new_host_key: true in "
                f"the device file, or --accept-new-host-key)"
            )
        if self.refusal == "unreadable":
            return f"host key for {o.address} cannot be checked: {self.error}"
        return f"host key for {o.address} was refused: {fallback}"


# ---------------------------------------------------------------------------------------------


class SshTransport:
    """One SSH connection to one device, with SFTP, used synchronously from any thread."""

    def __init__(self, options: SshOptions, name: str | None = None) -> None:
        self.options = options
        self.name = name or options.host
        self._conn: Any = None
        self._sftp: Any = None
        self._lock = threading.Lock()
        self.host_key_recorded = False
        self.generation = 0  # counts successful connects; state verified on one link is per generation

    # -- connection ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def _where(self) -> str:
        o = self.options
        return f"device '{self.name}' ({o.user + '@' if o.user else ''}{o.address})"

    async def _connect(self) -> Any:
        import asyncssh

        o = self.options
        policy = _HostKeyPolicy(o)

        class _Client(asyncssh.SSHClient):
            def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
                return policy.validate(key)

        kwargs: dict[str, Any] = {
            "port": o.port,
            "known_hosts": policy.match,
            "client_factory": _Client,
            "connect_timeout": o.connect_timeout_s,
            "keepalive_interval": o.keepalive_interval_s,
            "keepalive_count_max": o.keepalive_count_max,
            "preferred_auth": "publickey",
            "password": None,
        }
        if o.user:
            kwargs["username"] = o.user
        if o.identity_file:
            identity = Path(o.identity_file).expanduser()
            if not identity.is_file():
                raise EdgebenchError(f"{self._where()}: identity_file not found: expected a private key at {identity}")
            try:
                kwargs["client_keys"] = [asyncssh.read_private_key(str(identity))]
            except asyncssh.KeyImportError as exc:
                raise EdgebenchError(
                    f"{self._where()}: cannot use identity_file {identity} ({exc}); if it is passphrase-"
                    "protected, load it into ssh-agent (ssh-add) and leave identity_file empty"
                ) from None
            kwargs["agent_path"] = None
        try:
            conn = await asyncssh.connect(o.host, **kwargs)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyError(f"{self._where()}: {policy.message(exc.reason)}") from None
        except asyncssh.PermissionDenied:
            how = f"the key {o.identity_file}" if o.identity_file else "the SSH agent's keys and ~/.ssh/id_*"
            raise EdgebenchError(
                f"{self._where()}: authentication failed: the server accepted none of {how} "
                f"(expected the public key in ~{o.user or ''}/.ssh/authorized_keys on the device)"
            ) from None
        except ConnectionRefusedError:
            raise TransportError(
                f"{self._where()}: connection refused (expected an SSH server on port {o.port}; is sshd running?)"
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(
                f"{self._where()}: timed out after {o.connect_timeout_s:g} s connecting (no SSH server answered "
                "in time; check the address, port and network)"
            ) from None
        except socket.gaierror as exc:
            raise EdgebenchError(f"{self._where()}: cannot resolve host '{o.host}': {exc.strerror}") from None
        except asyncssh.DisconnectError as exc:
            raise TransportError(f"{self._where()}: the server closed the connection: {exc.reason}") from None
        except OSError as exc:
            raise TransportError(f"{self._where()}: cannot connect: {exc.strerror or exc}") from None
        self.host_key_recorded = policy.recorded
        return conn

    def connect(self) -> None:
        """Open the connection if it is not open (thread-safe)."""
        with self._lock:
            if self.connected:
                return
            self._conn = None
            self._sftp = None
            self._conn = _run_sync(self._connect(), self.options.connect_timeout_s + 5)
            self.generation += 1
            log.info("connected to %s", self._where())

    def close(self) -> None:
        with self._lock:
            conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:

            async def _close() -> None:
                conn.close()
                try:
                    await asyncio.wait_for(conn.wait_closed(), 5)
                except Exception:  # noqa: BLE001 - closing a dead link
                    pass

            try:
                _run_sync(_close(), 10)
            except EdgebenchError:
                pass

    def _lost(self, what: str, exc: BaseException) -> TransportError:
        """Mark the connection dead and describe the failure."""
        self._conn = None
        self._sftp = None
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return TransportError(f"{self._where()}: connection lost during {what}: {reason}")

    def _require(self) -> Any:
        self.connect()
        return self._conn

    # -- commands --------------------------------------------------------------------------
    async def _run(
        self, conn: Any, command: str, timeout_s: float, on_stderr_line: LineFn | None, stdin: bytes | None
    ) -> CommandResult:
        proc = await conn.create_process(command, encoding="utf-8", errors="replace")
        stderr: list[str] = []

        async def pump_err() -> None:
            async for line in proc.stderr:
                stderr.append(line)
                if on_stderr_line is not None:
                    try:
                        on_stderr_line(line)
                    except Exception:  # noqa: BLE001 - a progress callback must not kill the job
                        log.exception("progress callback failed")

        async def body() -> CommandResult:
            if stdin is not None:
                proc.stdin.write(stdin.decode("utf-8"))
            proc.stdin.write_eof()
            out, _ = await asyncio.gather(proc.stdout.read(), pump_err())
            completed = await proc.wait()
            return CommandResult(completed.exit_status, out, "".join(stderr))

        try:
            return await asyncio.wait_for(body(), timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            try:
                proc.terminate()
            except Exception:  # noqa: BLE001 - OpenSSH may not support signals
                pass
            proc.close()
            raise RemoteCommandError(
                f"{self._where()}: remote command did not finish within {timeout_s:g} s "
                f"(command_timeout_s): {command[:120]}"
            ) from None

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float | None = None,
        on_stderr_line: LineFn | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run *argv* (each argument shell-quoted) on the device; stream stderr lines to a callback."""
        import asyncssh

        command = quote_command(argv)
        timeout = timeout_s or self.options.command_timeout_s
        conn = self._require()
        try:
            result = _run_sync(self._run(conn, command, timeout, on_stderr_line, stdin), timeout + 30)
        except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError, BrokenPipeError, OSError) as exc:
            raise self._lost(f"`{command[:80]}`", exc) from None
        if result.exit_status is None:  # the channel closed without an exit status: link died
            if not self.connected:
                raise TransportError(f"{self._where()}: connection lost while running `{command[:80]}`")
        if check and not result.ok:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise RemoteCommandError(
                f"{self._where()}: `{command[:120]}` exited {result.exit_status}: {tail or '(no output)'}"
            )
        return result

    def open_process(self, argv: Sequence[str], timeout_s: float | None = None) -> InteractiveProcess:
        """Start *argv* (shell-quoted) on the device with line-oriented stdin/stdout, for a
        request/answer protocol such as the agent's ``--serve`` session."""
        import asyncssh

        command = quote_command(argv)
        conn = self._require()
        timeout = timeout_s or self.options.command_timeout_s

        async def start() -> Any:
            return await conn.create_process(command, encoding="utf-8", errors="replace")

        try:
            proc = _run_sync(start(), self.options.connect_timeout_s + 30)
        except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError, OSError) as exc:
            raise self._lost(f"`{command[:80]}`", exc) from None
        return InteractiveProcess(proc, timeout, self._where())

    # -- files -----------------------------------------------------------------------------
    @property
    def file_channel(self) -> str | None:
        """How files travel on the current connection: "sftp", "exec" (no SFTP subsystem), or
        None before the first file operation."""
        return None if self._sftp is None else ("exec" if self._sftp is False else "sftp")

    async def _sftp_client(self, conn: Any) -> Any:
        """The SFTP client, or None when the server has no SFTP subsystem (then files go over
        exec channels); decided once per connection."""
        import asyncssh

        if self._sftp is None:
            try:
                self._sftp = await conn.start_sftp_client()
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():
                    raise
                log.info("%s: no SFTP subsystem (%s); files go over exec channels", self._where(), exc.reason)
                self._sftp = False
        return self._sftp or None

    def _sftp_call(
        self,
        what: str,
        fn: Callable[[Any], Coroutine[Any, Any, T]],
        timeout_s: float | None = None,
        fallback: Callable[[Any], Coroutine[Any, Any, T]] | None = None,
    ) -> T:
        """Run *fn(sftp)*, or *fallback(conn)* over exec channels when the server has no SFTP."""
        import asyncssh

        conn = self._require()

        async def go() -> T:
            sftp = await self._sftp_client(conn)
            call = fn(sftp) if sftp is not None else (fallback or _no_fallback(what))(conn)
            return await asyncio.wait_for(call, timeout_s or self.options.command_timeout_s)

        try:
            return _run_sync(go(), (timeout_s or self.options.command_timeout_s) + 30)
        except asyncssh.SFTPError as exc:
            raise EdgebenchError(f"{self._where()}: {what} failed: {exc.reason}") from None
        except ExecFileError as exc:
            raise EdgebenchError(f"{self._where()}: {what} failed (exec channel, no SFTP): {exc}") from None
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(f"{self._where()}: {what} timed out") from None
        except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError, OSError) as exc:
            raise self._lost(what, exc) from None

    def put_file(self, local: str | os.PathLike[str], remote: str) -> int:
        """Copy a local file to *remote* (a full path). Returns the bytes sent."""
        size = Path(local).stat().st_size

        async def go(sftp: Any) -> None:
            await sftp.put(str(local), remote)

        self._sftp_call(f"upload of {local}", go, fallback=lambda conn: exec_files.put_file(conn, local, remote))
        return size

    def put_bytes(self, data: bytes, remote: str) -> int:
        async def go(sftp: Any) -> None:
            async with sftp.open(remote, "wb") as handle:
                await handle.write(data)

        self._sftp_call(f"write of {remote}", go, fallback=lambda conn: exec_files.put_bytes(conn, data, remote))
        return len(data)

    def get_bytes(self, remote: str, missing_ok: bool = False) -> bytes | None:
        """The bytes of a remote file; ``None`` for a missing file when *missing_ok*."""
        import asyncssh

        async def go(sftp: Any) -> bytes | None:
            try:
                async with sftp.open(remote, "rb") as handle:
                    return await handle.read()
            except asyncssh.SFTPNoSuchFile:
                if missing_ok:
                    return None
                raise

        return self._sftp_call(
            f"download of {remote}", go, fallback=lambda conn: exec_files.get_bytes(conn, remote, missing_ok)
        )

    def remove(self, *remotes: str) -> None:
        """Delete remote files; missing ones are fine."""
        import asyncssh

        async def go(sftp: Any) -> None:
            for remote in remotes:
                try:
                    await sftp.remove(remote)
                except asyncssh.SFTPNoSuchFile:
                    pass

        self._sftp_call("clean-up", go, fallback=lambda conn: exec_files.remove(conn, remotes))

    def exists(self, remote: str) -> bool:
        async def go(sftp: Any) -> bool:
            return await sftp.exists(remote)

        return self._sftp_call(f"lookup of {remote}", go, fallback=lambda conn: exec_files.exists(conn, remote))


def _no_fallback(what: str) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    async def fail(conn: Any) -> Any:
        raise ExecFileError(f"{what} needs SFTP, which the server does not offer")

    return fail


class InteractiveProcess:
    """A remote process spoken to line by line from synchronous code (see ``open_process``)."""

    def __init__(self, proc: Any, timeout_s: float, where: str) -> None:
        self._proc, self._timeout, self._where = proc, timeout_s, where

    def write_line(self, line: str) -> None:
        async def go() -> None:
            self._proc.stdin.write(line)
            await self._proc.stdin.drain()

        _run_sync(go(), self._timeout)

    def read_line(self) -> str:
        """The next stdout line ('' at end of output); a silent device is a TransportError."""

        async def go() -> str:
            return await asyncio.wait_for(self._proc.stdout.readline(), self._timeout)

        try:
            return _run_sync(go(), self._timeout + 5)
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(
                f"{self._where}: no answer from the remote session within {self._timeout:g} s"
            ) from None

    def close(self) -> None:
        async def go() -> None:
            try:
                self._proc.stdin.write_eof()
                await asyncio.wait_for(self._proc.wait(), 10)
            except Exception:  # noqa: BLE001 - closing a session that may already be gone
                self._proc.close()

        try:
            _run_sync(go(), 20)
        except TransportError:
            pass
