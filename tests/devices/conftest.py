"""Fixtures for the device tests: real OpenSSH servers on 127.0.0.1 and a tiny real model.

The sshd fixtures run ``/usr/sbin/sshd -D -e -f CONFIG`` with throwaway host and user keys
(see :class:`loopback.LoopbackSshd`): key login only, the current user
(root in CI, so ``PermitRootLogin prohibit-password``), ``StrictModes no``, ``UsePAM no``. The
"device" is this machine, reached through a full SSH round trip. They skip, with the reason,
when sshd is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from loopback import LoopbackSshd, sshd_missing_reason

from edgebench.backends.options import TimingBudget


@pytest.fixture
def fast_budget() -> TimingBudget:
    """A short timing budget: a few real iterations, no minimum duration."""
    return TimingBudget(warmup_iters=2, warmup_s=0.0, iterations=20, min_duration_s=0.0)


def _require_sshd() -> None:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(f"no OpenSSH server for the loopback device tests: {reason}")


def _session_server(tmp_path_factory: pytest.TempPathFactory, folder: str, name: str) -> Iterator[LoopbackSshd]:
    _require_sshd()
    server = LoopbackSshd(tmp_path_factory.mktemp(folder), name=name).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """One loopback server for the whole session. Tests must not kill or re-key it."""
    yield from _session_server(tmp_path_factory, "sshd", "loopback")


@pytest.fixture(scope="session")
def sshd2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """A second, independent loopback server (another port, other keys): a second device."""
    yield from _session_server(tmp_path_factory, "sshd2", "loopback2")


@pytest.fixture
def make_sshd(tmp_path: Path) -> Iterator[Callable[..., LoopbackSshd]]:
    """A factory of private servers for tests that kill, restart or re-key them."""
    _require_sshd()
    servers: list[LoopbackSshd] = []

    def make(name: str = "private", start: bool = True, **options: object) -> LoopbackSshd:
        server = LoopbackSshd(tmp_path / f"sshd-{len(servers)}", name=name, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real CNN (seeded weights) for 1x8x8 digits, exported with edgebench's exporter."""
    import torch

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    )
    return export_onnx(model, tmp_path_factory.mktemp("model") / "small.onnx", (1, 1, 8, 8))


@pytest.fixture(scope="session")
def digits_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real inputs: 64 of scikit-learn's 8x8 digits as float32 (N, 1, 8, 8) in [0, 1]."""
    from edgebench.subject.data import load_arrays

    x, y = load_arrays("digits")
    path = tmp_path_factory.mktemp("inputs") / "digits64.npz"
    np.savez(path, x=np.ascontiguousarray(x[:64], dtype=np.float32), y=y[:64])
    return path


@pytest.fixture(scope="session")
def adversarial_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real input set: the same digits shifted by one pixel (a different array)."""
    from edgebench.subject.data import load_arrays

    x, _ = load_arrays("digits")
    shifted = np.roll(np.ascontiguousarray(x[64:96], dtype=np.float32), 1, axis=3)
    path = tmp_path_factory.mktemp("inputs2") / "shifted.npz"
    np.savez(path, x=shifted)
    return path
