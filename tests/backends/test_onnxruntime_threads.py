"""The intra-op thread count reaches the ONNX Runtime session: measured by the threads the
session starts, not by the option echoed back in ``environment()``.

ORT's intra-op pool runs on the calling thread plus ``intra_op_num_threads - 1`` workers, started
when the session is created and joined when it is destroyed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil

from edgebench.backends.onnxruntime import OnnxRuntimeBackend
from edgebench.backends.options import BackendOptions


def _threads_started(model: Path, threads: int, x: np.ndarray) -> int:
    proc = psutil.Process()
    before = proc.num_threads()
    with OnnxRuntimeBackend(str(model), BackendOptions(threads=threads)) as be:
        be.infer({"input": x})
        during = proc.num_threads()
    return during - before


def test_intra_op_threads_start_that_many_pool_threads(small_onnx: Path, small_inputs: np.ndarray) -> None:
    x = small_inputs[:2]
    _threads_started(small_onnx, 1, x)  # the first session starts ORT's process-wide threads once
    one, three = _threads_started(small_onnx, 1, x), _threads_started(small_onnx, 3, x)
    # without the setting, both sessions get the default pool (one thread per physical core)
    assert three - one == 2, (one, three)
