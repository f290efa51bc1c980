"""The run folder: atomic measurement files, resume, and refusing to mix studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.errors import EdgebenchError
from edgebench.study.store import RunStore


def test_save_has_load_roundtrip(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert not store.has("pruned-50+int8", "jetson", "profile")
    store.save("pruned-50+int8", "jetson", "profile", {"p50": 1.5})
    assert store.has("pruned-50+int8", "jetson", "profile")
    assert store.load("pruned-50+int8", "jetson", "profile") == {"p50": 1.5}
    assert not list(tmp_path.rglob("*.tmp"))


def test_has_does_not_parse_and_a_damaged_file_is_named(tmp_path: Path) -> None:
    """Saving is atomic (whole file or none), so `has` only looks for the file; a file damaged by
    hand afterwards is a one-line error naming it when it is read, never a silent zero."""
    store = RunStore(tmp_path)
    path = store.save("base", "local", "replay", {"ok": True})
    path.write_text('{"ok": tr')  # e.g. a file copied half-way by hand
    assert store.has("base", "local", "replay")
    with pytest.raises(EdgebenchError, match=r"replay\.json: expected a measurement JSON.*delete it and re-run"):
        store.load("base", "local", "replay")
    path.unlink()
    assert not store.has("base", "local", "replay") and store.load("base", "local", "replay") is None


def test_names_are_made_safe_for_the_file_system(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    path = store.measurement_path("../evil name", "dev/1", "profile")
    assert tmp_path in path.parents and ".." not in path.relative_to(tmp_path).parts


def test_bind_study_refuses_a_different_study(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.bind_study({"name": "a", "seed": 0, "devices": ("local",)})
    store.bind_study({"name": "a", "seed": 0, "devices": ["local"]})  # the same study resumes
    store.bind_study({"name": "a", "seed": 0, "devices": ["local", "jetson"]})  # a new device: resume
    assert store.read_json("study.json")["devices"] == ["local", "jetson"]
    store.save("base", "local", "profile", {"p50": 1.0})
    with pytest.raises(EdgebenchError, match=r"holds a different study \(changed: \['seed'\]\) and what it made"):
        store.bind_study({"name": "a", "seed": 1})
    assert store.read_json("study.json")["seed"] == 0


def test_a_folder_that_made_nothing_takes_a_corrected_study(tmp_path: Path) -> None:
    """An attempt that stopped after preparing the subject (a wrong data path, a missing
    checkpoint) built and measured nothing: the corrected study binds, and the subject files
    made from the old study go (the new one would otherwise reuse the old evaluation images)."""
    import numpy as np

    store = RunStore(tmp_path)
    store.bind_study({"name": "a", "data": {"name": "digits"}})
    store.save_arrays("eval", x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.int64))
    store.write_json("subject.json", {"model": "old"})
    assert store.made() == []
    store.bind_study({"name": "a", "data": {"name": "mnist"}})
    assert store.read_json("study.json")["data"] == {"name": "mnist"}
    assert store.load_arrays("eval") is None and store.read_json("subject.json") is None
    store.save_arrays("eval", x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.int64))
    store.write_json("artifacts/base.json", {"name": "base"})  # something built: bound now
    assert store.made() == ["artifacts"]
    with pytest.raises(EdgebenchError, match=r"changed: \['data'\]\) and what it made \(artifacts\)"):
        store.bind_study({"name": "a", "data": {"name": "digits"}})
    assert store.load_arrays("eval") is not None


def test_a_folder_made_before_a_key_was_added_resumes(tmp_path: Path) -> None:
    """A run folder written by an older edgebench lacks keys added since (here
    ``attacks.whitebox_restarts``). Read with the current schema, the missing key takes its
    default, which does what the older edgebench did: the folder resumes. A key the user set to
    something else is still a change."""
    from edgebench.study.config import study_from_dict

    cfg = study_from_dict({"name": "a"})
    old = cfg.to_dict()
    del old["attacks"]["whitebox_restarts"]
    store = RunStore(tmp_path)
    store.bind_study(old)
    store.save("base", "local", "profile", {"p50": 1.0})
    from edgebench.study.pipeline import reread_study as reread

    store.bind_study(cfg.to_dict(), reread=reread)
    with pytest.raises(EdgebenchError, match=r"changed: \['attacks'\]"):
        store.bind_study(cfg.to_dict())  # compared as stored, the new key is a change
    more = study_from_dict({"name": "a", "attacks": {"whitebox_restarts": 3}}).to_dict()
    with pytest.raises(EdgebenchError, match=r"changed: \['attacks'\]"):
        store.bind_study(more, reread=reread)
