"""A query session over SSH (the black-box attack's channel to a remote deployed engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from loopback import LoopbackSshd

from edgebench.agent.protocol import SessionJob
from edgebench.backends.options import BackendOptions
from edgebench.devices.registry import open_device
from edgebench.errors import EdgebenchError
from edgebench.export.onnx import ort_logits


def test_session_over_ssh_answers_like_a_local_session(
    sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, tmp_path: Path
) -> None:
    with np.load(digits_inputs) as d:
        x = d["x"][:5].astype(np.float32)
    with open_device(sshd.spec(workdir=str(tmp_path / "wd"))) as dev:
        with dev.open_session(SessionJob(artifact=str(small_onnx), options=BackendOptions(threads=1))) as session:
            got = np.concatenate([session.query(x[:2]), session.query(x[2:])])
            assert session.queries == 5 and session.runtime["backend"] == "onnxruntime"
            with pytest.raises(EdgebenchError, match="expects shape"):
                session.query(np.zeros((1, 3, 2, 2), np.float32))
            assert session.query(x[:1]).shape[0] == 1  # the session survives a bad query
    np.testing.assert_allclose(got, ort_logits(small_onnx, x, threads=1), atol=1e-6)


def test_blackbox_attack_through_ssh(sshd: LoopbackSshd, small_onnx: Path, digits_inputs: Path, tmp_path: Path) -> None:
    from edgebench.robustness.blackbox import BlackBoxSpec, run_blackbox

    with np.load(digits_inputs) as d:
        x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
    spec = BlackBoxSpec(max_queries=40, gradient_queries=8, epsilons=(1.0, 4.0))
    with open_device(sshd.spec(workdir=str(tmp_path / "wd"))) as dev:
        with dev.open_session(SessionJob(artifact=str(small_onnx))) as session:
            res = run_blackbox(session.query, x[:2], y[:2], spec, pool_x=x[2:20], pool_y=y[2:20])
            used = session.queries
    assert res.queries.max() <= 40
    assert used == int(res.queries.sum()) + res.pool_queries  # every query the attack counted went over SSH
