"""`edgebench run` on a device list: the local CPU and a real sshd on 127.0.0.1, in parallel;
the SSH device lost mid-study, then a re-run that measures only what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from events import HANG_S
from loopback import LoopbackSshd
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE

from edgebench.devices.inventory import add_device

STUDY = {
    "name": "devices",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": ["base", {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}}],
    "attacks": {"samples": 16, "settings": ["transfer"], "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": TINY_PROFILE,
}


pytestmark = pytest.mark.timeout(int(3 * HANG_S))  # two runs, each allowed HANG_S before it counts as hung


def _run(study: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(study), "--out", str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env=dict(os.environ),
    )


def test_run_on_local_and_ssh_then_resume_after_the_link_died(
    make_sshd: Callable[..., LoopbackSshd], tmp_path: Path
) -> None:
    server = make_sshd("bench-board")
    add_device(server.spec(), replace=True)  # the user-level inventory (EDGEBENCH_INVENTORY, set by conftest)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(dict(STUDY, devices=["local", "bench-board"])))
    out = tmp_path / "run"

    server.kill()  # the board is unreachable for the first run
    first = _run(study, out)
    assert first.returncode == 2, first.stderr
    assert "Traceback" not in first.stderr and "bench-board" in first.stderr.strip().splitlines()[-1]
    local = sorted((out / "measurements").glob("*/local/*.json"))
    names = {"profile-solo.json", "profile.json", "replay.json"}
    assert {p.name for p in local} == names and len(local) == 6  # local finished, its timing pass too
    assert not list((out / "measurements").glob("*/bench-board/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in local}

    server.start()
    second = _run(study, out)
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in local} == stamps  # nothing measured again
    results = json.loads((out / "results.json").read_text())
    for cand in results["candidates"]:
        remote = cand["devices"]["bench-board"]
        assert remote["latency_ms"]["p50"] > 0 and remote["clean_accuracy"] is not None
        assert remote["environment"]["transport"]["kind"] == "ssh"
        # the same artifact on the same CPU gives the same predictions through SSH
        assert remote["clean_accuracy"] == cand["devices"]["local"]["clean_accuracy"]
