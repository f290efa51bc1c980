"""ONNX files of any size: one file below protobuf's 2 GB limit, a ``.onnx`` plus one external
data file above it.

A protobuf message cannot be serialized past 2 GB, so a model that big (ViT-H/14, RegNetY-128GF
in fp32, a user's export with ``model.onnx.data`` beside it) is written as the ONNX
specification's external data: the graph in ``NAME.onnx``, every tensor over 1 KiB in
``NAME.onnx.data`` in the same folder, referenced by that relative name. Every stage writes,
copies, hashes and measures ONNX files through these functions, so a big model is handled like
a small one: ONNX Runtime, ``onnx.checker`` and ``onnx.load`` read the pair from the path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError, first_line

if TYPE_CHECKING:
    import onnx

#: Largest serialized model written as one file (protobuf refuses 2 GiB; margin for the header).
SINGLE_FILE_LIMIT = 2**31 - 2**24


def fits_one_file(model: onnx.ModelProto) -> bool:
    """Whether *model* serializes to one file (protobuf cannot serialize 2 GB or more)."""
    try:
        return model.ByteSize() <= SINGLE_FILE_LIMIT
    except Exception:  # noqa: BLE001 - protobuf's EncodeError: ByteSize itself refuses a message past 2 GB
        return False


_ASIDE = "edgebench-aside:"


def weights_aside(
    model: onnx.ModelProto, min_bytes: int = 1024, keep: bool = True
) -> tuple[onnx.ModelProto, dict[str, bytes]]:
    """A copy of *model* whose tensors of *min_bytes* or more hold no bytes (marked as external
    data under a key), and those bytes by key (none unless *keep*): what onnx's shape inference
    and version converter (which serialize the model they are given) can take past 2 GB.
    :func:`weights_back` returns the bytes to a model made from the copy. *model* is left as it
    was; the bytes move out of it and back one tensor at a time, so no second copy of the
    weights is held unless *keep*."""
    import onnx

    every = list(_tensors(model.graph))
    big = [k for k, t in enumerate(every) if t.HasField("raw_data") and len(t.raw_data) >= min_bytes]
    moved: dict[str, bytes] = {}
    for k in big:
        moved[f"{_ASIDE}{k}"] = every[k].raw_data
        every[k].ClearField("raw_data")
    try:
        light = onnx.ModelProto()
        light.CopyFrom(model)
    finally:
        for k in big:
            every[k].raw_data = moved[f"{_ASIDE}{k}"] if keep else moved.pop(f"{_ASIDE}{k}")
    light_tensors = list(_tensors(light.graph))
    for k in big:
        t = light_tensors[k]
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        t.external_data.add(key="location", value=f"{_ASIDE}{k}")
    return light, moved


def weights_back(model: onnx.ModelProto, aside: dict[str, bytes]) -> None:
    """Return the bytes :func:`weights_aside` set aside to the tensors of *model* that name them."""
    import onnx

    for t in _tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}.get("location", "")
            if where in aside:
                del t.external_data[:]
                t.data_location = onnx.TensorProto.DEFAULT
                t.raw_data = aside[where]


def infer_shapes(model: onnx.ModelProto, data_prop: bool = False, keep_weights: bool = False) -> onnx.ModelProto:
    """onnx's shape inference at any size. Past the single-file limit it runs on
    :func:`weights_aside`'s copy, and returns it without the weights' bytes (the shapes are what
    most callers read) unless *keep_weights*."""
    import onnx

    if fits_one_file(model):
        return onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
    light, aside = weights_aside(model, keep=keep_weights)
    inferred = onnx.shape_inference.infer_shapes(light, data_prop=data_prop)
    if keep_weights:
        weights_back(inferred, aside)
    return inferred


def convert_version(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """onnx's version converter at any size (past the single-file limit on a copy without the
    weights' bytes, which are returned to the converted model)."""
    import onnx

    if fits_one_file(model):
        return onnx.version_converter.convert_version(model, opset)
    light, aside = weights_aside(model)
    converted = onnx.version_converter.convert_version(light, opset)
    weights_back(converted, aside)
    return converted


def load(path: str | os.PathLike[str], external_data: bool = True) -> onnx.ModelProto:
    """``onnx.load`` with one-line errors naming the file: missing, unreadable, or its external
    data file missing. ``external_data=False`` reads the graph only (the weights' bytes stay in
    their data file: what reading names, shapes and structure needs)."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    p = Path(path)
    if not p.is_file():
        raise EdgebenchError(f"ONNX model not found: expected a file at {p}")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - DecodeError, ValueError, ... on a file that is not ONNX
        raise EdgebenchError(f"{p} is not a readable ONNX model: {first_line(exc)}") from None
    locations = _locations(model)
    if external_data and locations:
        missing = [loc for loc in locations if not (p.parent / loc).is_file()]
        if missing:
            raise EdgebenchError(
                f"{p.name} keeps its weights in {', '.join(missing)}, expected beside it in {p.parent}; found no such file"
            )
        try:
            load_external_data_for_model(model, str(p.parent))
        except Exception as exc:  # noqa: BLE001 - a truncated or unreadable data file
            raise EdgebenchError(f"{p} is not a readable ONNX model: {first_line(exc)}") from None
    return model


def data_files(path: str | os.PathLike[str]) -> list[Path]:
    """The external data files the ONNX model at *path* reads (none for a single-file model),
    in the order the graph first names them."""
    p = Path(path)
    return [p.parent / loc for loc in _locations(load(p, external_data=False))]


def _locations(model: onnx.ModelProto) -> list[str]:
    """The external data locations *model*'s tensors name, in the order the graph first names them."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    found: dict[str, None] = {}
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            found[ExternalDataInfo(tensor).location] = None
    return list(found)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, node attributes (``Constant`` values), subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def files(path: str | os.PathLike[str]) -> list[Path]:
    """The ONNX file at *path* and the external data files it reads: what a copy must carry.
    Where ``onnx`` is not installed (the agent on a bare device) the graph cannot be read: the
    files are the ONNX file and, when present, ``NAME.onnx.data`` (the name :func:`save` uses)."""
    p = Path(path)
    try:
        import onnx  # noqa: F401 - only whether it is there
    except ImportError:
        sibling = p.with_name(p.name + ".data")
        return [p, sibling] if sibling.is_file() else [p]
    return [p, *data_files(p)]


def size_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of the model: its ONNX file and its external data together."""
    return sum(f.stat().st_size for f in files(path))


def sha256(path: str | os.PathLike[str], file_sha: Callable[[Path], str] | None = None) -> str:
    """Hex sha256 of the ONNX file's bytes; of each file's name and bytes in turn when the model
    keeps external data (the same weights under another data file name are another artifact:
    the graph names its data file). *file_sha* hashes one file (default: read it; the SSH
    deployer passes its cache of hashes, so a 2 GB data file is read once)."""
    from edgebench.util.io import sha256_file

    hash_file = file_sha or sha256_file
    parts = files(path)
    if len(parts) == 1:
        return hash_file(parts[0])
    digest = hashlib.sha256()
    for f in parts:
        if not f.is_file():
            raise EdgebenchError(f"ONNX model {path}: its external data file {f.name} is missing (expected beside it)")
        digest.update(f.name.encode() + b"\0" + bytes.fromhex(hash_file(f)))
    return digest.hexdigest()


def save(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write *model* to *path* atomically: one file when it fits, otherwise ``NAME.onnx`` and
    ``NAME.onnx.data`` (the data file written first, so the graph never names a missing file).
    *model* itself is left as it was."""
    import onnx

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fits_one_file(model):
        from edgebench.util.io import atomic_write_bytes

        atomic_write_bytes(target, model.SerializeToString())
        remove_stale_data(target)
        return target
    from onnx.external_data_helper import load_external_data_for_model

    from edgebench.util.io import umask

    data_name = target.name + ".data"
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        # onnx moves each tensor's bytes out of the message into the file as it writes (no copy of
        # a model this big is made); they are read back into it below
        try:
            onnx.save_model(
                model,
                str(staged),
                save_as_external_data=True,
                location=data_name,
                size_threshold=1024,
                convert_attribute=True,  # weights held in Constant nodes too
            )
        except Exception as exc:  # noqa: BLE001 - a full disk, an unwritable folder
            raise EdgebenchError(
                f"could not write the ONNX model {target} with external data: {first_line(exc)}"
            ) from None
        finally:
            load_external_data_for_model(model, tmp)  # *model* as it was: its bytes back in the message
        for f in (staged, Path(tmp) / data_name):  # the mode a plain open() gives (onnx writes 0600)
            os.chmod(f, 0o666 & ~umask())
        os.replace(Path(tmp) / data_name, target.parent / data_name)
        os.replace(staged, target)
    return target


def remove_stale_data(target: Path) -> None:
    """A single-file model written over an external-data one: its old data file is not read any more."""
    stale = target.with_name(target.name + ".data")
    if stale.is_file():
        stale.unlink()


def copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy the model at *src* to *dst* atomically, external data included (renamed to *dst*'s
    ``NAME.onnx.data`` and the graph pointed at it)."""
    import onnx

    source, target = Path(src), Path(dst)
    if not data_files(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        remove_stale_data(target)
        return target
    return save(onnx.load(str(source)), target)


def remove(path: str | os.PathLike[str]) -> None:
    """Delete the model at *path* and its external data (missing files are fine)."""
    p = Path(path)
    if p.is_file():
        for f in data_files(p):
            f.unlink(missing_ok=True)
        p.unlink()


__all__ = [
    "SINGLE_FILE_LIMIT",
    "copy",
    "data_files",
    "files",
    "fits_one_file",
    "remove",
    "remove_stale_data",
    "save",
    "sha256",
    "size_bytes",
]
