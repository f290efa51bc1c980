"""`edgebench` as a user runs it: a subprocess, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def edgebench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgebench", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[-1].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[-1]


def test_help_lists_every_command_with_examples() -> None:
    proc = edgebench("--help")
    assert proc.returncode == 0
    for cmd in ("run", "compress", "export", "attack", "profile", "replay", "report", "devices", "backends"):
        assert cmd in proc.stdout
    run_help = edgebench("run", "--help")
    assert run_help.returncode == 0 and "Examples" in run_help.stdout and "--fail-on" in run_help.stdout


def test_usage_errors_are_one_line_exit_2() -> None:
    """Typer's parser errors (its vendored click) go through the same one-line path as ours."""
    _one_line_error(edgebench("run", "--no-such-flag"), "No such option: --no-such-flag", "run --help")
    _one_line_error(edgebench("profile"), "Missing argument", "profile --help")
    _one_line_error(edgebench("no-such-command"), "No such command")


def test_missing_study_file(tmp_path: Path) -> None:
    _one_line_error(edgebench("run", str(tmp_path / "nope.yaml")), "study config not found", "nope.yaml")


def test_invalid_study(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("profile: {batches: [one]}\n")
    _one_line_error(
        edgebench("run", str(study), "--out", str(tmp_path / "out")),
        "profile.batches",
        "expected a non-empty list of positive integers",
    )


def test_unknown_device_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _one_line_error(edgebench("run", "--device", "no-such-board", "--out", str(out)), "unknown device 'no-such-board'")
    assert not out.exists()


def test_bad_fail_on_value(tmp_path: Path) -> None:
    _one_line_error(edgebench("run", "--fail-on", "sometimes", "--out", str(tmp_path / "o")), "--fail-on")


def test_replay_with_corrupt_artifact(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    attacks = tmp_path / "attacks"
    attacks.mkdir()
    _one_line_error(edgebench("replay", str(bad), str(attacks)), "is not a valid ONNX model", "model.onnx")
    _one_line_error(edgebench("replay", str(tmp_path / "missing.onnx"), str(attacks)), "ONNX model not found")


def test_export_with_a_checkpoint_that_is_not_a_model(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    ckpt.write_text("not a checkpoint")
    _one_line_error(
        edgebench("export", "-o", str(tmp_path / "m.onnx"), "--checkpoint", str(ckpt)), "not a PyTorch checkpoint"
    )


def test_fail_on_exit_code_reaches_the_shell(tmp_path: Path) -> None:
    """`report --fail-on` through the real entry point: the verdict's exit code is the process's."""
    import json
    import shutil

    fixture = Path(__file__).resolve().parents[1] / "report" / "data" / "results.json"
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(fixture, run / "results.json")
    from edgebench.report.gates import verdicts

    assert "NOT READY" in {v["status"] for v in verdicts(json.loads(fixture.read_text()))}
    assert edgebench("report", str(run), "--fail-on", "never").returncode == 0
    assert edgebench("report", str(run), "--fail-on", "not-ready").returncode == 1


def test_a_bug_is_one_line_exit_1_with_the_traceback_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An exception that is nobody's user error (a library failing) still reaches the user as one
    line; the traceback goes to a file a bug report can carry."""
    from edgebench.backends import registry
    from edgebench.cli.main import main

    def broken() -> list:
        raise RuntimeError("the runtime probe blew up\nsecond line")

    monkeypatch.setenv("EDGEBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(registry, "availability", broken)
    capsys.readouterr()
    assert main(["backends"]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("internal error: RuntimeError: the runtime probe blew up"), err
    assert "Traceback" not in err
    kept = (tmp_path / "last-error.txt").read_text()
    assert "Traceback" in kept and "blew up" in kept
