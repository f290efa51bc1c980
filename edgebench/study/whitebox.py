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
from edgebench.robustness.worstcase import Outcome
from edgebench.study.store import RunStore, safe_name
from edgebench.util.io import read_json
from edgebench.util.onnx_file import sha256 as model_sha256

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


PARENT = "fp32-parent"  # the second attacker's model of an INT8 candidate: its float parent graph


def parent_graph(artifact: Path) -> Path:
    """The float graph an INT8 artifact was quantized from (kept by the build beside it)."""
    return artifact.with_name(artifact.stem + ".fp32.onnx")


def restarts_of(spec: AttackSpec) -> bool:
    """Whether *spec* starts at random, so a second run from another start can find more."""
    return bool(spec.params().get("random_start"))


def variant_tags(restarts: int, parent: bool) -> list[str]:
    """The white-box variants beyond the first run on the candidate's own model: ``r<k>`` (its
    k-th restart), ``parent`` and ``parent-r<k>`` (the fp32 parent's runs, INT8 only)."""
    tags = [f"r{k}" for k in range(1, restarts)]
    if parent:
        tags += ["parent"] + [f"parent-r{k}" for k in range(1, restarts)]
    return tags


def restart_index(tag: str) -> int:
    """The restart a variant tag names: ``r2`` and ``parent-r2`` -> 2, ``parent`` -> 0."""
    last = tag.rsplit("-", 1)[-1]
    return int(last[1:]) if last.startswith("r") and last[1:].isdigit() else 0


def variant_folder(store: RunStore, candidate: str, tag: str) -> Path:
    return folder(store, candidate) / "variants" / tag


def divergence_folder(store: RunStore, candidate: str) -> Path:
    return folder(store, candidate) / "divergence"


def variant_surrogate(tag: str, kind: str) -> str:
    """The attacker's model a variant's sets were crafted on (its kind, or :data:`PARENT`)."""
    return PARENT if tag.startswith("parent") else kind


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
    restarts: int = 1,
    base_artifact: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    device: Any = None,
) -> list[dict[str, Any]]:
    """Craft *specs* (plus the sanity set) on *candidate*'s surrogate; resumable like the base's
    sets (a set is reused when the artifact, spec, seed and samples are unchanged).

    Randomly started attacks run *restarts* times (seeds ``seed + k``, ``variants/r<k>``); an
    INT8 candidate is also attacked through its fp32 parent graph (BPDA with every quantizer as
    the identity, forward included: ``variants/parent``), since straight-through rounding alone
    can still mask gradients. Pairwise attacks (diva) are crafted on the candidate's model
    paired with the base's (*base_artifact*) into ``divergence/``. Every attacker's model is
    built on *device* (a ``torch.device``, the run's host device; default the CPU). Returns the
    first run's sets.
    """
    from edgebench.robustness.fakequant import agreement, surrogate_from_onnx, torch_logits
    from edgebench.robustness.store import craft_and_store
    from edgebench.util.io import atomic_write_json

    out = folder(store, candidate)
    out.mkdir(parents=True, exist_ok=True)
    sha = model_sha256(artifact)
    try:
        sur = surrogate_from_onnx(artifact, device=device)
    except EdgebenchError as exc:  # degrade: this candidate's white-box rows are UNMEASURED, with why
        atomic_write_json(out / "surrogate.json", {"skipped": str(exc), "artifact_sha256": sha})
        return []
    parent_path = parent_graph(artifact)
    parent = None
    if sur.kind.startswith("fake-quant") and parent_path.is_file():
        try:
            parent = surrogate_from_onnx(parent_path, device=device)
        except EdgebenchError as exc:  # the STE model alone, as before
            log.warning("%s: no fp32 parent surrogate: %s", candidate, exc)
    tags = variant_tags(restarts, parent is not None)
    rec = surrogate_record(store, candidate)
    if rec is None or rec.get("artifact_sha256") != sha or rec.get("kind") != sur.kind:
        logits = torch_logits(sur.module, x_eval)  # one pass over the evaluation set, used thrice
        rec = agreement(sur, artifact, x_eval, logits)
        rec["qdq_reference_agreement"] = _qdq_reference_agreement(sur, artifact, x_eval, logits)
        rec["predictions"] = logits.argmax(1).astype(int).tolist()
        rec["artifact_sha256"] = sha
    rec["restarts"] = restarts
    rec["also"] = [PARENT] if parent is not None else []
    rec["variants"] = tags
    n = min(samples, len(x_eval))
    plain = whitebox_specs([s for s in specs if not s.definition.pairwise])
    pairwise = [s for s in specs if s.definition.pairwise]
    base = None
    if pairwise and base_artifact is not None:
        try:
            base = surrogate_from_onnx(base_artifact, device=device)
        except EdgebenchError as exc:  # no divergence rows, with why in the log
            log.warning("%s: no divergence sets, the base cannot be rebuilt: %s", candidate, exc)
    rec["divergence"] = base is not None
    atomic_write_json(out / "surrogate.json", rec)

    def craft_into(where: Path, model: Any, todo: Sequence[AttackSpec], model_sha: str, k: int, tag: str) -> list:
        progress = (lambda lab, d, t: on_progress(f"{tag}:{lab}", d, t)) if on_progress is not None else None
        return craft_and_store(
            model,
            x_eval[:n],
            y_eval[:n],
            todo,
            where,
            indices=np.arange(n),
            model_sha=model_sha,
            batch_size=batch_size,
            seed=seed + k,
            on_progress=progress,
        ).sets

    sets = craft_into(out, sur.module, plain, f"{sha}:{sur.kind}", 0, "")
    for tag in tags:
        k = restart_index(tag)
        model, model_sha = (sur.module, f"{sha}:{sur.kind}")
        if tag.startswith("parent") and parent is not None:
            model, model_sha = parent.module, f"{model_sha256(parent_path)}:{PARENT}"
        todo = [s for s in plain if k == 0 or restarts_of(s)]
        if todo:
            craft_into(variant_folder(store, candidate, tag), model, todo, model_sha, k, tag)
    if base is not None and base_artifact is not None:
        from edgebench.robustness.divergence import Paired

        paired = Paired(sur.module, base.module).eval()
        pair_sha = f"{sha}:{sur.kind}+base:{model_sha256(base_artifact)}"
        craft_into(divergence_folder(store, candidate), paired, pairwise, pair_sha, 0, "divergence")
    if sur.kind.startswith("fake-quant") and parent_path.is_file():
        _localise_int8(store, candidate, parent_path, artifact, sha, x_eval[:n], sets)
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
    device: Any = None,
) -> None:
    """Every candidate's white-box sets; *candidates* are ``(name, artifact, is_base)``, each
    attacked on *device* (the run's host device; default the CPU).

    The base gets only the sanity set: its white-box sets for the suite are the transfer sets
    (crafted on the base, so white-box for it), already crafted on more images.
    """
    specs = list(cfg.suite)  # parsed with the study (an empty suite is the default one)
    n, why = whitebox_count(cfg, len(x_eval))
    restarts = cfg.whitebox_restarts
    units = sum(_set_count([] if base else specs, restarts, parent_graph(a).is_file()) for _, a, base in candidates) * n
    text = f"white-box attacks on each candidate ({n} images{why})"
    ui("task", {"id": "whitebox", "text": text, "total": units})
    with _small_batch_threads(n):
        _craft_each(store, candidates, x_eval, y_eval, specs, cfg, n, seed, ui, device)
    ui("done", {"id": "whitebox"})


def _set_count(specs: Sequence[AttackSpec], restarts: int, parent: bool) -> int:
    """Specs crafted for one candidate over its variants (the progress bar's units per image)."""
    plain = whitebox_specs([s for s in specs if not s.definition.pairwise])
    own = len(plain) + sum(1 for s in plain if restarts_of(s)) * (restarts - 1)
    return own * (2 if parent else 1) + sum(1 for s in specs if s.definition.pairwise)


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
    device: Any = None,
) -> None:
    base_artifact = next((a for _, a, is_base in candidates if is_base), None)
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
            restarts=cfg.whitebox_restarts,
            base_artifact=base_artifact,
            on_progress=progress,
            device=device,
        )


def _qdq_reference_agreement(sur: Any, artifact: Path, x: np.ndarray, logits: np.ndarray) -> float | None:
    """Top-1 agreement with ONNX Runtime running the QDQ graph unfused (graph optimizations off):
    the arithmetic the artifact specifies, before the engine swaps in integer kernels (*logits*:
    the surrogate's on *x*)."""
    if not sur.kind.startswith("fake-quant"):
        return None
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(artifact), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)])
    return float(np.mean(ref.argmax(1) == logits.argmax(1)))


def replay_sets(store: RunStore, candidate: str) -> list[InputSet]:
    """The predict job's ``sets`` for a candidate's white-box sets: the first run's under their
    set ids, each further run's as ``<set-id>@<variant>``, and the divergence sets."""
    from edgebench.robustness.store import read_index

    out = folder(store, candidate)
    sets = [InputSet(r["id"], str(out / r["path"])) for r in read_index(out)]
    rec = surrogate_record(store, candidate) or {}
    for tag in rec.get("variants") or []:
        where = variant_folder(store, candidate, tag)
        sets += [InputSet(f"{r['id']}@{tag}", str(where / r["path"])) for r in read_index(where)]
    return sets + divergence_sets(store, candidate)


def divergence_sets(store: RunStore, candidate: str) -> list[InputSet]:
    """The candidate's divergence sets, which both its own engine and the base's replay."""
    from edgebench.robustness.store import read_index

    if not (surrogate_record(store, candidate) or {}).get("divergence"):
        return []
    where = divergence_folder(store, candidate)
    return [InputSet(r["id"], str(where / r["path"])) for r in read_index(where)]


def _load_variants(store: RunStore, candidate: str, sur: dict) -> dict[str, dict[str, Any]]:
    from edgebench.robustness.store import load_folder

    out = {}
    for tag in sur.get("variants") or []:
        where = variant_folder(store, candidate, tag)
        if (where / "attacks.json").is_file():
            out[tag] = {s.id: s for s in load_folder(where, inputs=False)}
    return out


def _worst_over_runs(
    s: Any, y: np.ndarray, preds: dict[str, np.ndarray], variants: dict[str, dict[str, Any]], kind: str
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per image, the run whose example fools the engine (the first one, else the first run):
    the engine's and the attacker's model's predictions on that example, and the engine's
    accuracy per attacker's model over its own runs."""
    runs = [("", s.base_predictions, preds[s.id])]
    for tag, by_id in variants.items():
        v, p = by_id.get(s.id), preds.get(f"{s.id}@{tag}")
        if v is not None and p is not None and np.array_equal(v.indices, s.indices):
            runs.append((tag, v.base_predictions, p))
    engine = np.stack([p for _, _, p in runs])
    model = np.stack([m for _, m, _ in runs])
    wrong = engine != y[None, :]
    first = np.where(wrong.any(0), wrong.argmax(0), 0)
    cols = np.arange(len(y))
    by_model: dict[str, np.ndarray] = {}
    for k, (tag, _, _) in enumerate(runs):
        name = variant_surrogate(tag, kind)
        by_model[name] = by_model.get(name, np.ones(len(y), dtype=bool)) & ~wrong[k]
    return engine[first, cols], model[first, cols], {k: float(v.mean()) for k, v in by_model.items()}


def whitebox_rows(
    store: RunStore,
    candidate: str,
    device: str,
    y_eval: np.ndarray,
    cand_clean: np.ndarray,
    transfer_preds: dict[str, np.ndarray] | None,
) -> tuple[list[dict[str, Any]], dict | None, list[Outcome]]:
    """The white-box and divergence ``robustness`` rows of one candidate on one device, its
    surrogate record, and each row's per-image outcome (for the worst case over attacks).

    Row ids are ``whitebox:<set-id>``; ``set`` is the set id. A white-box row is the worst case
    over every run on every attacker's model (restarts; an INT8 candidate's fp32 parent): an
    image counts as broken when any run's example fools the engine (``surrogates``: the engine's
    accuracy per attacker's model alone). ``surrogate_to_engine_rate``: of the examples that
    fooled the attacker's model (and that the engine got right clean), the share that also fool
    the engine; ``agreement_with_surrogate``: the engine predicts what the attacker's model
    predicted on the adversarial inputs (both on the example chosen per image).
    ``transfer_accuracy``: the same candidate's accuracy on the base-crafted set of the same id,
    over the same samples (when measured). Divergence rows (``divergence:<set-id>``) are added
    by :func:`divergence_rows`.
    """
    from edgebench.robustness.metrics import robustness_rows
    from edgebench.robustness.store import load_folder

    replay = store.load(candidate, device, REPLAY_KIND)
    sur = surrogate_record(store, candidate)
    if sur is not None and sur.get("skipped"):
        return [], None, []
    if replay is None or sur is None or not (folder(store, candidate) / "attacks.json").is_file():
        return [], sur, []
    sets = [s for s in load_folder(folder(store, candidate), inputs=False) if s.id in replay["sets"]]
    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    variants = _load_variants(store, candidate, sur)
    engine, model, per_model = {}, {}, {}
    for s in sets:
        engine[s.id], model[s.id], per_model[s.id] = _worst_over_runs(
            s, y_eval[s.indices], preds, variants, str(sur.get("kind"))
        )
    sur_clean = np.asarray(sur["predictions"])
    rows = robustness_rows(y_eval, sur_clean, model, cand_clean, engine, sets)
    by_id = {s.id: s for s in sets}
    outcomes = []
    for r in rows:
        s = by_id[r["id"]]
        r["setting"] = "whitebox"
        r["set"] = r["id"]
        r["id"] = f"whitebox:{r['id']}"
        r["surrogate_to_engine_rate"] = r.pop("transfer_success_rate")
        r["agreement_with_surrogate"] = r.pop("agreement")
        r["sanity_only"] = r["set"] == UNBOUNDED_ID
        r["surrogates"] = per_model[s.id]
        r["runs"] = 1 + sum(1 for tag in variants if f"{s.id}@{tag}" in preds and s.id in variants[tag])
        if s.distances is not None:
            r["median_distance"] = s.median_distance()
        tp = (transfer_preds or {}).get(r["set"])
        if tp is not None:
            idx = s.indices
            if len(idx) and idx.max() < len(tp):
                r["transfer_accuracy"] = float(np.mean(np.asarray(tp)[idx] == y_eval[idx]))
        if s.eps is not None and not r["sanity_only"]:
            outcomes.append(Outcome(r["id"], "whitebox", s.norm, s.eps, s.indices, engine[s.id] == y_eval[s.indices]))
    return rows, sur, outcomes


DIVERGENCE_KIND = "replay-divergence"  # the base's engine on a candidate's divergence sets


def divergence_rows(
    store: RunStore, candidate: str, device: str, y_eval: np.ndarray, cand_clean: np.ndarray, sur: dict | None
) -> tuple[list[dict[str, Any]], list[Outcome]]:
    """The ``divergence:<set-id>`` rows of one candidate on one device: its engine's accuracy on
    the divergence sets and ``divergence_rate``, the share of images where the deployed base is
    right and the deployed candidate wrong (the base's engine replays the same sets:
    :data:`DIVERGENCE_KIND`); and each row's per-image outcome."""
    from edgebench.robustness.metrics import robustness_rows, wilson_interval
    from edgebench.robustness.store import load_folder

    replay = store.load(candidate, device, REPLAY_KIND)
    where = divergence_folder(store, candidate)
    if replay is None or sur is None or not sur.get("divergence") or not (where / "attacks.json").is_file():
        return [], []
    sets = [s for s in load_folder(where, inputs=False) if s.id in replay["sets"]]
    preds = {s.id: np.asarray(replay["sets"][s.id]["predictions"]) for s in sets}
    rows = robustness_rows(
        y_eval, np.asarray(sur["predictions"]), {s.id: s.base_predictions for s in sets}, cand_clean, preds, sets
    )
    base = (store.load(candidate, device, DIVERGENCE_KIND) or {}).get("sets") or {}
    outcomes = []
    for r, s in zip(rows, sets):
        y = y_eval[s.indices]
        r.update(setting="divergence", set=s.id, id=f"divergence:{s.id}")
        r["surrogate_to_engine_rate"] = r.pop("transfer_success_rate")
        r["agreement_with_surrogate"] = r.pop("agreement")
        bp = base.get(s.id)
        if bp is not None and len(bp["predictions"]) == len(y):
            split = (np.asarray(bp["predictions"]) == y) & (preds[s.id] != y)
            k = int(split.sum())
            r["base_accuracy"] = float(np.mean(np.asarray(bp["predictions"]) == y))
            r["divergence_rate"] = k / len(y)
            r["divergence_rate_ci95"] = list(wilson_interval(k, len(y)))
            r["divergence_count"] = k
        if s.eps is not None:
            outcomes.append(Outcome(r["id"], "divergence", s.norm, s.eps, s.indices, preds[s.id] == y))
    return rows, outcomes


def transfer_outcomes(sets: Sequence[Any], preds: dict[str, np.ndarray], y_eval: np.ndarray) -> list[Outcome]:
    """Per-image outcomes of the transfer sets (those with an epsilon) the engine replayed."""
    return [
        Outcome(s.id, "transfer", s.norm, float(s.eps), s.indices, preds[s.id] == y_eval[s.indices])
        for s in sets
        if s.eps is not None and s.id in preds and len(preds[s.id]) == len(s.indices)
    ]


def blackbox_outcomes(store: RunStore, candidate: str, device: str) -> list[Outcome]:
    """Per-image outcomes of the query attacks on the engine at each of their epsilons: right
    unless an adversarial was confirmed within eps (images ``0..count-1``, as they are run)."""
    out = []
    for kind in ("blackbox", "blackbox-square"):
        rec = store.load(candidate, device, kind)
        if not rec or rec.get("distances") is None or not rec.get("rows"):
            continue
        dist = np.asarray([np.inf if d is None else d for d in rec["distances"]], dtype=np.float64)
        idx = np.arange(len(dist))
        for row in rec["rows"]:
            eps = float(row["eps"])
            rid = f"{kind}:{rec.get('attack')}-{rec.get('norm')}"
            out.append(Outcome(rid, "blackbox", str(rec.get("norm")), eps, idx, dist > eps))
    return out


def _engine_preds(store: RunStore, candidate: str, device: str) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    replay = store.load(candidate, device, "replay")
    if replay is None:
        return None
    preds = {k: np.asarray(v["predictions"]) for k, v in replay["sets"].items()}
    return preds.pop("clean"), preds


# per candidate name: the outcomes of the images adaptive sampling added (study/rounds.py)
MoreFn = Callable[[str], list[Outcome]]


def base_survivors(
    store: RunStore, device: str, y_eval: np.ndarray, sets: Sequence[Any], more: MoreFn | None = None
) -> dict[tuple, Any]:
    """The base's per-image worst case (its transfer sets are white-box for it, plus its query
    attacks, and the images adaptive sampling added: *more*), to compare a candidate with the base
    on the same images."""
    from edgebench.robustness.worstcase import extended, survivors

    got = _engine_preds(store, "base", device)
    if got is None:
        return {}
    clean, preds = got
    outcomes = transfer_outcomes(sets, preds, y_eval) + blackbox_outcomes(store, "base", device)
    return survivors(y_eval, clean, extended(outcomes, more("base")) if more is not None else outcomes)


__all__ = [
    "SETTINGS",
    "UNBOUNDED_ID",
    "DIVERGENCE_KIND",
    "add_to_entry",
    "craft_for_candidate",
    "divergence_rows",
    "divergence_sets",
    "folder",
    "replay_sets",
    "whitebox_count",
    "whitebox_rows",
]


def add_to_entry(
    store: RunStore,
    candidate: str,
    device: str,
    y_eval: np.ndarray,
    entry: dict[str, Any],
    is_base: bool,
    sets: Sequence[Any] = (),
    more: MoreFn | None = None,
) -> None:
    """Extend one candidate/device entry of results.json: label the transfer rows, append the
    white-box and divergence rows, add ``surrogate``, the ``sanity`` checks and
    ``robust_accuracy`` (per epsilon, the worst case over every attack: the transfer *sets*,
    white-box, divergence and query attacks, over the images adaptive sampling added too: *more*,
    per candidate name). For the base, the transfer rows are its white-box
    rows too (crafted on it); they are repeated as such, marked ``same_as_transfer``."""
    from edgebench.robustness.sanity import sanity_checks
    from edgebench.robustness.worstcase import extended, worst_case_rows

    rows = entry.get("robustness") or []
    for r in rows:
        r.setdefault("setting", "transfer")
        r.setdefault("set", r.get("id"))
    got = _engine_preds(store, candidate, device)
    if got is None:
        return
    clean, preds = got
    rec = surrogate_record(store, candidate)
    if rec is not None and rec.get("skipped"):
        entry["whitebox_unmeasured_reason"] = rec["skipped"]
    wb, sur, outcomes = whitebox_rows(store, candidate, device, y_eval, clean, preds)
    div, div_outcomes = divergence_rows(store, candidate, device, y_eval, clean, sur)
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
    entry["robustness"] = rows + wb + div
    if sur is not None:
        entry["surrogate"] = {k: v for k, v in sur.items() if k != "predictions"}
    entry["sanity"] = sanity_checks(entry["robustness"], engine_clean_pred=clean, surrogate=sur)
    outcomes = transfer_outcomes(sets, preds, y_eval) + outcomes + div_outcomes
    outcomes += blackbox_outcomes(store, candidate, device)
    if more is not None:
        outcomes = extended(outcomes, more(candidate))
    if outcomes:
        reference = None if is_base else base_survivors(store, device, y_eval, sets, more)
        entry["robust_accuracy"] = worst_case_rows(y_eval, clean, outcomes, reference)
