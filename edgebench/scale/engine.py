"""Engines: who runs a study's tasks. ``local`` runs them in this process (the pipeline as it
is); ``ray`` (:mod:`edgebench.scale.engine_ray`) sends them to a Ray cluster. Both write through
the same :class:`~edgebench.study.store.RunStore`, so a run folder does not care which ran it.
"""

from __future__ import annotations

import logging

from edgebench.errors import EdgebenchError
from edgebench.study.pipeline import Engine, InProcess, Pipeline, run_stages

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


# the engine protocol and the in-process engine live with the stage order (study/pipeline.py)
LocalEngine = InProcess


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
    """``edgebench run`` through *engine*: the same stages, order and files as :meth:`Pipeline.run`
    (:func:`edgebench.study.pipeline.run_stages`)."""
    return run_stages(pipe, engine)


def run_on_engine(pipe: Pipeline, engine: str, address: str | None) -> dict:
    """Open the engine called *engine*, run the study through it, close it."""
    eng = make_engine(engine, address, pipe.config.devices)
    try:
        return run_with_engine(pipe, eng)
    finally:
        eng.close()
