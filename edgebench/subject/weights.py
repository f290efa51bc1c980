"""The files a model's weights come from: state_dicts loaded without unpickling arbitrary
objects, why one does not fit a module, and a file's record (role, path, sha256) for the report.

Used by every model source that takes a ``checkpoint`` (:mod:`edgebench.subject.sources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError, first_line
from edgebench.util.io import sha256_file


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict:
    """A state_dict from *path*, never unpickling arbitrary objects unless the user opted in."""
    import pickle

    import torch

    if not path.is_file():
        raise EdgebenchError(f"checkpoint not found: expected a file at {path}")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise EdgebenchError(
            f"{path}: not a PyTorch checkpoint (expected a file written by torch.save, found other bytes)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        found = next(
            (ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "objects other than tensors"
        )
        raise EdgebenchError(
            f"{path}: refused to load: it holds more than tensors ({found[:160]}); "
            "save a state_dict, or set model.allow_pickle: true for a file you trust"
        ) from None
    except Exception as exc:  # noqa: BLE001 - zip/format errors of all kinds
        raise EdgebenchError(
            f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {first_line(exc, 160)})"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise EdgebenchError(f"{path}: expected a state_dict (parameter name -> tensor), found {type(obj).__name__}")
    return obj


def mismatch(module: Any, state: dict, exc: BaseException) -> str:
    """Why a state_dict does not fit *module*, in a few words: missing, unexpected, other shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape ({shapes[0]})")
    if missing:
        parts.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} unexpected ({', '.join(extra[:3])})")
    return "; ".join(parts) if parts else first_line(exc)


def file_record(path: Path, role: str) -> dict:
    """A file the model came from, as the report names it: role, path and sha256."""
    return {"role": role, "path": str(path), "sha256": sha256_file(path)}
