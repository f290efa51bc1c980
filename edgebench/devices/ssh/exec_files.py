"""File transfer over SSH exec channels, for servers without the SFTP subsystem.

Many small boards run Dropbear or a trimmed OpenSSH with no ``Subsystem sftp`` line; there
:class:`~edgebench.devices.ssh.transport.SshTransport` moves files with plain commands whose every
argument is shell-quoted (:func:`~edgebench.devices.ssh.transport.quote_command`): ``sh -c 'cat >
"$1"'`` streams an upload, ``cat`` a download, ``test -e`` and ``rm -f`` do the rest. Bytes go
through the channel unencoded; the deploy step verifies every upload by sha256 on the device, as
it does for SFTP uploads. Host side only (asyncssh).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from typing import Any

CHUNK = 1 << 20
MISSING = 3  # exit status of the download command for a missing file


class ExecFileError(Exception):
    """A file command on the device exited non-zero (the link itself is fine)."""


def _cmd(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


async def _finish(proc: Any, what: str) -> bytes:
    """Wait for *proc*; its stdout, or :class:`ExecFileError` with its stderr."""
    out = await proc.stdout.read()
    err = await proc.stderr.read()
    done = await proc.wait()
    if done.exit_status != 0:
        tail = (err or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
        raise ExecFileError(f"{what} exited {done.exit_status}: {tail[0]}")
    return out or b""


async def put_bytes(conn: Any, data: bytes, remote: str) -> None:
    proc = await conn.create_process(_cmd(["sh", "-c", 'cat > "$1"', "sh", remote]), encoding=None)
    for i in range(0, len(data), CHUNK):
        proc.stdin.write(data[i : i + CHUNK])
        await proc.stdin.drain()
    proc.stdin.write_eof()
    await _finish(proc, f"cat > {remote}")


async def put_file(conn: Any, local: str | os.PathLike[str], remote: str) -> None:
    proc = await conn.create_process(_cmd(["sh", "-c", 'cat > "$1"', "sh", remote]), encoding=None)
    with open(local, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            proc.stdin.write(chunk)
            await proc.stdin.drain()
    proc.stdin.write_eof()
    await _finish(proc, f"cat > {remote}")


async def get_bytes(conn: Any, remote: str, missing_ok: bool) -> bytes | None:
    script = f'test -e "$1" || exit {MISSING}; exec cat -- "$1"'
    proc = await conn.create_process(_cmd(["sh", "-c", script, "sh", remote]), encoding=None)
    proc.stdin.write_eof()
    out = await proc.stdout.read()
    err = await proc.stderr.read()
    done = await proc.wait()
    if done.exit_status == MISSING and missing_ok:
        return None
    if done.exit_status != 0:
        reason = "no such file" if done.exit_status == MISSING else (err or b"").decode("utf-8", "replace").strip()
        raise ExecFileError(f"cat {remote} exited {done.exit_status}: {reason or '(no output)'}")
    return bytes(out or b"")


async def remove(conn: Any, remotes: Sequence[str]) -> None:
    if not remotes:
        return
    proc = await conn.create_process(_cmd(["rm", "-f", "--", *remotes]), encoding=None)
    proc.stdin.write_eof()
    await _finish(proc, "rm -f")


async def exists(conn: Any, remote: str) -> bool:
    proc = await conn.create_process(_cmd(["test", "-e", remote]), encoding=None)
    proc.stdin.write_eof()
    done = await proc.wait()
    return done.exit_status == 0
