"""A throwaway OpenSSH server on 127.0.0.1, for the test-suite and the loopback benchmark.

It generates its own host and user keys, writes an ``sshd_config`` that allows only key login
for the current user, and runs ``/usr/sbin/sshd -D -e -f CONFIG``. The "device" is this very
machine, so a full SSH round trip (auth, SFTP, remote agent) is exercised without hardware.
Nothing here is used by ``edgebench`` itself.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from edgebench.devices.inventory import DeviceSpec
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"


def sshd_missing_reason() -> str | None:
    """Why a loopback server cannot run here, or ``None`` when it can."""
    if not Path(SSHD).is_file():
        return f"{SSHD} not found (install openssh-server)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_keypair(private: Path) -> Path:
    """A new ed25519 key pair at *private* and *private*.pub (mode 0600)."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment="edgebench-loopback")
    private.parent.mkdir(parents=True, exist_ok=True)
    key.write_private_key(str(private))
    os.chmod(private, 0o600)
    pub = private.with_name(private.name + ".pub")
    key.write_public_key(str(pub))
    return pub


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal *pid* and every process below it (the sshd we started and its sessions)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = parent.children(recursive=True) + [parent]
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


class LoopbackSshd:
    """An sshd on 127.0.0.1:*port* in folder *root*; ``start()``/``kill()``/``restart()``."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        name: str = "loopback",
        sftp: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        reason = sshd_missing_reason()
        if reason:
            raise EdgebenchError(f"loopback sshd: {reason}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.sftp = sftp  # False: no ``Subsystem sftp`` line, like many small boards' servers
        self.env = dict(env or {})  # set in every session (sshd's SetEnv), e.g. a pip with no index
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.user_key = self.root / "id_ed25519"
        self.authorized_keys = self.root / "authorized_keys"
        self.known_hosts = self.root / "known_hosts"
        self.config = self.root / "sshd_config"
        self.log_file = self.root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        host_pub = write_keypair(self.host_key)
        user_pub = write_keypair(self.user_key)
        self.authorized_keys.write_text(user_pub.read_text())
        self.host_public_key = host_pub.read_text().split()[:2]
        self.trust_host_key()
        self._write_config()

    def trust_host_key(self) -> None:
        """Record the current host key in :attr:`known_hosts` (what a user does once)."""
        algo, b64 = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {algo} {b64}\n")

    def regenerate_host_key(self) -> None:
        """Give the server a new host key (a reinstalled device, or an impostor)."""
        write_keypair(self.host_key)

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.root / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "MaxStartups 64",
            "MaxSessions 64",
            "LogLevel ERROR",
        ]
        if self.sftp:
            lines.insert(-1, "Subsystem sftp internal-sftp")
        if self.env:
            lines.insert(-1, "SetEnv " + " ".join(f"{k}={v}" for k, v in self.env.items()))
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 120.0) -> LoopbackSshd:
        """Start sshd and wait until it answers with its SSH banner (*timeout_s*: a hang limit)."""
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        log_handle = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_handle.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgebenchError(f"loopback sshd exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise EdgebenchError(f"loopback sshd did not listen on 127.0.0.1:{self.port} within {timeout_s} s")

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server and every session below it (a device that drops off the network)."""
        if self.proc is not None:
            _kill_tree(self.proc.pid)
            self.proc.wait()
            self.proc = None

    def restart(self) -> LoopbackSshd:
        self.kill()
        return self.start()

    def spec(self, name: str | None = None, **overrides: object) -> DeviceSpec:
        """A device entry that reaches this server with strict host-key checking."""
        values: dict = {
            "name": name or self.name,
            "kind": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "python": sys.executable,
            "workdir": str(self.root / "device"),
            # hang limits: a busy test machine is slow, never this slow (tests of time-outs set their own)
            "connect_timeout_s": 60.0,
            "command_timeout_s": 900.0,
        }
        values.update(overrides)
        return DeviceSpec(**values)

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
