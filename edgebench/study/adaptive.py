"""Adaptive sampling (``attacks: {adaptive: true}``): more images for undecided verdicts.

After the other stages, a candidate whose verdict on a device is INCONCLUSIVE because its
robustness gate's 95 % interval straddles the budget gets evaluation images that no stage
attacked yet, in rounds, in the spirit of MLPerf's early stopping: each round grows its images
toward the gate's ``images_to_decide`` (at least a quarter more, never past
``attacks.adaptive_max_images`` or the evaluation images), and a candidate stops as soon as its
verdict is decided. A round is a run folder of its own (:mod:`edgebench.study.rounds`) in which
the stage functions run unchanged: :func:`~edgebench.study.attack.craft_transfer` on the base
(rounds past the transfer sets' ``attacks.samples`` images), :func:`~edgebench.study.attack.craft_whitebox`
on the candidates still undecided, :func:`~edgebench.study.measure.measure_candidate` for their
replays; every set and replay is stored as those stages store them, so a re-run resumes.

The accuracy gates rest on every evaluation image already (the clean replay runs all of
``data.eval_count``), so a verdict undecided on accuracy alone gets nothing added and says so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any

from edgebench.report.gates import INCONCLUSIVE, INCONCLUSIVE_GATE
from edgebench.results import Results, as_results
from edgebench.study.attack import craft_transfer, craft_whitebox
from edgebench.study.context import Built, RunContext
from edgebench.study.measure import measure_candidate
from edgebench.study.rounds import SCHEMA, read_record, round_store, write_record
from edgebench.subject.zoo import Subject
from edgebench.util.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

GATE = "robustness_drop"  # the gate more attacked images decide
MIN_STEP = 8  # a round adds at least this many images (and at least a quarter more)
MAX_ROUNDS = 50  # a guard: every round adds images, so the cap ends the loop long before


@dataclasses.dataclass(frozen=True)
class Cell:
    """One undecided candidate x device that more attacked images may decide."""

    candidate: str
    device: str
    images: int  # what its worst case rests on now
    target: int  # the images its gate estimates would decide it (capped)


def adapt(run: RunContext, subject: Subject, devices: list, written: dict) -> None:
    """Add images, round by round, to every verdict INCONCLUSIVE on its robustness gate, until
    each is decided or rests on the cap; unfinished rounds of an earlier run are finished first.
    *written*: the results the other stages just wrote, the verdicts the first round reads.
    The caller assembles the final results (the record is on disk)."""
    cfg = run.config.attacks
    eval_n = len(run.arrays("eval")["y"])
    cap = min(cfg.adaptive_max_images or eval_n, eval_n)
    record = read_record(run.store) or {"schema": SCHEMA, "rounds": [], "cells": {}}
    record["cap"] = cap
    built = _built(run)
    by_device = {d.name: d for d in devices}
    resumed = False
    for rnd in record["rounds"]:  # resume: members an interrupted run did not measure
        pending = {c: [d for d in devs if d not in rnd["measured"].get(c, [])] for c, devs in rnd["members"].items()}
        if any(pending.values()):
            _run_round(run, subject, by_device, built, record, rnd, pending)
            resumed = True
    results = as_results(run.write_results() if resumed else written)  # assembled again only if a round moved
    for _ in range(MAX_ROUNDS):
        cells = _undecided(run, results, record, cap)
        planned = _plan(record, cells, cap, min(cfg.samples, eval_n), run)
        if not planned:
            break
        for rnd, members in planned:
            _run_round(run, subject, by_device, built, record, rnd, members)
        results = as_results(run.write_results())
    _undecided(run, results, record, cap)  # the final outcome of every cell
    write_record(run.store, record)
    _summary(run, record)


def _built(run: RunContext) -> list[Built]:
    """Every candidate built in the run folder (its manifest), as the build stage left it."""
    out = []
    for cand in run.config.candidates:
        path = run.store.manifest_path(cand.name)
        if path.is_file():
            out.append(Built(cand, read_json(path, "artifact manifest")))
    return out


def _undecided(run: RunContext, results: Results, record: dict, cap: int) -> list[Cell]:
    """The cells more images may decide now; every other cell adaptive sampling touched gets its
    outcome in *record* (``cells``)."""
    cells: list[Cell] = []
    for cand in results.candidates:
        for dev, entry in cand.devices.items():
            v = entry.verdict
            rec = record["cells"].get(cand.name, {}).get(dev)
            if v is None or (rec is None and v.status != INCONCLUSIVE):
                continue  # the base, never judged on an interval of its own robustness, ends as "accuracy"
            gate = next((g for g in v.gates if g.name == GATE), None)
            images = gate.images if gate is not None and gate.images else 0
            if rec is None:
                rec = record["cells"].setdefault(cand.name, {})[dev] = {"images_before": images, "rounds": 0}
            rec.update(images=max(images, rec["images_before"]), cap=cap)
            rec["added"] = rec["images"] - rec["images_before"]
            cell = _judge_cell(run, cand.name, dev, v.status, gate, rec, cap)
            if cell is not None:
                cells.append(cell)
    return cells


def _judge_cell(run: RunContext, cand: str, dev: str, status: str, gate: Any, rec: dict, cap: int) -> Cell | None:
    """Set the cell's outcome; the cell itself when another round may decide it."""
    images = rec["images"]
    expected = rec.pop("expect", None)
    if status != INCONCLUSIVE:
        rec.update(outcome="decided", detail=f"{status} on {images} attacked images")
        return None
    if rec.get("outcome") == "stopped":
        return None
    if gate is None or gate.status != INCONCLUSIVE_GATE:
        rec.update(
            outcome="accuracy",
            detail="only an accuracy gate is undecided, and it rests on every evaluation image already "
            f"({run.config.data.eval_count}); raise data.eval_count to decide it",
        )
        return None
    if expected is not None and images < expected:
        rec.update(outcome="stopped", detail=f"the images added up to {expected} did not enter its worst case")
        return None
    if images >= cap:
        what = "attacks.adaptive_max_images" if run.config.attacks.adaptive_max_images else "every evaluation image"
        rec.update(outcome="cap", detail=f"still undecided on {images} attacked images, the cap ({what})")
        return None
    if not run.torch_ok:
        rec.update(outcome="stopped", detail="no PyTorch model of the base: no attack can be crafted on more images")
        return None
    target = gate.images_to_decide or cap  # None: the value sits on the budget
    rec.update(outcome="cap", detail="undecided; more images planned")
    return Cell(cand, dev, images, min(cap, max(target, images + max(MIN_STEP, math.ceil(images / 4)))))


def _plan(record: dict, cells: list[Cell], cap: int, samples: int, run: RunContext) -> list[tuple[dict, dict]]:
    """The rounds to run now and their members (candidate -> devices): each cell goes on with
    the round that starts at its images, or a new one that does. A round never spans
    ``attacks.samples`` (below it the transfer sets exist; past it the base is attacked too)."""
    rounds = record["rounds"]
    out: dict[int, dict[str, list[str]]] = {}
    for start in sorted({c.images for c in cells}):
        group = [c for c in cells if c.images == start]
        rnd = next((r for r in rounds if r["start"] == start), None)
        if rnd is None and any(r["start"] < start < r["end"] for r in rounds):
            for c in group:  # a worst case that ends inside a round (cannot happen when they line up)
                cell = record["cells"][c.candidate][c.device]
                cell.update(outcome="stopped", detail=f"its {start} images end inside an adaptive round")
            continue
        if rnd is None:
            nxt = min([r["start"] for r in rounds if r["start"] > start] + [cap])
            end = min(max(c.target for c in group), nxt)
            if start < samples < end:
                end = samples
            rnd = {
                "round": len(rounds) + 1,
                "start": start,
                "end": end,
                "transfer": start >= samples,
                "members": {},
                "measured": {},
            }
            rounds.append(rnd)
        out.setdefault(rnd["round"], {})
        for c in group:
            devs = rnd["members"].setdefault(c.candidate, [])
            if c.device not in devs:
                devs.append(c.device)
            out[rnd["round"]].setdefault(c.candidate, []).append(c.device)
            cell = record["cells"][c.candidate][c.device]
            cell["expect"] = rnd["end"]
            cell["rounds"] = cell.get("rounds", 0) + 1
    write_record(run.store, record)  # the plan first: a re-run finishes these rounds
    by_number = {r["round"]: r for r in rounds}
    return [(by_number[k], members) for k, members in sorted(out.items())]


def _round_context(run: RunContext, rnd: dict) -> RunContext:
    """The round as a run folder: its images, the base's outputs on them, the candidates'
    manifests pointing at the run's artifacts, and the study with the round's image counts
    (and its own seed, so no round repeats another's random starts)."""
    start, end = int(rnd["start"]), int(rnd["end"])
    rs = round_store(run.store, int(rnd["round"]))
    if rs.load_arrays("eval") is None:
        data = run.arrays("eval")
        rs.save_arrays("base_logits", logits=run.arrays("base_logits")["logits"][start:end])
        rs.save_arrays("eval", x=data["x"][start:end], y=data["y"][start:end])
    cfg = run.config
    attacks = cfg.attacks.model_copy(
        update={"samples": end - start, "whitebox_samples": end - start, "adaptive": False, "adaptive_max_images": None}
    )
    ctx = RunContext(cfg.replace(seed=cfg.seed + int(rnd["round"]), attacks=attacks), rs.root, ui=run.ui)
    ctx.torch_ok = run.torch_ok
    return ctx


def _round_built(run: RunContext, ctx: RunContext, built: list[Built]) -> list[Built]:
    """The candidates as the round's folder sees them: manifests whose artifact paths lead back
    to the run's artifacts (relative, so the run folder can move)."""
    out = []
    for b in built:
        manifest = dict(b.manifest)
        if b.artifact:
            path = os.path.relpath(run.run_dir / b.artifact["path"], ctx.run_dir)
            manifest["artifact"] = dict(b.artifact, path=path)
        atomic_write_json(ctx.store.manifest_path(b.name), manifest)
        out.append(Built(b.config, manifest))
    return out


def _run_round(
    run: RunContext,
    subject: Subject,
    devices: dict[str, Any],
    built: list[Built],
    record: dict,
    rnd: dict,
    members: dict[str, list[str]],
) -> None:
    """One round for *members* (candidate -> devices): its sets crafted, then replayed on each
    device; each replay recorded in ``measured`` as it finishes."""
    from edgebench.devices.registry import open_device

    ctx = _round_context(run, rnd)
    here = _round_built(run, ctx, built)
    start, end = int(rnd["start"]), int(rnd["end"])
    names = sorted(c for c, devs in members.items() if devs)
    run.ui("status", {"text": f"adaptive round {rnd['round']}: images {start}-{end - 1} for {', '.join(names)}"})
    sets = []
    if rnd["transfer"]:
        data = ctx.arrays("eval")
        view = dataclasses.replace(
            subject, split=dataclasses.replace(subject.split, x_eval=data["x"], y_eval=data["y"])
        )
        sets = craft_transfer(ctx, view)
    base = next((b for b in here if b.is_base), None)
    pairwise = any(s.definition.pairwise for s in ctx.config.attacks.suite)
    craft_whitebox(ctx, [b for b in here if b.name in names or (pairwise and b is base)])
    todo: dict[str, list[Built]] = {}
    for b in here:
        for dev in members.get(b.name, []):
            todo.setdefault(dev, []).append(b)
    for dev, cands in todo.items():
        if rnd["transfer"] and base is not None and dev not in rnd["measured"].get(base.name, []):
            cands = [base, *cands]  # the base's worst case on the same new images
        per = 1 + int("whitebox" in ctx.config.attacks.settings)  # replay (and white-box replay) each
        ctx.ui("task", {"id": "measure", "text": f"adaptive round {rnd['round']} on {dev}", "total": per * len(cands)})
        with open_device(devices[dev]) as device:
            for b in cands:
                measure_candidate(ctx, device, devices[dev], b, sets, replays_only=True)
                done = rnd["measured"].setdefault(b.name, [])
                if dev not in done:
                    done.append(dev)
                write_record(run.store, record)
        ctx.ui("done", {"id": "measure"})


def _summary(run: RunContext, record: dict) -> None:
    """One status line per cell adaptive sampling touched."""
    for cand, devs in record["cells"].items():
        for dev, cell in devs.items():
            run.ui(
                "status",
                {
                    "text": f"adaptive: {cand} on {dev}: {cell.get('images_before')} -> {cell.get('images')} "
                    f"images in {cell.get('rounds', 0)} round(s): {cell.get('outcome')} ({cell.get('detail')})"
                },
            )


__all__ = ["adapt"]
