"""Where every command's output goes, through the real CLI (a subprocess, as a user runs it):
results on stdout (``edgebench run > log`` keeps the tables), progress on stderr (also with
``--json``), ``--quiet`` silencing only the progress; Ctrl-C; a run folder whose first attempt
stopped before making anything takes the corrected study."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE

STUDY = {
    "name": "clitest",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": ["base"],
    "attacks": {"samples": 8, "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": TINY_PROFILE,
    "devices": ["local"],
}
PROGRESS = "· run folder "  # the first progress line of every run


def edgebench(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``edgebench ARGS`` in a subprocess, stdout and stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "edgebench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, COLUMNS="200"),
    )


def _write(path: Path, study: dict) -> Path:
    path.write_text(yaml.safe_dump(study))
    return path


@dataclass
class Runs:
    folder: Path
    study: Path
    out: Path
    broken: subprocess.CompletedProcess  # a first attempt with a missing checkpoint
    first: subprocess.CompletedProcess  # then the corrected study, in the same folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("output")
    out = folder / "out"
    broken_study = dict(STUDY, model=dict(TINY_MODEL, checkpoint=str(folder / "missing.pt")))
    broken = edgebench("run", _write(folder / "broken.yaml", broken_study), "--out", out)
    study = _write(folder / "study.yaml", STUDY)
    return Runs(folder, study, out, broken, edgebench("run", study, "--out", out))


@pytest.mark.slow
def test_a_first_attempt_that_made_nothing_does_not_lock_its_folder(runs: Runs) -> None:
    assert runs.broken.returncode == 2 and "checkpoint not found" in runs.broken.stderr
    assert runs.first.returncode == 0, runs.first.stderr[-2000:]  # was: "holds a different study"
    assert json.loads((runs.out / "study.json").read_text())["model"]["checkpoint"] is None
    assert (runs.out / "measurements" / "base" / "local" / "profile.json").is_file()


@pytest.mark.slow
def test_a_folder_that_measured_something_still_refuses_another_study(runs: Runs) -> None:
    other = _write(runs.folder / "other.yaml", dict(STUDY, seed=1))
    proc = edgebench("run", other, "--out", runs.out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "holds a different study (changed: ['seed'])" in lines[-1]
    assert json.loads((runs.out / "study.json").read_text())["seed"] == 0


@pytest.mark.slow
def test_run_prints_its_tables_on_stdout_and_its_progress_on_stderr(runs: Runs) -> None:
    out, err = runs.first.stdout, runs.first.stderr
    assert "Verdict on local" in out and "robustness on local" in out
    assert f"results: {runs.out / 'results.json'}" in out
    assert PROGRESS in err and "local: memory and cold start of base" in err and "interleaved rounds" in err
    assert "Verdict on local" not in err and "results: " not in err


@pytest.mark.slow
def test_progress_lines_are_readable(runs: Runs) -> None:
    """No raw Python dict or repr in a progress line (the build's check was printed as one)."""
    err = runs.first.stderr
    built = next(ln for ln in err.splitlines() if ln.startswith("· base: fp32 artifact"))
    assert "{" not in err and "'" not in built, built
    assert "KiB" in built and "onnx.checker passed" in built and "top-1 agreement 100.0%" in built


@pytest.mark.slow
def test_run_json_keeps_progress_on_stderr(runs: Runs) -> None:
    proc = edgebench("run", runs.study, "--out", runs.out, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["study"]["name"] == "clitest"  # stdout is the JSON alone
    assert PROGRESS in proc.stderr and "base: artifact found, skipping build" in proc.stderr


@pytest.mark.slow
def test_quiet_drops_the_progress_and_keeps_the_results(runs: Runs) -> None:
    proc = edgebench("run", runs.study, "--out", runs.out, "--quiet")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "Verdict on local" in proc.stdout
    quiet_json = edgebench("compress", runs.study, "--out", runs.out, "--quiet", "--json")
    assert quiet_json.returncode == 0 and quiet_json.stderr == ""
    assert [m["name"] for m in json.loads(quiet_json.stdout)] == ["base"]


@pytest.mark.slow
def test_the_stage_commands_print_results_on_stdout(runs: Runs, tmp_path: Path) -> None:
    compress = edgebench("compress", runs.study, "--out", runs.out)
    assert compress.returncode == 0 and "candidates" in compress.stdout and "base.onnx" in compress.stdout
    assert "base: artifact found" in compress.stderr and "candidates" not in compress.stderr
    attack = edgebench("attack", runs.study, "--out", runs.out)
    assert attack.returncode == 0 and "adversarial sets" in attack.stdout and "fgsm-linf-16" in attack.stdout
    assert PROGRESS in attack.stderr and "adversarial sets" not in attack.stderr
    replay = edgebench("replay", runs.out / "artifacts" / "base.onnx", runs.out / "attacks")
    assert replay.returncode == 0 and "replay through base.onnx on local" in replay.stdout
    assert replay.stderr == ""
    checkpoint = next((Path(os.environ["EDGEBENCH_CACHE_DIR"]) / "models").glob("lenet5-mnist-*.pt"))
    onnx = tmp_path / "m.onnx"
    export = edgebench("export", "-o", onnx, "--arch", "lenet5", "--checkpoint", checkpoint, "--data", "mnist")
    assert export.returncode == 0 and f"wrote {onnx}" in export.stdout and export.stderr == ""


def test_devices_add_says_what_it_stored_on_stdout(tmp_path: Path) -> None:
    inventory = tmp_path / "devices.yaml"
    proc = edgebench("devices", "add", "board", "--host", "192.0.2.10", "--file", inventory)
    assert proc.returncode == 0 and proc.stderr == ""
    assert f"added device board (192.0.2.10:22) to {inventory}" in proc.stdout


def test_init_says_what_it_wrote_on_stdout(tiny_onnx: Path, digits_npz: Path, tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    proc = edgebench("init", tiny_onnx, "--data", digits_npz, "-o", study)
    assert proc.returncode == 0 and study.is_file()
    assert f"wrote {study}" in proc.stdout and f"next: edgebench run {study}" in proc.stdout
    assert "wrote" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_measured_and_says_how_to_resume(tmp_path: Path) -> None:
    # the timing pass lasts a while, so the interrupt lands in it even when this test reads the
    # progress late on a loaded machine
    timed = dict(STUDY, profile=dict(TINY_PROFILE, min_duration_s=1.5))
    study = _write(tmp_path / "study.yaml", timed)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgebench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        # as at a terminal: a suite started in the background (`cmd &`, nohup, some CI runners)
        # passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the base's own-process profile is on disk once its timing pass begins
        seen.append(line)
        if "local: timing base" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + rest
    lines = [ln for ln in rest.splitlines() if ln.strip()]
    again = "edgebench " + shlex.join(args)
    assert lines[-1] == f"interrupted: the measurements finished so far are kept; to resume, run again: {again}"
    assert "Traceback" not in rest
    profile = out / "measurements" / "base" / "local" / "profile-solo.json"  # memory and cold start
    kept = profile.stat().st_mtime_ns
    resumed = edgebench(*shlex.split(lines[-1].split("run again: ", 1)[1])[1:])  # the command it printed
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert profile.stat().st_mtime_ns == kept  # resumed: not measured again
    assert (profile.parent / "profile.json").is_file()  # the timing pass ran on resume
    assert "Verdict on local" in resumed.stdout
