"""A device runs agent jobs. Local and SSH devices share this interface and the job protocol."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from edgebench.agent.protocol import Job, SessionJob
from edgebench.backends.options import check_options
from edgebench.devices.inventory import DeviceSpec
from edgebench.devices.readiness import refusal
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.devices.session import QuerySession

ProgressFn = Callable[[dict], None]
J = TypeVar("J", Job, SessionJob)


def check_backend(job: Job | SessionJob) -> None:
    """Refuse, on the host before any file moves, a job whose backend is unknown or is given an
    option it does not take (the agent checks again; this saves the trip)."""
    options = getattr(job, "options", None)  # an env job opens no backend
    if options is not None:
        from edgebench.backends.registry import backend_class

        cls = backend_class(cast(Any, job).backend)
        check_options(cls.name, options, cls.capabilities.options)


class Device(ABC):
    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.job_seconds = 0.0  # wall time spent inside run_job: the agent's share of a run

    @property
    def name(self) -> str:
        return self.spec.name

    def with_device_defaults(self, job: J) -> J:
        """*job* with the device's own settings filled in where the job leaves them open
        (today: the inventory's ``threads``). Applied once, by :meth:`run_job` and
        :meth:`open_session`, before a device kind sees the job."""
        options = getattr(job, "options", None)  # an env job opens no backend
        if options is None or not self.spec.threads or options.threads:
            return job
        return dataclasses.replace(cast(Any, job), options=dataclasses.replace(options, threads=self.spec.threads))

    def run_job(self, job: Job, on_progress: ProgressFn | None = None) -> dict:
        """Run *job* (host paths in it) in an agent on the device; return its result dict.

        Files the job reads are made available on the device first; files it writes
        (``result``, ``logits``) end up at their host paths, written atomically.
        Raises :class:`EdgebenchError` when the job fails with a user error.
        """
        check_backend(job)
        job = self.with_device_defaults(job)
        started = time.perf_counter()
        try:
            return self._run_job(job, on_progress)
        finally:
            self.job_seconds += time.perf_counter() - started

    @abstractmethod
    def _run_job(self, job: Job, on_progress: ProgressFn | None) -> dict:
        """The device kind's way of running one agent job, device defaults applied (see :meth:`run_job`)."""

    def check_ready(self, answer: dict) -> None:
        """Raise the one-line :class:`~edgebench.devices.readiness.DeviceNotReady` when the agent
        answered that its Python lacks a module (see ``agent/__main__.py``); else do nothing."""
        problem = refusal(self.spec, answer)
        if problem is not None:
            raise problem

    def open_session(self, job: SessionJob) -> QuerySession:
        """A persistent agent on the device with *job*'s artifact loaded (see devices/session.py);
        the backend is checked on the host and the device's defaults applied first, as for jobs."""
        check_backend(job)
        return self._open_session(self.with_device_defaults(job))

    def _open_session(self, job: SessionJob) -> QuerySession:
        """The device kind's way of starting a query session (see :meth:`open_session`)."""
        raise EdgebenchError(f"device '{self.name}' ({self.spec.kind}) does not support query sessions")

    def close(self) -> None:  # noqa: B027 - optional hook: most devices hold nothing
        """Release connections."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
