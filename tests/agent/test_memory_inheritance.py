"""The agent's peak-RSS figure must not inherit the forking parent's peak (Linux ru_maxrss does)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgebench.agent.memory import _vm_hwm_mb, ru_maxrss_mb

CHILD = (
    "import json; from edgebench.agent.memory import ru_maxrss_mb, getrusage_maxrss_mb; "
    "print(json.dumps([ru_maxrss_mb(), getrusage_maxrss_mb()]))"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inheritance is a Linux behaviour")
def test_a_child_does_not_report_its_parents_peak() -> None:
    ballast = np.ones(300 * 1024 * 1024 // 8)  # 300 MB resident in this (parent) process
    ballast[::512] = 2.0
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    ours, getrusage = json.loads(out.stdout)
    assert getrusage >= 300  # the kernel carried the parent's peak over fork + exec ...
    assert ours < 200  # ... the agent's figure is the child's own (a Python with numpy: tens of MB)
    del ballast


def test_vm_hwm_reads_this_process() -> None:
    hwm = _vm_hwm_mb()
    if hwm is None:
        pytest.skip("no /proc/self/status here")
    assert ru_maxrss_mb() == pytest.approx(hwm, abs=50)  # same figure (the peak may grow in between)
    assert hwm > 0
