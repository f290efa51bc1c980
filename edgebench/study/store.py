"""The run folder: one JSON file per finished measurement, written atomically, and
``results.json`` assembled from them. A re-run of the same study finds what is done and
skips it; nothing already measured is ever rewritten or lost.

Layout::

    reports/<run-id>/
      study.json                                  the validated config of this run
      subject.json                                the base model and data description
      artifacts/<candidate>.onnx + .json          artifact + manifest (recipe, sha256, checks)
      attacks/<set-id>.npz + .json, attacks.json  adversarial sets crafted on the base model
      data/eval.npz, data/profile.npz             evaluation and profiling inputs
      measurements/<candidate>/<device>/<kind>.json   profile.json, replay.json
      results.json, report.md, report.html
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.errors import EdgebenchError
from edgebench.util.io import atomic_write_bytes, atomic_write_json, read_json

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.+\-]")


def safe_name(name: str) -> str:
    """A file-system-safe version of a candidate or device name."""
    return _SAFE.sub("_", name)


def _without(value: Any, key: str, resumable: set[str]) -> Any:
    """*value* (the study's *key* section) without its sub-keys listed in *resumable* as
    ``key.sub``: a change there alone keeps the folder's measurements valid."""
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if f"{key}.{k}" not in resumable}


class RunStore:
    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir)

    # ---- paths -----------------------------------------------------------------------------
    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def artifact_path(self, candidate: str) -> Path:
        return self.root / "artifacts" / f"{safe_name(candidate)}.onnx"

    def manifest_path(self, candidate: str) -> Path:
        return self.root / "artifacts" / f"{safe_name(candidate)}.json"

    def data_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.npz"

    @property
    def attacks_dir(self) -> Path:
        return self.root / "attacks"

    def measurement_path(self, candidate: str, device: str, kind: str) -> Path:
        return self.root / "measurements" / safe_name(candidate) / safe_name(device) / f"{kind}.json"

    # ---- study identity ------------------------------------------------------------------------
    # Changing these keeps earlier measurements valid: a new device is measured, the others kept;
    # new budgets only change verdicts. Any other change (model, data, candidates, attacks,
    # profile settings) would mix incomparable numbers into one folder.
    # reductions: notes, not settings; host: where host work runs, not what it computes. A
    # ``section.key`` entry names one key of a section: adaptive sampling adds images, never
    # changes the ones measured, so it may be turned on (or its cap raised) for a folder.
    ADAPTIVE_KEYS: tuple[str, ...] = ("attacks.adaptive", "attacks.adaptive_max_images")
    RESUMABLE_CHANGES: tuple[str, ...] = ("devices", "budgets", "reductions", "host", *ADAPTIVE_KEYS)

    # What the subject stage writes before anything is built or measured: made from the study,
    # cheap to make again. A folder holding nothing else measured nothing and built nothing (an
    # attempt that stopped at a missing checkpoint or a wrong data path), so a corrected study
    # may take it over; these files, made from the old study, are removed first.
    PREPARED: tuple[str, ...] = ("subject.json", "data")

    def bind_study(self, study: dict, reread: Callable[[dict], dict] | None = None) -> None:
        """Record the study; refuse to mix measurements of a different study into this folder.
        A folder whose earlier study made nothing yet (see :data:`PREPARED`) takes the new one.
        *reread* reads the stored record with the current schema, so that a key added since the
        folder was made, at the default that does what the older edgebench did, is no change."""
        study = json.loads(json.dumps(study))  # tuples -> lists, as stored
        path = self.root / "study.json"
        if path.is_file():
            old = read_json(path, "study record")
            if reread is not None:
                try:
                    old = json.loads(json.dumps(reread(old)))
                except Exception as exc:  # noqa: BLE001 - a record the current schema rejects is compared as stored
                    log.debug("%s: the stored study does not read with this edgebench (%s)", self.root, exc)
            changed = sorted(k for k in set(old) | set(study) if old.get(k) != study.get(k))
            resumable = set(self.RESUMABLE_CHANGES)
            blocking = [
                k
                for k in changed
                if k not in resumable and _without(old.get(k), k, resumable) != _without(study.get(k), k, resumable)
            ]
            made = self.made()
            if blocking and made:
                raise EdgebenchError(
                    f"{self.root} holds a different study (changed: {blocking}) and what it made "
                    f"({', '.join(made)}); use another --out folder, or delete the folder to start over"
                )
            if blocking:
                log.info("%s: the earlier study (changed: %s) made nothing; starting over", self.root, blocking)
                self._forget_prepared()
            elif changed:
                log.info("study changed only in %s: resuming", changed)
            if changed:
                atomic_write_json(path, study)
        else:
            atomic_write_json(path, study)

    def made(self) -> list[str]:
        """What this folder holds beyond the study record and the prepared subject: the top-level
        names (``artifacts``, ``attacks``, ``measurements``, ``results.json``, ...), sorted."""
        keep = {"study.json", *self.PREPARED}
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name not in keep and not p.name.startswith("."))

    def _forget_prepared(self) -> None:
        """Remove the subject files an earlier study prepared (they describe its model and data)."""
        import shutil

        for name in self.PREPARED:
            target = self.root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    # ---- measurements ----------------------------------------------------------------------------
    def has(self, candidate: str, device: str, kind: str) -> bool:
        """Whether the measurement is done: its file exists (files are only ever written whole,
        by an atomic rename, so existing means complete; nothing is parsed here)."""
        return self.measurement_path(candidate, device, kind).is_file()

    def save(self, candidate: str, device: str, kind: str, data: dict) -> Path:
        return atomic_write_json(self.measurement_path(candidate, device, kind), data)

    def load(self, candidate: str, device: str, kind: str) -> dict | None:
        """The measurement, or ``None`` when not measured; a file damaged by hand is a one-line
        error that names it (delete it and re-run to measure again)."""
        path = self.measurement_path(candidate, device, kind)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            raise EdgebenchError(
                f"{path}: expected a measurement JSON, found an unreadable file ({exc.__class__.__name__}); "
                "delete it and re-run to measure it again"
            ) from None
        if not isinstance(data, dict):
            raise EdgebenchError(f"{path}: expected a JSON object, found {type(data).__name__}")
        return data

    # ---- arrays ---------------------------------------------------------------------------------
    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        buf = io.BytesIO()
        named: dict[str, Any] = dict(arrays)
        np.savez(buf, **named)
        return atomic_write_bytes(self.data_path(name), buf.getvalue())

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        path = self.data_path(name)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}

    def write_json(self, rel: str, obj: Any) -> Path:
        return atomic_write_json(self.root / rel, obj)

    def read_json(self, rel: str) -> Any | None:
        path = self.root / rel
        return read_json(path) if path.is_file() else None
