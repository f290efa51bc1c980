"""The attack stage on the host: transfer sets crafted on the base model, and white-box sets
crafted on each candidate's own artifact (:mod:`edgebench.study.whitebox`); both resumable."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgebench.study.context import AttackSetRef, Built, RunContext
from edgebench.subject.zoo import Subject

log = logging.getLogger(__name__)


def on_host_device(model: Any, device: Any) -> Any:
    """*model* on the run's host device: itself on the CPU, else a copy moved there once (the
    subject's module stays on the CPU, where builds and export read it)."""
    import copy

    return model if device.type == "cpu" else copy.deepcopy(model).to(device)


def craft_transfer(run: RunContext, subject: Subject) -> list[AttackSetRef]:
    """Adversarial sets crafted on the base model (the transfer threat model), stored in the run
    folder and reused when unchanged; none (with the reason shown) without a PyTorch model."""
    from edgebench.robustness.store import craft_and_store

    cfg = run.config.attacks
    specs = [s for s in cfg.suite if not s.definition.pairwise]  # diva: white-box, on each candidate
    split = subject.split
    if subject.model is None:  # transfer sets are crafted on the base in PyTorch
        run.ui(
            "status",
            {"text": f"transfer attacks: UNMEASURED: crafting needs the model in PyTorch, and {subject.torch_reason}"},
        )
        return []
    n = min(cfg.samples, len(split.x_eval))
    # one unit per image per spec; craft_and_store reports (spec label, images done, images total)
    run.ui("task", {"id": "attack", "text": f"attacks on base ({n} images)", "total": len(specs) * n})
    seen: dict[str, int] = {}

    def progress(label: str, done: int, total: int) -> None:
        step = done - seen.get(label, 0)
        seen[label] = done
        if step > 0:
            run.ui("advance", {"id": "attack", "by": step * n / max(total, 1)})

    run.forget_attack_sets()  # crafted or re-used below: verified once more, then cached
    report = craft_and_store(
        on_host_device(subject.model, run.host_device),
        split.x_eval[:n],
        split.y_eval[:n],
        specs,
        run.store.attacks_dir,
        indices=np.arange(n),
        batch_size=cfg.batch_size,
        seed=run.config.seed,
        on_progress=progress,
    )
    run.ui("done", {"id": "attack"})
    if report.crafted:
        run.ui("status", {"text": f"crafted {len(report.crafted)} sets, reused {len(report.skipped)}"})
    return [
        AttackSetRef.of(dict(s, path=str((run.store.attacks_dir / s["path"]).relative_to(run.run_dir))))
        for s in report.sets
    ]


def craft_whitebox(run: RunContext, built: list[Built]) -> None:
    """White-box sets crafted on each candidate's own model (see edgebench.study.whitebox),
    before any of them is measured; resumable, so a set already crafted is kept. Every engine
    calls this (through :func:`edgebench.study.measure.measure_devices` or directly) so no candidate is measured without them."""
    from edgebench.study.whitebox import craft_all

    if "whitebox" not in run.config.attacks.settings or not built:
        return
    data = run.arrays("eval")

    cands = [
        (
            b.config.name,
            run.run_dir / b.manifest["artifact"]["path"],
            b.is_base,
        )
        for b in built
        if b.manifest.get("artifact")  # a candidate that could not be built has nothing to attack
    ]
    craft_all(
        run.store,
        cands,
        data["x"],
        data["y"],
        run.config.attacks,
        run.config.seed,
        run.ui,
        device=run.host_device,
    )


__all__ = ["craft_transfer", "craft_whitebox"]
