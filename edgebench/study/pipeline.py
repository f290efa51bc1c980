"""``edgebench run``: the stages composed, with resume.

subject -> candidates (compress + export + check) -> attacks (on the base model) ->
per device: profile and replay every candidate through the agent -> results.json -> report.
Each finished measurement is written at once (see :mod:`edgebench.study.store`); a re-run
skips everything already on disk.

The stages are public functions of a :class:`~edgebench.study.context.RunContext`
(:func:`~edgebench.study.subject_stage.prepare_subject`, :func:`~edgebench.study.build.build`,
:func:`~edgebench.study.attack.craft_transfer`, :func:`~edgebench.study.attack.craft_whitebox`,
:func:`~edgebench.study.measure.measure_candidate`, :meth:`RunContext.write_results`).
:class:`Pipeline` is the context every driver holds; :func:`run_stages` is the one place the
stage order is written, and an engine decides only where each stage's work runs (this process:
:class:`InProcess`; a Ray cluster: :mod:`edgebench.scale.engine_ray`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgebench.study.adaptive import adapt
from edgebench.study.attack import craft_transfer, craft_whitebox
from edgebench.study.build import build, build_all
from edgebench.study.config import CandidateConfig, StudyConfig, study_from_dict
from edgebench.study.context import AttackSetRef, Built, Measured, NeedsTorch, RunContext, UiFn, log_only
from edgebench.study.measure import measure_candidate, measure_devices, time_rounds
from edgebench.study.subject_stage import prepare_subject
from edgebench.subject.zoo import Subject

log = logging.getLogger(__name__)


def reread_study(record: dict) -> dict:
    """A stored study record read with this edgebench's schema: keys added since take their
    defaults (what the older edgebench did), so the folder it binds still resumes."""
    return study_from_dict(record).to_dict()


@dataclass
class Pipeline(RunContext):
    """One study in one run folder: the stages as public methods (each a call of the stage
    function on this context) and :meth:`run`, all of them in order."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.subject: Subject | None = None  # loaded once by prepare()

    def run(self) -> dict:
        """Every stage in this process; returns the final results (also in results.json)."""
        t0 = time.perf_counter()
        results = run_stages(self, InProcess())
        self.ui("status", {"text": f"done in {time.perf_counter() - t0:.1f} s"})
        return results

    def validate(self) -> None:
        """Refuse, before any work, recipes this model or data cannot support, so a mistake in
        the study costs a second, not a half-finished run (every spec was parsed with the study)."""
        from edgebench.study.environment import resolve_host_device
        from edgebench.subject.sources import check_recipes

        cfg = self.config
        check_recipes(cfg.model, cfg.data, cfg.candidates)  # e.g. pruning a TorchScript model
        resolve_host_device(cfg.host.device)  # host.device: cuda on a machine without one, in one line

    def prepare(self) -> Subject:
        """Bind the run folder to this study and load the subject (model + data)."""
        self.validate()
        self.store.bind_study(self.config.to_dict(), reread=reread_study)
        self.ui("status", {"text": f"run folder {self.run_dir}"})
        return self.load_subject()

    def adopt(self, subject: Subject) -> None:
        """Use a subject loaded elsewhere (a Ray worker loads it once for all its tasks)."""
        self.subject = subject
        self.torch_ok = subject.model is not None

    def load_subject(self) -> Subject:
        """The subject stage (once per pipeline)."""
        if self.subject is None:
            self.subject = prepare_subject(self)
        return self.subject

    def build(self, cand: CandidateConfig, stems: dict[str, Any] | None = None) -> Built:
        """The build stage for one candidate (*stems*: fp32 modules shared across candidates)."""
        return build(self, cand, self.load_subject(), {} if stems is None else stems)

    def craft(self) -> list[AttackSetRef]:
        """The transfer attack stage: sets crafted on the base model."""
        return craft_transfer(self, self.load_subject())

    def craft_whitebox(self, built: list[Built]) -> None:
        """White-box sets on each built candidate (before any of them is measured)."""
        craft_whitebox(self, built)

    def measure(self, devices: list, built: list[Built], attack_sets: list[AttackSetRef]) -> None:
        """The measurement stage on every device (white-box sets crafted first)."""
        measure_devices(self, devices, built, attack_sets)

    def measure_one(self, device: Any, b: Built, attack_sets: list[AttackSetRef]) -> Measured:
        """Every measurement of one candidate on one open device; what was measured now."""
        return measure_candidate(self, device, device.spec, b, attack_sets)

    def time_rounds(self, device: Any, built: list[Built]) -> list[str]:
        """The interleaved timing pass of *built* on one open device (after :meth:`measure_one`
        of each); the candidates whose profile it completed."""
        return time_rounds(self, device, built)

    def compress_stage(self) -> list[Built]:
        """``edgebench compress``: candidates built, exported and checked; nothing measured."""
        built = build_all(self, self.prepare())
        self.write_results()
        return built

    def attack_stage(self) -> list[AttackSetRef]:
        """``edgebench attack``: adversarial sets crafted on the base model."""
        self.prepare()
        sets = self.craft()
        self.write_results()
        return sets


class Engine(Protocol):
    """Where a study's work runs; each call returns when its work is on disk."""

    parallel: int  # how many builds are worth asking for at once

    def build(self, pipe: Pipeline, cands: list[CandidateConfig]) -> list[Built]: ...

    def attacks(self, pipe: Pipeline) -> list[AttackSetRef]: ...

    def measure(self, pipe: Pipeline, devices: list, built: list[Built], attack_sets: list[AttackSetRef]) -> None: ...

    def close(self) -> None: ...


class InProcess:
    """Every stage in this process, in order."""

    parallel = 1

    def __init__(self) -> None:
        self.stems: dict[str, Any] = {}

    def build(self, pipe: Pipeline, cands: list[CandidateConfig]) -> list[Built]:
        return [pipe.build(c, self.stems) for c in cands]

    def attacks(self, pipe: Pipeline) -> list[AttackSetRef]:
        return pipe.craft()

    def measure(self, pipe: Pipeline, devices: list, built: list[Built], attack_sets: list[AttackSetRef]) -> None:
        pipe.measure(devices, built, attack_sets)

    def close(self) -> None:
        pass


def run_stages(pipe: Pipeline, engine: Any) -> dict:
    """The stage order, written once: devices resolved (an unknown one fails before any work),
    subject, build, transfer attacks, results.json, measurements (white-box sets first), adaptive
    sampling (``attacks.adaptive``: more images for undecided verdicts), final results and report. An engine that overlaps stages (Ray: a candidate is measured as soon as
    it is built) offers ``run_overlapped`` and is handed the same stages in the same order."""
    from edgebench.devices.inventory import get_device

    devices = [get_device(name) for name in pipe.config.devices]
    pipe.prepare()
    adaptive = pipe.config.attacks.adaptive
    overlapped = getattr(engine, "run_overlapped", None)
    if overlapped is not None:
        results = overlapped(pipe, devices)
    else:
        built = engine.build(pipe, list(pipe.config.candidates))
        attack_sets = engine.attacks(pipe)
        pipe.write_results()
        engine.measure(pipe, devices, built, attack_sets)
        results = pipe.write_results(final=not adaptive)
    if not adaptive:
        return results
    # adaptive sampling: more images for INCONCLUSIVE verdicts, in rounds, on this process
    # (its crafting is the driver's, as white-box crafting is; its replays open the devices here)
    adapt(pipe, pipe.load_subject(), devices, results)
    return pipe.write_results(final=True)


def default_run_dir(cfg: StudyConfig, base: Path = Path("reports")) -> Path:
    return base / f"{cfg.name}-{cfg.model.label}-{cfg.data.label}"


__all__ = [
    "AttackSetRef",
    "Built",
    "Measured",
    "Engine",
    "InProcess",
    "NeedsTorch",
    "Pipeline",
    "UiFn",
    "default_run_dir",
    "log_only",
    "run_stages",
]
