"""Engine choice errors: one line, exit 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from events import HANG_S

STUDY = {"name": "eng", "candidates": ["base"], "devices": ["local"]}


def _run(tmp_path: Path, *args: str, block_ray: bool = False) -> subprocess.CompletedProcess:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    # sys.modules["ray"] = None makes "import ray" fail exactly as it does where ray is not installed
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else "import sys; "
    code = prelude + "from edgebench.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "run", str(study), "--out", str(tmp_path / "run"), *args],
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )


def test_engine_ray_without_ray_says_how_to_install(tmp_path: Path) -> None:
    res = _run(tmp_path, "--engine", "ray", block_ray=True)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'edgebench[ray]'" in lines[0], res.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_engine_is_one_line(tmp_path: Path) -> None:
    res = _run(tmp_path, "--engine", "dask")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --engine: expected one of local, ray, found 'dask'"
    assert not (tmp_path / "run").exists()


def test_ray_address_with_the_local_engine_is_refused(tmp_path: Path) -> None:
    res = _run(tmp_path, "--ray-address", "127.0.0.1:6379")
    assert res.returncode == 2 and "--ray-address: only meaningful with --engine ray" in res.stderr
