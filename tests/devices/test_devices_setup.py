"""A board as it comes, over a real loopback sshd: a Python without numpy and psutil.

Every command that uses such a device says, in one line with exit 2, what is missing and the
``edgebench devices setup`` command to run (issue 21, item 2). ``devices setup`` then makes a
venv with the device's own Python, installs what the agent needs with that venv's pip, from a
wheelhouse the host downloads when the device's pip has no index to reach (here the sshd hands
every session ``PIP_NO_INDEX=1``: a board without internet), records the venv's Python in the
inventory, and a second run changes nothing (item 1).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from loopback import LoopbackSshd

from edgebench.agent.protocol import SessionJob
from edgebench.cli.main import main
from edgebench.devices.inventory import add_device, get_device
from edgebench.devices.readiness import DeviceNotReady
from edgebench.devices.ssh import SshDevice

NO_INDEX = {"PIP_NO_INDEX": "1"}  # the device's pip reaches no index: a board without internet


def _lacks_agent_needs(python: str) -> bool:
    """*python* runs, has the venv module, and imports neither numpy nor psutil (site included)."""
    probe = "import importlib.util as u, venv; print(any(u.find_spec(m) for m in ('numpy', 'psutil')))"
    try:
        res = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return res.returncode == 0 and res.stdout.strip() == "False"


@pytest.fixture(scope="module")
def board_python() -> str:
    """The Python of a board as it comes: a system interpreter whose site-packages hold neither
    numpy nor psutil (Debian's /usr/bin/python3 here), as JetPack's is before anything is added.
    A venv cannot stand in: ``--system-site-packages`` would see its base interpreter's packages."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or ""):
        if cand and _lacks_agent_needs(cand):
            return cand
    pytest.skip("no system Python 3 without numpy and psutil here (expected one at /usr/bin/python3)")


@pytest.fixture
def bare_python(tmp_path: Path) -> str:
    """A Python without numpy and psutil, built for the test: a venv without pip or site-packages."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python3")
    assert _lacks_agent_needs(python)
    return python


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_device_without_psutil_gets_one_line_from_every_command(
    sshd: LoopbackSshd, bare_python: str, small_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_device(sshd.spec("bare-box", python=bare_python), replace=True)
    expected = f"error: device 'bare-box' is not ready: numpy and psutil are missing from its Python {bare_python}"
    hint = "run `edgebench devices setup bare-box`"
    for args in (
        ["profile", str(small_onnx), "--device", "bare-box"],
        ["backends", "--device", "bare-box"],
        ["devices", "check", "bare-box"],
    ):
        capsys.readouterr()
        assert main(args) == 2, args
        line = _one_line_error(capsys.readouterr().err)
        if args[0] == "devices":  # the probe's wording: no agent ran
            assert line.startswith("error: device 'bare-box' is not ready: numpy and psutil are missing"), line
        else:
            assert line.startswith(expected), line
        assert hint in line, line
    # a query session (black-box attacks) is refused the same way
    with SshDevice(get_device("bare-box")) as dev, pytest.raises(DeviceNotReady) as info:
        dev.open_session(SessionJob(artifact=str(small_onnx)))
    assert str(info.value).startswith(expected[len("error: ") :]) and hint in str(info.value)


def test_setup_makes_a_board_without_internet_ready_and_a_second_run_only_checks(
    make_sshd: Callable[..., LoopbackSshd],
    board_python: str,
    small_onnx: Path,
    user_inventory_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = make_sshd("offline-board", env=NO_INDEX)
    add_device(server.spec("board", python=board_python, runtimes=()), replace=True)
    workdir = Path(server.spec().workdir)
    capsys.readouterr()
    assert main(["devices", "check", "board"]) == 2  # as it comes: not ready
    assert "run `edgebench devices setup board`" in capsys.readouterr().err

    assert main(["devices", "setup", "board", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    venv_python = str(workdir / "venv" / "bin" / "python3")
    assert report["changed"] is True and report["ok"] is True and report["python"] == venv_python
    assert report["source"] == "wheelhouse"  # the device's pip found no index: the host built one
    assert set(report["installed"]) == {"numpy", "psutil"}
    assert "could not install from its index" in captured.err  # progress says why, on stderr
    # effects on the device: a venv made from its Python, with system site-packages visible ...
    cfg = (workdir / "venv" / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    # ... whose own site-packages now hold numpy and psutil, from wheels pushed by name
    where = subprocess.run(
        [venv_python, "-c", "import numpy, psutil; print(numpy.__file__); print(psutil.__file__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(workdir / "venv")) for line in where.stdout.split()), where.stdout
    wheels = sorted(p.name for p in (workdir / "wheelhouse").glob("*.whl"))
    assert sorted(report["pushed"]) == wheels and any(w.startswith("psutil-") for w in wheels)
    # the inventory runs the agent there from now on
    stored = {d["name"]: d for d in yaml.safe_load(user_inventory_file.read_text())["devices"]}
    assert stored["board"]["python"] == venv_python and stored["board"]["base_python"] == board_python
    capsys.readouterr()
    assert main(["devices", "check", "board", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["ok"] is True and checked["python"]["executable"] == venv_python

    # idempotent: a second run finds everything in place, sends nothing, changes nothing
    stamps = {p: p.stat().st_mtime_ns for p in (workdir / "wheelhouse").iterdir()}
    inventory_before = user_inventory_file.read_text()
    assert main(["devices", "setup", "board", "--offline", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["changed"] is False and again["pushed"] == [] and again["installed"] == {}
    assert [s["changed"] for s in again["steps"]] == [False, False, False]
    assert {p: p.stat().st_mtime_ns for p in (workdir / "wheelhouse").iterdir()} == stamps
    assert user_inventory_file.read_text() == inventory_before
    assert main(["devices", "setup", "board"]) == 0
    assert "nothing to do" in capsys.readouterr().out

    # the agent now starts there; a job on a runtime the board lacks names it and the setup flag
    assert main(["profile", str(small_onnx), "--device", "board"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert f"onnxruntime is missing from its Python {venv_python} (the job's runtime)" in line, line
    assert line.endswith("run `edgebench devices setup board --runtime onnxruntime`"), line


@pytest.fixture
def user_inventory_file() -> Path:
    """The user inventory the session's conftest points EDGEBENCH_INVENTORY at."""
    from edgebench import settings

    return settings.user_inventory()


def test_setup_of_this_host_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "setup", "local"]) == 2
    assert _one_line_error(capsys.readouterr().err).startswith("error: device 'local' is this host")
