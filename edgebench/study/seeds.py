"""A study with ``seeds:`` runs once per seed, then reports mean and spread per candidate.

Published robustness numbers are means over several training runs (Merkle et al.: 5 seeds), so
one run's number cannot say whether a difference between candidates is more than seed noise.
:func:`run_seeds` runs the study once per seed, each in its own run folder ``seed-<s>/`` (a
whole run: resumable, with its own results.json and report), through whatever runs one study
(the local pipeline or the Ray engine: the caller's *run_one*). Seed ``s`` sets the study's
``seed`` (data split, the base's training, attack starts) and shifts every pruning and
fine-tuning seed by ``s - seed``, so the random choices of the compression differ too.

:func:`seed_record` reads the per-seed results back and computes, per candidate and metric
(clean accuracy, each robustness row's accuracy and median distance, "both correct" on the
transfer sets, sparsity), the per-seed values, their mean, sample standard deviation, minimum
and maximum: the ``seeds`` record of the top-level results.json, whose report shows it in its
"Seeds" section (:mod:`edgebench.report.seeds_tables`). The rest of the top-level results is the
first seed's run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.errors import EdgebenchError
from edgebench.results import Results, validate_results
from edgebench.study.config import CandidateConfig, StudyConfig
from edgebench.util.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

RunOne = Callable[[StudyConfig, Path], dict]


def seed_folder(run_dir: Path, seed: int) -> Path:
    """The run folder of one seed's run."""
    return Path(run_dir) / f"seed-{seed}"


def _shifted(cand: CandidateConfig, offset: int) -> CandidateConfig:
    if cand.prune is None or offset == 0:
        return cand
    p = cand.prune
    prune = dataclasses.replace(
        p, seed=p.seed + offset, finetune=dataclasses.replace(p.finetune, seed=p.finetune.seed + offset)
    )
    return cand.model_copy(update={"prune": prune})


def seed_config(cfg: StudyConfig, seed: int) -> StudyConfig:
    """The study one seed runs: ``seed`` set, pruning and fine-tuning seeds shifted by
    ``seed - cfg.seed``, no ``seeds:`` of its own."""
    offset = seed - cfg.seed
    cands = tuple(_shifted(c, offset) for c in cfg.candidates)
    return cfg.replace(seed=seed, seeds=None, candidates=cands)


def run_seeds(cfg: StudyConfig, run_dir: Path, run_one: RunOne, ui: Callable[[str, dict], None] | None = None) -> dict:
    """Run *cfg* once per seed of ``cfg.seeds`` (in ``seed-<s>/``, through *run_one*), then write
    the top-level results.json (the first seed's run plus the ``seeds`` record) and its report."""
    if not cfg.seeds:
        raise EdgebenchError("seeds: expected a list of seeds in the study, found none")
    run_dir = Path(run_dir)
    for i, seed in enumerate(cfg.seeds):
        if ui is not None:
            ui("status", {"text": f"seed {seed} ({i + 1} of {len(cfg.seeds)}): {seed_folder(run_dir, seed)}"})
        run_one(seed_config(cfg, seed), seed_folder(run_dir, seed))
    return write_seed_results(cfg, run_dir)


def write_seed_results(cfg: StudyConfig, run_dir: Path) -> dict:
    """The top-level results.json of a seeded study, from its seeds' run folders, and its report."""
    from edgebench.report.render import render_results

    assert cfg.seeds
    run_dir = Path(run_dir)
    # one line, not a traceback, for a seed's results.json missing or damaged
    per_seed = [read_json(seed_folder(run_dir, s) / "results.json", f"seeds: seed {s}'s results") for s in cfg.seeds]
    results = dict(per_seed[0])
    results["run_id"] = run_dir.name
    results["study"] = cfg.to_dict()
    results["seeds"] = seed_record(cfg, run_dir, per_seed)
    results = validate_results(results, f"{run_dir / 'results.json'} (seeds)").dump()
    atomic_write_json(run_dir / "results.json", results)
    render_results(results, run_dir)
    return results


def spread(values: list[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (n - 1; None below 2 values), min, max and n of the
    measured values (None: not measured in that seed, left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(xs), "max": max(xs)}


def _eps_label(eps: float | None) -> str:
    if eps is None:
        return "min"
    e = eps * 255
    return f"{e:.4g}/255"


def _metrics(
    results: Results, device: str, both: dict[str, dict[str, float]]
) -> dict[tuple[str, str], tuple[str, float | None]]:
    """``(candidate, key) -> (label, value)`` of one seed's results on *device*."""
    out: dict[tuple[str, str], tuple[str, float | None]] = {}
    base_params = next((c.params for c in results.candidates if c.name == "base"), None)
    medians = {a.id: a.median_distance for a in results.attacks}
    for c in results.candidates:
        name = c.name
        is_base = not c.recipe.prune and not c.recipe.quantize
        if c.nonzero_params is not None and base_params:
            out[(name, "sparsity")] = (
                "parameters zero or removed (share of the base's)",
                1 - c.nonzero_params / base_params,
            )
        e = c.devices.get(device)
        out[(name, "clean")] = ("clean accuracy", None if e is None else e.clean_accuracy)
        for r in [] if e is None else e.robustness:
            if r.sanity_only:
                continue
            setting = r.setting or "transfer"
            sid = f"{setting}:{r.set or r.id}"  # white-box row ids carry their setting already
            what = f"{setting} {r.attack} {r.norm} {_eps_label(r.eps)}"
            if r.eps is not None:
                out[(name, f"{sid}:accuracy")] = (f"{what} accuracy", r.accuracy)
            dist = r.median_distance
            if dist is None and is_base:  # the base's white-box sets are its transfer sets: their record has it
                dist = medians.get(r.set or r.id)
            if dist is not None:
                out[(name, f"{sid}:median_distance")] = (f"{what} median distance", dist)
            bc = both.get(name, {}).get(r.id)
            if setting == "transfer" and bc is not None:
                out[(name, f"{sid}:both_correct")] = (f"{what} both correct", bc)
    return out


def both_correct(run_dir: Path, device: str) -> dict[str, dict[str, float]]:
    """GAP's "both correct" per candidate and transfer set: the share of examples crafted on the
    base that the base *and* the candidate's deployed artifact both classify right."""
    from edgebench.robustness.store import load_folder
    from edgebench.study.store import RunStore

    store = RunStore(run_dir)
    if not (store.attacks_dir / "attacks.json").is_file():
        return {}
    evald = store.load_arrays("eval")
    if evald is None:
        return {}
    y = np.asarray(evald["y"])
    sets = load_folder(store.attacks_dir, inputs=False)
    study = store.read_json("study.json") or {}
    out: dict[str, dict[str, float]] = {}
    for cand in study.get("candidates", []):
        replay = store.load(cand["name"], device, "replay")
        if replay is None:
            continue
        preds = replay.get("sets", {})
        for s in sets:
            if s.id not in preds or s.eps is None:
                continue
            ys = y[np.asarray(s.indices)]
            ok = (np.asarray(s.base_predictions) == ys) & (np.asarray(preds[s.id]["predictions"]) == ys)
            if len(ok):
                out.setdefault(cand["name"], {})[s.id] = float(ok.mean())
    return out


def seed_record(cfg: StudyConfig, run_dir: Path, per_seed: list[dict]) -> dict[str, Any]:
    """The ``seeds`` record: per candidate and metric, the value in each seed and their spread."""
    assert cfg.seeds
    device = cfg.devices[0]
    per: list[dict[tuple[str, str], tuple[str, float | None]]] = [
        _metrics(
            validate_results(res, str(seed_folder(run_dir, s) / "results.json")),
            device,
            both_correct(seed_folder(run_dir, s), device),
        )
        for s, res in zip(cfg.seeds, per_seed)
    ]
    keys: list[tuple[str, str]] = []
    for m in per:
        keys += [k for k in m if k not in keys]
    order = {c.name: i for i, c in enumerate(cfg.candidates)}
    keys.sort(key=lambda k: order.get(k[0], len(order)))  # stable: metric order kept per candidate
    stats = []
    for cand, key in keys:
        label = next(m[(cand, key)][0] for m in per if (cand, key) in m)
        values = [m[(cand, key)][1] if (cand, key) in m else None for m in per]
        stats.append({"candidate": cand, "key": key, "metric": label, "values": values, **spread(values)})
    return {
        "seeds": list(cfg.seeds),
        "runs": [seed_folder(Path("."), s).as_posix() for s in cfg.seeds],
        "device": device,
        "stats": stats,
    }


__all__ = ["both_correct", "run_seeds", "seed_config", "seed_folder", "seed_record", "spread", "write_seed_results"]
