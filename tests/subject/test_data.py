"""Datasets and the subject: offline data, disjoint splits, safe checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.subject.data import load_arrays, make_split
from edgebench.subject.zoo import DataConfig, ModelConfig, load_state_dict, load_subject


def test_mnist_subset_ships_offline_in_0_1() -> None:
    x, y = load_arrays("mnist")
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    assert np.bincount(y).tolist() == [500] * 10


def test_split_is_disjoint_and_seeded(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    a = make_split(x, y, "digits", eval_count=300, calib_count=100, seed=3)
    b = make_split(x, y, "digits", eval_count=300, calib_count=100, seed=3)
    np.testing.assert_array_equal(a.x_eval, b.x_eval)
    rows = lambda arr: {r.tobytes() for r in arr}  # noqa: E731
    assert len(a.x_eval) == 300 and len(a.x_calib) == 100 and len(a.x_train) == len(x) - 400
    # digits has a few duplicate images; identical rows may appear in two splits, nothing else
    assert len(rows(a.x_eval) & rows(a.x_calib)) <= 2
    with pytest.raises(EdgebenchError, match="must be below the 1797 images available"):
        make_split(x, y, "digits", eval_count=1700, calib_count=100)


def test_npz_data_validation(tmp_path: Path) -> None:
    ok = tmp_path / "ok.npz"
    np.savez(ok, x=(np.random.rand(10, 8, 8, 3) * 255).astype(np.uint8), y=np.arange(10) % 2)
    x, y = load_arrays("npz", str(ok))
    assert x.shape == (10, 3, 8, 8) and x.max() <= 1.0 and y.dtype == np.int64
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 8, 8)))
    with pytest.raises(EdgebenchError, match=r"expected arrays 'x' \(images\) and 'y' \(labels\), found \['images'\]"):
        load_arrays("npz", str(bad))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((2, 3)), y=np.zeros(2))
    with pytest.raises(EdgebenchError, match=r"expected images shaped .* found \(2, 3\)"):
        load_arrays("npz", str(wrong))
    with pytest.raises(EdgebenchError, match="unknown dataset 'imagenet'"):
        load_arrays("imagenet")


def test_checkpoint_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    import torch

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(EdgebenchError, match="not a PyTorch checkpoint"):
        load_state_dict(junk)
    pickled = tmp_path / "module.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, pickled)  # a pickled module, not a state_dict
    with pytest.raises(EdgebenchError, match="refused to load: it holds more than tensors"):
        load_state_dict(pickled)
    with pytest.raises(EdgebenchError, match="checkpoint not found"):
        load_state_dict(tmp_path / "missing.pt")


def test_subject_trains_once_then_loads_from_cache(tmp_path: Path) -> None:
    cfg = ModelConfig(arch="resnet8", train_epochs=1)
    data = DataConfig(name="digits", eval_count=300, calib_count=100)
    first = load_subject(cfg, data)
    assert first.info["weights"].startswith("trained now")
    assert first.info["base_accuracy_torch"] > 0.5  # one epoch on digits: well above chance
    second = load_subject(cfg, data)
    assert second.info["weights"].startswith("cached")
    assert second.info["base_accuracy_torch"] == first.info["base_accuracy_torch"]
    # a state_dict of the wrong architecture is named as such
    import torch

    ckpt = tmp_path / "lenet.pt"
    torch.save(first.model.state_dict(), ckpt)
    with pytest.raises(EdgebenchError, match="does not fit architecture 'lenet5'"):
        load_subject(ModelConfig(arch="lenet5", checkpoint=str(ckpt)), DataConfig(name="mnist", eval_count=100, calib_count=10))
