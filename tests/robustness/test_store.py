"""Adversarial sets on disk: float32 round trip, validation on load, resumable crafting."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from edgebench.agent.jobs import load_array
from edgebench.errors import EdgebenchError
from edgebench.robustness.attacks import AttackSpec, craft
from edgebench.robustness.store import (
    INDEX_NAME,
    craft_and_store,
    load,
    load_folder,
    model_fingerprint,
    read_index,
    save,
)
from edgebench.util.io import atomic_write_json, sha256_file

PGD = AttackSpec("pgd", "linf", (8 / 255, 32 / 255), steps=3)


@pytest.fixture(scope="module")
def pgd_sets(digits_model, eval_batch):
    x, y = eval_batch
    return craft(digits_model, x[:32], y[:32], PGD, indices=np.arange(100, 132))


def test_round_trip_is_exact_float32_and_not_8bit(tmp_path, pgd_sets):
    s = pgd_sets[0]
    path = save(s, tmp_path)
    assert path.name == "pgd-linf-8.npz" and (tmp_path / "pgd-linf-8.json").is_file()
    back = load(path)
    assert back.x_adv.dtype == np.float32
    np.testing.assert_array_equal(back.x_adv, s.x_adv)
    for name in ("labels", "indices", "base_predictions", "base_clean_predictions"):
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))
    assert back.indices[0] == 100
    assert (back.id, back.attack, back.norm, back.eps, back.params) == (s.id, "pgd", "linf", 8 / 255, s.params)
    assert back.versions["foolbox"].startswith("3.")
    # values off the 1/255 grid survive: the set was not quantized to 8-bit images
    off_grid = np.abs(back.x_adv * 255 - np.round(back.x_adv * 255)) > 1e-3
    assert off_grid.mean() > 0.5
    # the agent's predict job reads the same file with its own loader and key "x"
    np.testing.assert_array_equal(load_array(str(path), "x"), s.x_adv)
    with np.load(path, allow_pickle=False) as z:
        assert z["x"].dtype == np.float32
    manifest = json.loads((tmp_path / "pgd-linf-8.json").read_text())
    assert (
        manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        and manifest["base_accuracy"] == s.base_accuracy
    )
    # load without inputs: predictions only
    light = load(tmp_path / "pgd-linf-8.json", inputs=False)
    assert light.x_adv is None and light.base_accuracy == s.base_accuracy


def test_load_rejects_missing_tampered_and_malformed_files(tmp_path, pgd_sets):
    s = pgd_sets[0]
    with pytest.raises(EdgebenchError, match="adversarial set not found: expected a file at"):
        load(tmp_path / "nope.npz")
    path = save(s, tmp_path)
    (tmp_path / "pgd-linf-8.json").unlink()
    with pytest.raises(EdgebenchError, match="manifest not found"):
        load(path)

    def write_raw(name: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (tmp_path / f"{name}.npz").write_bytes(buf.getvalue())
        manifest = {
            "schema": "edgebench.advset/1",
            "id": name,
            "attack": "pgd",
            "norm": "linf",
            "eps": 0.03,
            "shape": list(arrays["x"].shape),
            "sha256": sha256_file(tmp_path / f"{name}.npz"),
        }
        atomic_write_json(tmp_path / f"{name}.json", manifest)

    ints = {k: getattr(s, k) for k in ("labels", "indices", "base_predictions", "base_clean_predictions")}
    write_raw("as-uint8", x=(s.x_adv * 255).round().astype(np.uint8), **ints)
    with pytest.raises(EdgebenchError, match="expected x as float32, found uint8"):
        load(tmp_path / "as-uint8.npz")
    write_raw("short-labels", x=s.x_adv, **{**ints, "labels": s.labels[:5]})
    with pytest.raises(EdgebenchError, match=r"expected labels of shape \(32,\), found \(5,\)"):
        load(tmp_path / "short-labels.npz")
    write_raw("no-preds", x=s.x_adv, labels=s.labels, indices=s.indices)
    with pytest.raises(EdgebenchError, match=r"lacks array\(s\) \['base_predictions', 'base_clean_predictions'\]"):
        load(tmp_path / "no-preds.npz")
    # a file changed after it was written no longer matches its manifest
    save(s, tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(EdgebenchError, match="does not match the sha256"):
        load(path)


def test_resume_skips_matching_sets_and_recrafts_changed_ones(tmp_path, digits_model, eval_batch):
    x, y = eval_batch
    x, y = x[:16], y[:16]
    specs = [PGD, AttackSpec("cw", "l2", (1.0,), steps=10, binary_search_steps=2)]
    progress: list[tuple[str, int, int]] = []
    first = craft_and_store(
        digits_model, x, y, specs, tmp_path, batch_size=8, on_progress=lambda *a: progress.append(a)
    )
    # PGD: 2 epsilons x 2 batches of 8; CW: one run over the samples it attacks
    assert [p for p in progress if p[0] == "pgd-linf"] == [("pgd-linf", d, 32) for d in (8, 16, 24, 32)]
    assert progress[-1][0] == "cw-l2" and progress[-1][1] == progress[-1][2]
    ids = ["pgd-linf-8", "pgd-linf-32", "cw-l2-min", "cw-l2-1"]
    assert first.crafted == ids and first.skipped == []
    assert [r["id"] for r in read_index(tmp_path)] == ids
    assert [r["path"] for r in read_index(tmp_path)] == [f"{i}.npz" for i in ids]
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*-*.*")}

    again = craft_and_store(digits_model, x, y, specs, tmp_path)
    assert again.crafted == [] and again.skipped == ids
    assert again.sets == first.sets
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*-*.*")} == mtimes

    # one more epsilon: only the new set is crafted
    more = craft_and_store(
        digits_model, x, y, [AttackSpec("pgd", "linf", (8 / 255, 32 / 255, 64 / 255), steps=3), specs[1]], tmp_path
    )
    assert more.crafted == ["pgd-linf-64"]
    assert (tmp_path / "pgd-linf-8.npz").stat().st_mtime_ns == mtimes["pgd-linf-8.npz"]
    # changed parameters, samples, model or seed: crafted again
    assert craft_and_store(digits_model, x, y, [AttackSpec("pgd", "linf", (8 / 255,), steps=4)], tmp_path).crafted == [
        "pgd-linf-8"
    ]
    assert craft_and_store(
        digits_model, x, y, [AttackSpec("pgd", "linf", (8 / 255,), steps=4)], tmp_path, seed=1
    ).crafted == ["pgd-linf-8"]
    assert craft_and_store(
        digits_model,
        x,
        y,
        [AttackSpec("pgd", "linf", (8 / 255,), steps=4)],
        tmp_path,
        seed=1,
        indices=np.arange(16) + 5,
    ).crafted == ["pgd-linf-8"]
    assert craft_and_store(
        digits_model,
        x,
        y,
        [AttackSpec("pgd", "linf", (8 / 255,), steps=4)],
        tmp_path,
        seed=1,
        indices=np.arange(16) + 5,
        model_sha="another-model",
    ).crafted == ["pgd-linf-8"]
    # a truncated set is crafted again, not trusted (pgd-linf-8 was overwritten with steps=4 above)
    npz = tmp_path / "cw-l2-1.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    assert craft_and_store(digits_model, x, y, specs, tmp_path).crafted == ["pgd-linf-8", "cw-l2-1"]
    redo = craft_and_store(digits_model, x, y, specs, tmp_path)
    assert redo.crafted == [] and load(npz).count == 16


def test_load_folder_and_fingerprint(tmp_path, digits_model, eval_batch):
    x, y = eval_batch
    craft_and_store(digits_model, x[:8], y[:8], [AttackSpec("fgsm", "linf", (0.1, 0.2))], tmp_path)
    sets = load_folder(tmp_path)
    assert [s.id for s in sets] == ["fgsm-linf-25.5", "fgsm-linf-51"] and sets[0].x_adv is None
    assert sets[0].model_fingerprint == model_fingerprint(digits_model)
    with pytest.raises(EdgebenchError, match=f"expected {INDEX_NAME}"):
        load_folder(tmp_path / "empty")
