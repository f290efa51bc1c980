"""Datasets and the subject: offline data, disjoint splits, safe checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.subject.data import DataConfig, load_arrays, make_split
from edgebench.subject.sources import ModelConfig
from edgebench.subject.weights import load_state_dict
from edgebench.subject.zoo import load_subject


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
    with pytest.raises(EdgebenchError, match="does not fit model.arch lenet5"):
        load_subject(
            ModelConfig(arch="lenet5", checkpoint=str(ckpt)), DataConfig(name="mnist", eval_count=100, calib_count=10)
        )


def test_cifar10_batches_on_disk_load_without_unpickling_code(tmp_path: Path) -> None:
    """CIFAR-10's python batches (pickled dicts of numpy arrays) load; any other pickle is refused."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 20))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = batch
    x, y = load_arrays("cifar10", str(folder))
    assert x.shape == (40, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (40,)
    # the very pixels and labels written: each row is 3072 bytes, channel-major (R, G, B planes), /255
    order = ("data_batch_1", "test_batch")
    want_x = np.concatenate([written[n][b"data"] for n in order]).reshape(40, 3, 32, 32) / 255.0
    want_y = np.concatenate([written[n][b"labels"] for n in order])
    np.testing.assert_allclose(x, want_x, atol=1e-6)
    np.testing.assert_array_equal(y, want_y)

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            import os

            return (os.system, ("echo pwned",))

    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(EdgebenchError, match="refusing to unpickle"):
        load_arrays("cifar10", str(folder))


def test_separate_sources_split_disjoint_with_counts(digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """train/eval files: calibration is carved out of train, eval capped at eval_count, counts recorded."""
    from edgebench.subject.data import load_split

    x, y = digits
    np.savez(tmp_path / "train.npz", x=x[:1000], y=y[:1000])
    np.savez(tmp_path / "eval.npz", x=x[1000:1300], y=y[1000:1300])
    cfg = DataConfig(train=str(tmp_path / "train.npz"), eval=str(tmp_path / "eval.npz"), eval_count=200, calib_count=64)
    split = load_split(cfg, seed=1)
    assert (len(split.x_eval), len(split.x_calib), len(split.x_train)) == (200, 64, 936)
    assert split.origin["counts"] == {"eval": 200, "calib": 64, "train": 936} and split.origin["calib_from"] == "train"
    eval_rows = {r.tobytes() for r in x[1000:1300]}
    assert all(r.tobytes() in eval_rows for r in split.x_eval)  # eval only from the eval file
    assert not any(r.tobytes() in eval_rows for r in split.x_calib)
    assert cfg.label == "eval"
    # without a train source, calibration comes out of the eval file and nothing is left to train on
    only_eval = load_split(DataConfig(eval=str(tmp_path / "eval.npz"), eval_count=1000, calib_count=50))
    assert (len(only_eval.x_eval), len(only_eval.x_calib), len(only_eval.x_train)) == (250, 50, 0)
    with pytest.raises(EdgebenchError, match="separate sources need an 'eval' source"):
        DataConfig(train=str(tmp_path / "train.npz"))


def test_image_folder_resizes_the_shorter_side_and_center_crops(tmp_path: Path) -> None:
    """A wide image keeps its middle: shorter side to size*256/224, then a centered square."""
    from PIL import Image

    img = np.zeros((40, 120, 3), np.uint8)
    img[:, 40:80] = 255  # a white band in the middle third, black on both sides
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(img).save(tmp_path / "a" / "wide.png")
    Image.fromarray(img[:, ::-1].copy()).save(tmp_path / "b" / "wide.png")
    x, y = load_arrays("imagefolder", str(tmp_path), image_size=28)
    assert x.shape == (2, 3, 28, 28) and y.tolist() == [0, 1]
    # resized to 32 x 96, cropped to columns 34..61 of it: inside the band (32..64) => all white
    assert x[0, :, 4:-4, 2:-2].min() > 0.9


def test_every_source_converts_to_the_models_channels(tmp_path: Path) -> None:
    """data.channels: RGB to gray as PIL's convert("L"), gray replicated to RGB, for an ImageFolder
    (PIL converts while decoding) and for arrays; any other pair is one line."""
    from PIL import Image

    from edgebench.subject.data import load_split

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    for i, img in enumerate(rgb):
        (tmp_path / "tree" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "tree" / f"c{i % 2}" / f"{i}.png")
    tree = str(tmp_path / "tree")
    files = sorted((tmp_path / "tree").glob("*/*.png"))
    x, _ = load_arrays("imagefolder", tree, image_size=16, channels=1)
    want = np.stack([np.asarray(Image.open(f).convert("L")) for f in files])[:, None] / 255.0
    assert x.shape == (4, 1, 16, 16)
    np.testing.assert_allclose(x, want, atol=1e-6)  # the very pixels PIL gives (no resampling at 16)
    x3, _ = load_arrays("imagefolder", tree, image_size=16)  # as stored: RGB
    np.testing.assert_allclose(x3, np.stack([np.asarray(Image.open(f)) for f in files]).transpose(0, 3, 1, 2) / 255.0)
    # arrays: RGB -> gray with the same weights, gray -> RGB replicated
    np.savez(tmp_path / "rgb.npz", x=rgb, y=np.arange(4) % 2)
    g, _ = load_arrays("npz", str(tmp_path / "rgb.npz"), channels=1)
    luma = (rgb.astype(np.float32) / 255.0 * np.asarray([0.299, 0.587, 0.114], np.float32)).sum(-1)
    np.testing.assert_allclose(g[:, 0], luma, atol=1e-6)
    d3, _ = load_arrays("digits", channels=3)
    d1, _ = load_arrays("digits")
    assert d3.shape[1] == 3 and all(np.array_equal(d3[:, k], d1[:, 0]) for k in range(3))
    # the role sources take channels too, and the split carries them
    np.savez(tmp_path / "eval.npz", x=rgb, y=np.arange(4) % 2)
    split = load_split(
        DataConfig(eval={"path": str(tmp_path / "eval.npz"), "channels": 1}, eval_count=2, calib_count=1)
    )
    assert split.x_eval.shape[1:] == (1, 16, 16)
    # what cannot be converted
    np.savez(tmp_path / "rgba.npz", x=rng.integers(0, 256, (4, 4, 8, 8), dtype=np.uint8), y=np.arange(4) % 2)
    with pytest.raises(
        EdgebenchError, match=r"expected images with 1 or 3 channels to convert to data.channels = 1, found 4"
    ):
        load_arrays("npz", str(tmp_path / "rgba.npz"), channels=1)
    for bad in (2, 4, 0):
        with pytest.raises(
            EdgebenchError,
            match=rf"data.channels: expected null \(as stored\), 1 \(grayscale\) or 3 \(RGB\), found {bad}",
        ):
            DataConfig(name="digits", channels=bad)
    with pytest.raises(EdgebenchError, match=r"data.eval.channels: expected null .* found 2"):
        DataConfig(eval={"path": str(tmp_path / "eval.npz"), "channels": 2})


def test_image_folder_sizes_are_read_from_the_headers(tmp_path: Path) -> None:
    """What `init` reads the image size from: every file's (width, height), counted."""
    from PIL import Image

    from edgebench.subject.data import image_folder_sizes

    for cls, sizes in (("a", [(32, 32), (32, 32)]), ("b", [(40, 30)])):
        (tmp_path / cls).mkdir()
        for i, size in enumerate(sizes):
            Image.new("RGB", size).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    assert image_folder_sizes(tmp_path) == {(32, 32): 2, (40, 30): 1}
