"""The white-box setting: adversarial sets crafted on each candidate itself, replayed through
that candidate's deployed artifact on every device.

The attacker's model of a candidate is rebuilt from its deployed ONNX artifact
(:func:`edgebench.robustness.fakequant.surrogate_from_onnx`): the fp32 graph for fp32
candidates (the same function as the pruned PyTorch module), a straight-through fake-quant
model for INT8 QDQ candidates. Its agreement with ONNX Runtime is measured on the evaluation
set and stored next to the sets.

Layout (inside the run folder)::

    attacks/whitebox/<candidate>/attacks.json, <set-id>.npz/.json   as for the base's sets
    attacks/whitebox/<candidate>/surrogate.json   kind, agreement, predictions on eval
    measurements/<candidate>/<device>/replay-whitebox.json (+ logits-whitebox.npz)

Besides the study's suite, each candidate gets one sanity set: PGD L-inf at eps = 1 (the whole
input range, :data:`UNBOUNDED_ID`), which any working gradient attack turns into ~100 % success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.agent.protocol import InputSet
from edgebench.errors import EdgebenchError
from edgebench.robustness.sanity import UNBOUNDED_ID
from edgebench.study.store import RunStore, safe_name
from edgebench.util.io import read_json, sha256_file

if TYPE_CHECKING:
    from edgebench.robustness.attacks import AttackSpec

log = logging.getLogger(__name__)

SETTINGS = ("transfer", "whitebox")
REPLAY_KIND = "replay-whitebox"


def folder(store: RunStore, candidate: str) -> Path:
    return store.attacks_dir / "whitebox" / safe_name(candidate)


def unbounded_spec() -> AttackSpec:
    """PGD L-inf at eps = 1 (255/255): the 'accuracy reaches zero' sanity set."""
    from edgebench.robustness.attacks import AttackSpec

    return AttackSpec("pgd", "linf", (1.0,)).resolved()  # PGD's defaults from the attack registry


def whitebox_specs(specs: Sequence[AttackSpec]) -> list[AttackSpec]:
    """The study's suite plus the unbounded sanity set (unless the suite already has it)."""
    ids = {sid for s in specs for sid in s.set_ids()}
    return list(specs) + ([] if UNBOUNDED_ID in ids else [unbounded_spec()])


def surrogate_record(store: RunStore, candidate: str) -> dict | None:
    p = folder(store, candidate) / "surrogate.json"
    return read_json(p) if p.is_file() else None


def craft_for_candidate(
    store: RunStore,
    candidate: str,
    artifact: Path,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    specs: Sequence[AttackSpec],
    *,
    samples: int,
    batch_size: int,
    seed: int,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Craft *specs* (plus the sanity set) on *candidate*'s surrogate; resumable like the base's
    sets (a set is reused when the artifact, spec, seed and samples are unchanged)."""
    from edgebench.robustness.fakequant import agreement, surrogate_from_onnx, torch_logits
    from edgebench.robustness.store import craft_and_store
    from edgebench.util.io import atomic_write_json

    out = folder(store, candidate)
    out.mkdir(parents=True, exist_ok=True)
    sha = sha256_file(artifact)
    try:
        sur = surrogate_from_onnx(artifact)
    except EdgebenchError as exc:  # degrade: this candidate's white-box rows are UNMEASURED, with why
        atomic_write_json(out / "surrogate.json", {"skipped": str(exc), "artifact_sha256": sha})
        return []
    rec = surrogate_record(store, candidate)
    if rec is None or rec.get("artifact_sha256") != sha or rec.get("kind") != sur.kind:
        info = agreement(sur, artifact, x_eval)
        info["qdq_reference_agreement"] = _qdq_reference_agreement(sur, artifact, x_eval)
        info["predictions"] = torch_logits(sur.module, x_eval).argmax(1).astype(int).tolist()
        info["artifact_sha256"] = sha
        atomic_write_json(out / "surrogate.json", info)
    n = min(samples, len(x_eval))
    sets = craft_and_store(
        sur.module,
        x_eval[:n],
        y_eval[:n],
        whitebox_specs(specs),
        out,
        indices=np.arange(n),
        model_sha=f"{sha}:{sur.kind}",
        batch_size=batch_size,
        seed=seed,
        on_progress=on_progress,
    ).sets
    fp32 = artifact.with_name(artifact.stem + ".fp32.onnx")
    if sur.kind.startswith("fake-quant") and fp32.is_file():
        _localise_int8(store, candidate, fp32, artifact, sha, x_eval[:n], sets)
    return sets


def _localise_int8(
    store: RunStore, candidate: str, fp32: Path, artifact: Path, sha: str, x: np.ndarray, sets: list[dict]
) -> None:
    """``int8_error.json``: per-layer fp32-vs-INT8 error on clean inputs and on the white-box and
    transfer PGD L-inf sets at 8/255 (else the middle epsilon) over the same images."""
    from edgebench.robustness.int8_error import localise
    from edgebench.util.io import atomic_write_json

    out = folder(store, candidate) / "int8_error.json"
    old = read_json(out) if out.is_file() else None
    pgd = [s for s in sets if s["attack"] == "pgd" and s["norm"] == "linf" and s["id"] != UNBOUNDED_ID]
    if not pgd:
        return
    chosen = next((s for s in pgd if s["id"] == "pgd-linf-8"), pgd[len(pgd) // 2])
    if old is not None and old.get("artifact_sha256") == sha and old.get("set") == chosen["id"]:
        return
    adv = {}
    with np.load(folder(store, candidate) / chosen["path"], allow_pickle=False) as z:
        adv[f"whitebox:{chosen['id']}"] = z["x"]
    transfer = store.attacks_dir / f"{chosen['id']}.npz"
    if transfer.is_file():
        with np.load(transfer, allow_pickle=False) as z:
            if len(z["x"]) >= len(x):
                adv[f"transfer:{chosen['id']}"] = z["x"][: len(x)]
    info = localise(fp32, artifact, x, adv)
    info.update({"artifact_sha256": sha, "set": chosen["id"]})
    atomic_write_json(out, info)


def int8_error(store: RunStore, candidate: str) -> dict | None:
    """The candidate's INT8 error localisation (None if it is not INT8 or none was computed)."""
    p = folder(store, candidate) / "int8_error.json"
    return read_json(p) if p.is_file() else None


def whitebox_count(cfg: Any, n_eval: int) -> tuple[int, str]:
    """Images attacked white-box per candidate, and why when fewer than ``whitebox_samples``.

    The first ``min(whitebox_samples, samples)`` evaluation images: a subset of the transfer
    sets' images (``samples``), so every white-box row has the transfer accuracy on the same
    images, and the run never attacks more images white-box than ``attacks.samples`` asks for.
    """
    n = min(cfg.whitebox_samples, cfg.samples, n_eval)
    if n == cfg.whitebox_samples:
        return n, ""
    cap = "attacks.samples" if n == cfg.samples else "the evaluation images"
    return n, f": attacks.whitebox_samples {cfg.whitebox_samples} capped by {cap}"


def craft_all(
    store: RunStore,
    candidates: Sequence[tuple[str, Path, bool]],
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    cfg: Any,
    seed: int,
    ui: Callable[[str, dict], None],
) -> None:
    """Every candidate's white-box sets; *candidates* are ``(name, artifact, is_base)``.

    The base gets only the sanity set: its white-box sets for the suite are the transfer sets
    (crafted on the base, so white-box for it), already crafted on more images.
    """
    specs = list(cfg.suite)  # parsed with the study (an empty suite is the default one)
    n, why = whitebox_count(cfg, len(x_eval))
    units = sum(len(whitebox_specs([] if base else specs)) for _, _, base in candidates) * n
    text = f"white-box attacks on each candidate ({n} images{why})"
    ui("task", {"id": "whitebox", "text": text, "total": units})
    with _small_batch_threads(n):
        _craft_each(store, candidates, x_eval, y_eval, specs, cfg, n, seed, ui)
    ui("done", {"id": "whitebox"})


SMALL_BATCH = 64


class _small_batch_threads:
    """One torch thread while crafting batches of at most :data:`SMALL_BATCH` images: on small
    models and batches the threads' synchronization costs more than their work saves (2
    candidates, 32 images, the default suite on the 2-core dev host: 6-10 s on 1 thread against
    22-26 s on 2, measured while the host was shared)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.before: int | None = None

    def __enter__(self) -> None:
        import torch

        if self.n <= SMALL_BATCH:
            self.before = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.before is not None:
            torch.set_num_threads(self.before)


def _craft_each(
    store: RunStore,
    candidates: Sequence[tuple[str, Path, bool]],
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    specs: Sequence[AttackSpec],
    cfg: Any,
    n: int,
    seed: int,
    ui: Callable[[str, dict], None],
) -> None:
    for name, artifact, is_base in candidates:
        seen: dict[str, int] = {}

        def progress(label: str, done: int, total: int, _seen: dict = seen) -> None:
            step = done - _seen.get(label, 0)
            _seen[label] = done
            if step > 0:
                ui("advance", {"id": "whitebox", "by": step * n / max(total, 1)})

        craft_for_candidate(
            store,
            name,
            artifact,
            x_eval,
            y_eval,
            [] if is_base else specs,
            samples=n,
            batch_size=cfg.batch_size,
            seed=seed,
            on_progress=progress,
        )


def _qdq_reference_agreement(sur: Any, artifact: Path, x: np.ndarray) -> float | None:
    """Top-1 agreement with ONNX Runtime running the QDQ graph unfused (graph optimizations off):
    the arithmetic the artifact specifies, before the engine swaps in integer kernels."""
    if not sur.kind.startswith("fake-quant"):
        return None
    import onnxruntime as ort

    from edgebench.robustness.fakequant import torch_logits

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(artifact), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)])
    return float(np.mean(ref.argmax(1) == torch_logits(sur.module, x).argmax(1)))


def replay_sets(store: RunStore, candidate: str) -> list[InputSet]:
    """The predict job's ``sets`` for a candidate's white-box sets."""
    from edgebench.robustness.store import read_index

    out = folder(store, candidate)
    return [InputSet(r["id"], str(out / r["path"])) for r in read_index(out)]


def whitebox_rows(
    store: RunStore,
    candidate: str,
    device: str,
    y_eval: np.ndarray,
    cand_clean: np.ndarray,
    transfer_preds: dict[str, np.ndarray] | None,
) -> tuple[list[dict[str, Any]], dict | None]:
    """The white-box ``robustness`` rows of one candidate on one device, and its surrogate record.

    Row ids are ``whitebox:<set-id>``; ``set`` is the set id. ``surrogate_to_engine_rate``: of
    the examples that fooled the surrogate (and that the engine got right clean), the share that
    also fool the engine; ``agreement_with_surrogate``: the engine predicts what the surrogate
    predicted on the adversarial inputs. ``transfer_accuracy``: the same candidate's accuracy
    on the base-crafted set of the same id, over the same samples (when measured).
    """
    from edgebench.robustness.metrics import robustness_rows
    from edgebench.robustness.store import load_folder

    replay = store.load(candidate, device, REPLAY_KIND)
    sur = surrogate_record(store, candidate)
    if sur is not None and sur.get("skipped"):
        return [], None
    if replay is None or sur is None or not (folder(store, candidate) / "attacks.json").is_file():
        return [], sur
    sets = load_folder(folder(store, candidate), inputs=False)
    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    sur_clean = np.asarray(sur["predictions"])
    rows = robustness_rows(y_eval, sur_clean, {s.id: s.base_predictions for s in sets}, cand_clean, preds, sets)
    by_id = {s.id: s for s in sets}
    for r in rows:
        r["setting"] = "whitebox"
        r["set"] = r["id"]
        r["id"] = f"whitebox:{r['id']}"
        r["surrogate_to_engine_rate"] = r.pop("transfer_success_rate")
        r["agreement_with_surrogate"] = r.pop("agreement")
        r["sanity_only"] = r["set"] == UNBOUNDED_ID
        if by_id[r["set"]].distances is not None:
            r["median_distance"] = by_id[r["set"]].median_distance()
        tp = (transfer_preds or {}).get(r["set"])
        if tp is not None:
            idx = by_id[r["set"]].indices
            if len(idx) and idx.max() < len(tp):
                r["transfer_accuracy"] = float(np.mean(np.asarray(tp)[idx] == y_eval[idx]))
    return rows, sur


__all__ = [
    "SETTINGS",
    "UNBOUNDED_ID",
    "craft_for_candidate",
    "folder",
    "replay_sets",
    "whitebox_count",
    "whitebox_rows",
]


def add_to_entry(
    store: RunStore, candidate: str, device: str, y_eval: np.ndarray, entry: dict[str, Any], is_base: bool
) -> None:
    """Extend one candidate/device entry of results.json: label the transfer rows, append the
    white-box rows, and add ``surrogate`` and the ``sanity`` checks. For the base, the transfer
    rows are its white-box rows too (crafted on it); they are repeated as such, marked
    ``same_as_transfer``."""
    from edgebench.robustness.sanity import sanity_checks

    rows = entry.get("robustness") or []
    for r in rows:
        r.setdefault("setting", "transfer")
        r.setdefault("set", r.get("id"))
    replay = store.load(candidate, device, "replay")
    if replay is None:
        return
    rec = surrogate_record(store, candidate)
    if rec is not None and rec.get("skipped"):
        entry["whitebox_unmeasured_reason"] = rec["skipped"]
    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    clean = preds.pop("clean")
    wb, sur = whitebox_rows(store, candidate, device, y_eval, clean, preds)
    base_replay = None if is_base else store.load("base", device, "replay")
    if base_replay is not None:
        # the base's own white-box accuracy (its sets are crafted on it) over the same images
        for r in wb:
            bp = base_replay["sets"].get(r["set"])
            idx = np.arange(r["count"])
            if bp is not None and len(bp["predictions"]) >= len(idx) and not r.get("sanity_only"):
                r["base_whitebox_accuracy"] = float(np.mean(np.asarray(bp["predictions"])[idx] == y_eval[idx]))
    if is_base and wb:
        copies = []
        for r in rows:
            c = dict(r, setting="whitebox", id=f"whitebox:{r['id']}", same_as_transfer=True)
            c["transfer_accuracy"] = r["accuracy"]
            c["surrogate_to_engine_rate"] = c.pop("transfer_success_rate", None)
            c["agreement_with_surrogate"] = c.pop("agreement", None)
            copies.append(c)
        wb = copies + wb
    entry["robustness"] = rows + wb
    if sur is not None:
        entry["surrogate"] = {k: v for k, v in sur.items() if k != "predictions"}
    entry["sanity"] = sanity_checks(entry["robustness"], engine_clean_pred=clean, surrogate=sur)
