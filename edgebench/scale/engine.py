"""Engines: who runs a study's tasks. ``local`` runs them in this process (the pipeline as it
is); ``ray`` (:mod:`edgebench.scale.engine_ray`) sends them to a Ray cluster. Both write through
the same :class:`~edgebench.study.store.RunStore`, so a run folder does not care which ran it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from edgebench.errors import EdgebenchError
from edgebench.study.config import CandidateConfig
from edgebench.study.pipeline import Built, Pipeline

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


class Engine(Protocol):
    """The three kinds of work a study has; each call returns when its work is on disk."""

    parallel: int  # how many builds are worth asking for at once

    def adopt(self, subject: Any) -> None: ...

    def build(self, pipe: Pipeline, cands: list[CandidateConfig]) -> list[Built]: ...

    def attacks(self, pipe: Pipeline) -> list[dict]: ...

    def measure(self, pipe: Pipeline, devices: list, built: list[Built], attack_sets: list[dict]) -> None: ...

    def close(self) -> None: ...


class LocalEngine:
    """Everything in this process, in order (the sequential pipeline)."""

    parallel = 1

    def __init__(self) -> None:
        self._subject: Any = None
        self._stems: dict[str, Any] = {}

    def adopt(self, subject: Any) -> None:
        """Use the subject the driver already loaded (``Pipeline.prepare``)."""
        self._subject = subject

    def _subj(self, pipe: Pipeline) -> Any:
        if self._subject is None:
            self._subject = pipe._subject()
        return self._subject

    def build(self, pipe: Pipeline, cands: list[CandidateConfig]) -> list[Built]:
        subject = self._subj(pipe)
        return [pipe._build_one(c, subject, self._stems) for c in cands]

    def attacks(self, pipe: Pipeline) -> list[dict]:
        return pipe._attacks(self._subj(pipe))

    def measure(self, pipe: Pipeline, devices: list, built: list[Built], attack_sets: list[dict]) -> None:
        pipe._measure(devices, built, attack_sets)

    def close(self) -> None:
        pass


def make_engine(name: str, address: str | None = None, devices: tuple[str, ...] = ()) -> Engine:
    """The engine called *name*; ``ray`` connects to *address* (``None``: a local Ray)."""
    if name == "local":
        if address:
            raise EdgebenchError("--ray-address: only meaningful with --engine ray")
        return LocalEngine()
    if name == "ray":
        from edgebench.scale.engine_ray import RayEngine

        return RayEngine(address, devices)
    raise EdgebenchError(f"--engine: expected one of {', '.join(ENGINES)}, found {name!r}")


def run_with_engine(pipe: Pipeline, engine: Engine) -> dict:
    """``edgebench run`` through *engine*: the same stages and files as :meth:`Pipeline.run`."""
    from edgebench.devices.inventory import get_device

    devices = [get_device(name) for name in pipe.config.devices]
    engine.adopt(pipe.prepare())
    run_study = getattr(engine, "run_study", None)
    if run_study is not None:  # an engine that pipelines the stages itself (ray)
        return run_study(pipe, devices)
    built = engine.build(pipe, list(pipe.config.candidates))
    attack_sets = engine.attacks(pipe)
    pipe._write_results()
    engine.measure(pipe, devices, built, attack_sets)
    return pipe._write_results(final=True)


def run_on_engine(pipe: Pipeline, engine: str, address: str | None) -> dict:
    """Open the engine called *engine*, run the study through it, close it."""
    eng = make_engine(engine, address, pipe.config.devices)
    try:
        return run_with_engine(pipe, eng)
    finally:
        eng.close()
