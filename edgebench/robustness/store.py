"""Adversarial sets on disk: float32 ``.npz`` + a JSON manifest per set, and a folder index.

Layout of an attack folder::

    attacks/
      attacks.json          # index: {"schema": "edgebench.attacks/1", "sets": [summary, ...]}
      pgd-linf-8.npz        # x (adversarial inputs, float32 NCHW), labels, indices,
                            # base_predictions, base_clean_predictions[, distances]
      pgd-linf-8.json       # manifest: attack, norm, eps, params, versions, sha256 of the .npz,
                            # and the "match" block that decides whether a re-run may reuse it

Inputs are never stored as 8-bit images: quantizing to 1/255 steps would erase most of an
8/255 perturbation. The array the agent's predict job reads is ``x``. Every file is written
atomically (the ``.npz`` first, the manifest last), so a manifest only exists for a complete set.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError
from edgebench.robustness.advset import AdversarialSet, array_sha256
from edgebench.robustness.attacks import AttackSpec, CraftPlan, check_inputs, craft, set_id
from edgebench.util.io import atomic_write_bytes, atomic_write_json, read_json, sha256_file

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SET_SCHEMA = "edgebench.advset/1"
INDEX_SCHEMA = "edgebench.attacks/1"
INDEX_NAME = "attacks.json"
_INT_ARRAYS = ("labels", "indices", "base_predictions", "base_clean_predictions")


def inputs_sha256(x: np.ndarray) -> str:
    """Content hash of the clean inputs (dtype and shape included)."""
    h = hashlib.sha256(f"{x.dtype}:{x.shape}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the model's class name and state dict (names, dtypes, shapes, values)."""
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    for name, value in sorted(model.state_dict().items()):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
        else:  # packed params of quantized modules and other extra state
            h.update(f"{name}:{value!r}".encode())
    return h.hexdigest()


# ---- save / load ----------------------------------------------------------------------------
def save(adv: AdversarialSet, folder: str | Path) -> Path:
    """Write ``<id>.npz`` and ``<id>.json`` into *folder* atomically; return the ``.npz`` path."""
    if adv.x_adv is None:
        raise EdgebenchError(f"adversarial set {adv.id}: cannot save a set loaded without its inputs")
    _validate_arrays(
        adv.id, adv.x_adv, adv.labels, adv.indices, adv.base_predictions, adv.base_clean_predictions, adv.distances
    )
    out = Path(folder)
    arrays: dict[str, Any] = {  # np.savez keyword arguments
        "x": np.ascontiguousarray(adv.x_adv, dtype=np.float32),
        "labels": adv.labels.astype(np.int64),
        "indices": adv.indices.astype(np.int64),
        "base_predictions": adv.base_predictions.astype(np.int64),
        "base_clean_predictions": adv.base_clean_predictions.astype(np.int64),
    }
    if adv.distances is not None:
        arrays["distances"] = adv.distances.astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = atomic_write_bytes(out / f"{adv.id}.npz", buf.getvalue())
    manifest = {
        "schema": SET_SCHEMA,
        **adv.summary(),
        "shape": list(adv.x_adv.shape),
        "dtype": "float32",
        "seed": int(adv.seed),
        "versions": dict(adv.versions),
        "sha256": sha256_file(npz),
        "match": adv.match(),
    }
    atomic_write_json(out / f"{adv.id}.json", _jsonable(manifest))
    log.info("saved adversarial set %s (%d samples) to %s", adv.id, adv.count, npz)
    return npz


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _validate_arrays(
    sid: str,
    x: np.ndarray | None,
    labels: np.ndarray,
    indices: np.ndarray,
    preds: np.ndarray,
    clean: np.ndarray,
    dist: np.ndarray | None,
    n: int | None = None,
) -> None:
    if n is None:
        n = len(x) if x is not None and x.ndim >= 1 else len(labels)
    if x is not None:
        if x.dtype != np.float32:
            raise EdgebenchError(f"adversarial set {sid}: expected x as float32, found {x.dtype}")
        if x.ndim < 2 or len(x) != n:
            raise EdgebenchError(f"adversarial set {sid}: expected x of shape ({n}, C, H, W), found {x.shape}")
    for name, a in (
        ("labels", labels),
        ("indices", indices),
        ("base_predictions", preds),
        ("base_clean_predictions", clean),
    ):
        if a.ndim != 1 or len(a) != n:
            raise EdgebenchError(f"adversarial set {sid}: expected {name} of shape ({n},), found {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise EdgebenchError(f"adversarial set {sid}: expected {name} as integers, found {a.dtype}")
    if dist is not None and (dist.shape != (n,) or not np.issubdtype(dist.dtype, np.floating)):
        raise EdgebenchError(
            f"adversarial set {sid}: expected distances as float ({n},), found {dist.dtype} {dist.shape}"
        )


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".npz", ".json"):
        return p.with_suffix(".npz"), p.with_suffix(".json")
    return p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")


def load(path: str | Path, *, inputs: bool = True, verify: bool = True) -> AdversarialSet:
    """Load a set from its ``.npz`` or ``.json`` path (or the path without suffix).

    Checks that both files exist, that the ``.npz`` hash matches the manifest (*verify*), and
    the arrays' dtypes and shapes. ``inputs=False`` skips reading ``x`` (predictions only).
    """
    npz, js = _paths(path)
    if not npz.is_file():
        raise EdgebenchError(f"adversarial set not found: expected a file at {npz}")
    manifest = read_json(js, "adversarial set manifest")
    if not isinstance(manifest, dict) or manifest.get("schema") != SET_SCHEMA:
        raise EdgebenchError(
            f"{js}: expected schema {SET_SCHEMA!r}, found {manifest.get('schema') if isinstance(manifest, dict) else type(manifest).__name__!r}"
        )
    if verify and manifest.get("sha256") != sha256_file(npz):
        raise EdgebenchError(
            f"{npz}: content does not match the sha256 in {js.name} (file changed or truncated; craft it again)"
        )
    sid = str(manifest.get("id", npz.stem))
    try:
        with np.load(npz, allow_pickle=False) as z:
            missing = [k for k in ("x", *_INT_ARRAYS) if k not in z.files]
            if missing:
                raise EdgebenchError(f"adversarial set {sid}: {npz} lacks array(s) {missing}; found {sorted(z.files)}")
            arr = {k: z[k] for k in _INT_ARRAYS}
            dist = z["distances"] if "distances" in z.files else None
            x = z["x"] if inputs else None
            x_meta = (x.dtype, x.shape) if x is not None else (z["x"].dtype, z["x"].shape)
    except EdgebenchError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), OSError
        raise EdgebenchError(f"adversarial set {sid}: {npz} is not a readable .npz file: {exc}") from None
    if x_meta[0] != np.float32:
        raise EdgebenchError(f"adversarial set {sid}: expected x as float32, found {x_meta[0]}")
    expected_shape = tuple(manifest.get("shape", x_meta[1]))
    if tuple(x_meta[1]) != expected_shape:
        raise EdgebenchError(
            f"adversarial set {sid}: expected x of shape {expected_shape} (manifest), found {tuple(x_meta[1])}"
        )
    if len(x_meta[1]) < 2:
        raise EdgebenchError(f"adversarial set {sid}: expected x of shape (N, C, H, W), found {tuple(x_meta[1])}")
    _validate_arrays(
        sid,
        x,
        arr["labels"],
        arr["indices"],
        arr["base_predictions"],
        arr["base_clean_predictions"],
        dist,
        n=int(x_meta[1][0]),
    )
    match = manifest.get("match", {})
    return AdversarialSet(
        id=sid,
        attack=str(manifest.get("attack")),
        norm=str(manifest.get("norm")),
        eps=manifest.get("eps"),
        x_adv=x,
        labels=arr["labels"].astype(np.int64),
        indices=arr["indices"].astype(np.int64),
        base_predictions=arr["base_predictions"].astype(np.int64),
        base_clean_predictions=arr["base_clean_predictions"].astype(np.int64),
        distances=dist,
        params=dict(manifest.get("params", {})),
        seed=int(manifest.get("seed", 0)),
        versions=dict(manifest.get("versions", {})),
        model_fingerprint=match.get("model_fingerprint"),
        inputs_sha256=match.get("inputs_sha256"),
    )


# ---- folder index ---------------------------------------------------------------------------
def read_index(folder: str | Path) -> list[dict[str, Any]]:
    """The set summaries listed in ``<folder>/attacks.json`` (``[]`` if there is none yet)."""
    p = Path(folder) / INDEX_NAME
    if not p.is_file():
        return []
    data = read_json(p, "attack index")
    if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA or not isinstance(data.get("sets"), list):
        raise EdgebenchError(f"{p}: expected an attack index with schema {INDEX_SCHEMA!r} and a 'sets' list")
    return list(data["sets"])


def write_index(folder: str | Path, summaries: Sequence[dict[str, Any]]) -> Path:
    return atomic_write_json(Path(folder) / INDEX_NAME, {"schema": INDEX_SCHEMA, "sets": _jsonable(list(summaries))})


def _update_index(folder: Path, summary: dict[str, Any]) -> None:
    rows = [r for r in read_index(folder) if r.get("id") != summary["id"]]
    rows.append(summary)
    write_index(folder, rows)


def load_folder(folder: str | Path, *, inputs: bool = False) -> list[AdversarialSet]:
    """Every set listed in ``attacks.json``, in index order (without inputs by default)."""
    rows = read_index(folder)
    if not rows and not (Path(folder) / INDEX_NAME).is_file():
        raise EdgebenchError(f"attack folder {folder}: expected {INDEX_NAME}, found none (run the attack stage first)")
    return [load(Path(folder) / r["path"], inputs=inputs) for r in rows]


# ---- resumable crafting ---------------------------------------------------------------------
@dataclass(frozen=True)
class CraftReport:
    """What :func:`craft_and_store` did: ``sets`` are summaries in spec order."""

    folder: Path
    sets: list[dict[str, Any]]
    crafted: list[str]
    skipped: list[str]


def _stored_matches(folder: Path, sid: str, expected: dict[str, Any]) -> dict[str, Any] | None:
    npz, js = folder / f"{sid}.npz", folder / f"{sid}.json"
    if not (npz.is_file() and js.is_file()):
        return None
    try:
        manifest = read_json(js, "adversarial set manifest")
    except EdgebenchError:
        return None
    if not isinstance(manifest, dict) or manifest.get("schema") != SET_SCHEMA:
        return None
    if _jsonable(manifest.get("match")) != _jsonable(expected):
        log.info("adversarial set %s: stored manifest differs (spec, samples or model changed); crafting again", sid)
        return None
    if manifest.get("sha256") != sha256_file(npz):
        log.warning("adversarial set %s: %s does not match its manifest hash; crafting again", sid, npz)
        return None
    return manifest


class _frozen:
    """The model's parameters without gradients while an attack runs: the attacks need the
    input's gradient only, and foolbox's ``loss.backward()`` would also compute (and accumulate
    in ``.grad``) every weight's, about a third more backward work (resnet18 at 224, 32 images,
    3 PGD sets: 51 s against 36 s). Restored afterwards."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)


def craft_and_store(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    specs: Sequence[AttackSpec],
    folder: str | Path,
    *,
    indices: np.ndarray | None = None,
    model_sha: str | None = None,
    batch_size: int = 128,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> CraftReport:
    """Craft every set of *specs* into *folder*, skipping sets already stored for the same
    spec parameters, epsilon, seed, samples (indices and input hash) and model.

    *model_sha* identifies the model (e.g. the checkpoint's sha256); default: a hash of its
    state dict (:func:`model_fingerprint`). *on_progress(spec_label, done, total)* reports
    samples processed per spec. Each set is saved as soon as it is crafted, and
    ``attacks.json`` is rewritten after each, so an interrupted run keeps what it finished.
    """
    out = Path(folder)
    check_inputs(x, y)
    indices = np.arange(len(x), dtype=np.int64) if indices is None else np.asarray(indices)
    if indices.shape != (len(x),) or not np.issubdtype(indices.dtype, np.integer):
        raise EdgebenchError(
            f"craft_and_store: indices must be {len(x)} integers (one per input), found {indices.dtype} {indices.shape}"
        )
    indices = indices.astype(np.int64)
    fingerprint = model_sha or model_fingerprint(model)
    x_sha = inputs_sha256(x)
    idx_sha = array_sha256(indices)
    summaries: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    crafted: list[str] = []
    skipped: list[str] = []
    for spec in specs:
        if not isinstance(spec, AttackSpec):
            raise EdgebenchError(f"craft_and_store: expected AttackSpec items, found {type(spec).__name__}")
        base_match = {
            "attack": spec.name,
            "norm": spec.norm,
            "params": spec.params(),
            "seed": int(seed),
            "count": int(len(x)),
            "indices_sha256": idx_sha,
            "inputs_sha256": x_sha,
            "model_fingerprint": fingerprint,
        }
        todo_eps: list[float] = []
        include_min = False
        wanted: list[tuple[str, float | None]] = [(set_id(spec.name, spec.norm, None), None)] if spec.minimal else []
        wanted += [(set_id(spec.name, spec.norm, e), e) for e in spec.epsilons]
        for sid, eps in wanted:
            order.append(sid)
            found = _stored_matches(out, sid, {**base_match, "eps": eps})
            if found is not None:
                summaries[sid] = {
                    k: found[k]
                    for k in (
                        "id",
                        "attack",
                        "norm",
                        "eps",
                        "count",
                        "base_accuracy",
                        "base_clean_accuracy",
                        "path",
                        "params",
                    )
                    if k in found
                }
                for k in ("median_distance", "success_rate"):
                    if k in found:
                        summaries[sid][k] = found[k]
                skipped.append(sid)
            elif eps is None:
                include_min = True
            else:
                todo_eps.append(eps)
        if not include_min and not todo_eps:
            continue
        label = f"{spec.name}-{spec.norm}"
        progress = (lambda d, t, _l=label: on_progress(_l, d, t)) if on_progress is not None else None
        # a minimal attack's thresholded sets come from the same run, so the run happens once
        plan = CraftPlan(tuple(todo_eps), include_min)
        with _frozen(model):
            advs = craft(model, x, y, spec, batch_size, seed, progress, indices=indices, plan=plan)
        for adv in advs:
            adv.model_fingerprint = fingerprint
            adv.inputs_sha256 = x_sha
            save(adv, out)
            summaries[adv.id] = adv.summary()
            _update_index(out, summaries[adv.id])
            crafted.append(adv.id)
    # the index lists exactly this run's sets, in spec order
    write_index(out, [summaries[s] for s in order])
    return CraftReport(folder=out, sets=[summaries[s] for s in order], crafted=crafted, skipped=skipped)
