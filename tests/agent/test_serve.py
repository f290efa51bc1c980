"""The persistent agent session (``--serve``) that black-box attacks query the deployed engine through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.protocol import ProfileJob, SessionJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.devices.inventory import builtin_local
from edgebench.devices.local import LocalDevice
from edgebench.errors import EdgebenchError
from edgebench.export.onnx import ort_logits


def test_session_answers_with_the_engines_logits(tiny_onnx: Path, digits: tuple) -> None:
    x = digits[0][:7]
    with LocalDevice(builtin_local()).open_session(
        SessionJob(artifact=str(tiny_onnx), options=BackendOptions(threads=1))
    ) as s:
        assert s.input["name"] == "input" and s.runtime["backend"] == "onnxruntime"
        got = np.concatenate([s.query(x[:3]), s.query(x[3:])])
        assert s.queries == 7
    np.testing.assert_array_equal(got, ort_logits(tiny_onnx, x, threads=1))


def test_session_reports_bad_queries_and_goes_on(tiny_onnx: Path, digits: tuple) -> None:
    with LocalDevice(builtin_local()).open_session(SessionJob(artifact=str(tiny_onnx))) as s:
        with pytest.raises(EdgebenchError, match=r"expects shape \(\?, 1, 8, 8\)"):
            s.query(np.zeros((1, 1, 28, 28), np.float32))
        assert s.query(digits[0][:1]).shape == (1, 10)


def test_session_on_a_missing_artifact_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(EdgebenchError, match="ONNX model not found"):
        LocalDevice(builtin_local()).open_session(SessionJob(artifact=str(tmp_path / "none.onnx")))


def test_decoded_arrays_are_writable() -> None:
    from edgebench.agent.serve import decode, encode

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    enc = encode(x)
    back = decode(enc["data"], enc["shape"])
    np.testing.assert_array_equal(back, x)
    assert back.flags.writeable


def test_the_inventorys_threads_reach_jobs_and_sessions(tiny_onnx: Path, digits_npz: Path) -> None:
    """A device's `threads` applies wherever the job leaves threads open, and only there."""
    import dataclasses

    device = LocalDevice(dataclasses.replace(builtin_local(), threads=1))
    budget = TimingBudget(warmup_iters=0, warmup_s=0.0, iterations=2, min_duration_s=0.0)
    job = ProfileJob(artifact=str(tiny_onnx), inputs=str(digits_npz), budget=budget)
    assert device.run_job(job)["runtime"]["intra_op_threads"] == 1
    two = dataclasses.replace(job, options=BackendOptions(threads=2))
    assert device.run_job(two)["runtime"]["intra_op_threads"] == 2
    with device.open_session(SessionJob(artifact=str(tiny_onnx))) as s:
        assert s.runtime["intra_op_threads"] == 1
