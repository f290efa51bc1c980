"""Host-key checking against a real sshd: strict by default, accept-new only when opted in,
a changed key always refused with a message naming host, port and known_hosts file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from loopback import LoopbackSshd, write_keypair

from edgebench.devices.ssh import SshDevice
from edgebench.devices.ssh.transport import HostKeyError, SshOptions, SshTransport
from edgebench.errors import EdgebenchError


def connect(spec, accept_new: bool | None = None) -> SshTransport:  # noqa: ANN001
    t = SshTransport(SshOptions.from_spec(spec, accept_new), spec.name)
    t.connect()
    return t


def test_known_host_connects(sshd: LoopbackSshd) -> None:
    t = connect(sshd.spec())
    assert t.run(["echo", "ok"]).stdout == "ok\n" and t.host_key_recorded is False
    t.close()


def test_unknown_host_is_refused_without_opt_in(sshd: LoopbackSshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"  # does not exist yet: nothing is known
    with pytest.raises(HostKeyError) as info:
        connect(sshd.spec(known_hosts=str(known)))
    msg = str(info.value)
    assert f"127.0.0.1:{sshd.port}" in msg and "is unknown" in msg and str(known) in msg
    assert "accept_new_host_key" in msg and "SHA256:" in msg
    assert not known.exists()  # nothing recorded


def test_accept_new_records_an_unknown_key_then_checks_strictly(sshd: LoopbackSshd, tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    spec = sshd.spec(known_hosts=str(known))
    t = connect(spec, accept_new=True)
    assert t.host_key_recorded is True
    t.close()
    line = known.read_text().strip()
    assert line == f"[127.0.0.1]:{sshd.port} " + " ".join(sshd.host_public_key)
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    t = connect(spec)  # now known: strict checking passes without the opt-in
    assert t.host_key_recorded is False
    t.close()


def test_changed_host_key_is_refused_even_with_accept_new(make_sshd: Callable[..., LoopbackSshd]) -> None:
    server = make_sshd()
    spec = server.spec()
    connect(spec).close()
    before = Path(spec.known_hosts).read_text()
    server.regenerate_host_key()  # the device was reinstalled, or someone is in the middle
    server.restart()
    for accept_new in (None, True):
        with pytest.raises(HostKeyError) as info:
            connect(spec, accept_new)
        msg = str(info.value)
        assert f"127.0.0.1:{server.port}" in msg and "has CHANGED" in msg and spec.known_hosts in msg
        assert f"ssh-keygen -R '[127.0.0.1]:{server.port}'" in msg
    assert Path(spec.known_hosts).read_text() == before  # never overwritten
    with pytest.raises(HostKeyError, match="has CHANGED"):  # the device layer does not retry it either
        SshDevice(spec).run_job({"kind": "env"})


def test_tampered_known_hosts_entry_is_refused(sshd: LoopbackSshd, tmp_path: Path) -> None:
    other_pub = write_keypair(tmp_path / "other_key").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other_pub)}\n")
    with pytest.raises(HostKeyError, match=rf"127\.0\.0\.1:{sshd.port} has CHANGED"):
        connect(sshd.spec(known_hosts=str(known)), accept_new=True)


def test_a_key_the_server_does_not_accept_is_an_authentication_error(sshd: LoopbackSshd, tmp_path: Path) -> None:
    write_keypair(tmp_path / "stranger")
    with pytest.raises(EdgebenchError, match=r"authentication failed: the server accepted none of the key .*stranger"):
        connect(sshd.spec(identity_file=str(tmp_path / "stranger")))
    with pytest.raises(EdgebenchError, match="identity_file not found: expected a private key at"):
        connect(sshd.spec(identity_file=str(tmp_path / "missing")))
