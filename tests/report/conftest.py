"""Fixtures for the report stage: the hand-written results.json of tests/report/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_helpers import RESULTS, load_fixture


@pytest.fixture
def results() -> dict:
    return load_fixture()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder holding a copy of the fixture results.json."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(RESULTS, folder / "results.json")
    return folder
