"""Fixtures for the scale tests: the loopback OpenSSH servers of ``tests/devices`` (real sshd on
127.0.0.1, see ``tests/devices/loopback.py``) as the boards a Ray cluster measures on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devices"))

from loopback import LoopbackSshd, sshd_missing_reason  # noqa: E402


def _server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[LoopbackSshd]:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(f"no OpenSSH server for the loopback device tests: {reason}")
    server = LoopbackSshd(tmp_path_factory.mktemp(name), name=name).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """One loopback server for the session (a board). Tests must not kill or re-key it."""
    yield from _server(tmp_path_factory, "loopback")


@pytest.fixture(scope="session")
def sshd2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """A second, independent loopback server (another port, other keys): a second board."""
    yield from _server(tmp_path_factory, "loopback2")
