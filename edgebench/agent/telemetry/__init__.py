"""Telemetry sampled during a measurement window (psutil everywhere; tegrastats/jtop on
Jetsons; NVML on discrete GPUs). Runs inside the agent: standard library, numpy and psutil only
(jetson-stats and pynvml are used only where importable).

A reading that is not available is reported as ``None`` (unavailable), never as zero. Every
sampler's ``stop()`` returns a dict with at least the keys of
:data:`edgebench.agent.telemetry.base.KEYS`.

``make_sampler("auto")`` picks the richest source present, in this order:
jtop (jetson-stats service) > tegrastats (on PATH) > NVML (loads and sees a GPU) > psutil.
The sources it skipped, and why, are listed under ``fallbacks`` in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edgebench.agent.telemetry.base import Sampler, complete
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

AUTO_ORDER = ("jtop", "tegrastats", "nvml", "psutil")
KINDS = ("auto", "none", *AUTO_ORDER)


class _Completing:
    """Wraps a sampler so its result carries every key and the auto-selection notes."""

    def __init__(self, inner: Sampler, fallbacks: list[dict]) -> None:
        self.inner = inner
        self.fallbacks = fallbacks

    @property
    def source(self) -> str:
        return getattr(self.inner, "source", type(self.inner).__name__)

    @property
    def interval_s(self) -> float | None:
        return getattr(self.inner, "interval_s", None)

    @property
    def power_trace(self) -> Callable[[], tuple]:
        """The inner sampler's input-rail trace (AttributeError when it has none)."""
        return self.inner.power_trace  # type: ignore[attr-defined]

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> dict:
        out = complete(self.inner.stop())
        if self.fallbacks:
            out["fallbacks"] = self.fallbacks
        return out


def _psutil_reason() -> str | None:
    try:
        import psutil  # noqa: F401
    except ImportError as exc:
        return f"psutil not importable: {exc}"
    return None


def _tegrastats_reason() -> str | None:
    from edgebench.agent.telemetry.tegrastats import tegrastats_path

    return None if tegrastats_path() else "tegrastats not on PATH (not a Jetson, or PATH lacks /usr/bin)"


def _jtop_reason() -> str | None:
    from edgebench.agent.telemetry.jetson_stats import jtop_unavailable_reason

    return jtop_unavailable_reason()


def _nvml_reason() -> str | None:
    from edgebench.agent.telemetry.nvml import nvml_unavailable_reason

    return nvml_unavailable_reason()


# The sampler registry: source -> (module, class, why it is unavailable here or None). Adding a
# source is adding its module and one entry here (and its place in AUTO_ORDER).
SOURCES: dict[str, tuple[str, str, Callable[[], str | None]]] = {
    "jtop": ("edgebench.agent.telemetry.jetson_stats", "JtopSampler", _jtop_reason),
    "tegrastats": ("edgebench.agent.telemetry.tegrastats", "TegrastatsSampler", _tegrastats_reason),
    "nvml": ("edgebench.agent.telemetry.nvml", "NvmlSampler", _nvml_reason),
    "psutil": ("edgebench.agent.telemetry.base", "PsutilSampler", _psutil_reason),
    "none": ("edgebench.agent.telemetry.base", "NullSampler", lambda: None),
}


def _unavailable_reason(kind: str) -> str | None:
    if kind not in SOURCES:
        raise EdgebenchError(f"telemetry: unknown source {kind!r}, expected one of {list(KINDS)}")
    return SOURCES[kind][2]()


def _construct(kind: str) -> Callable[..., Sampler]:
    import importlib

    module, cls, _ = SOURCES[kind]
    return getattr(importlib.import_module(module), cls)


def _new(kind: str, interval_s: float | None) -> Sampler:
    cls = _construct(kind)
    return cls(interval_s=interval_s) if interval_s and kind != "none" else cls()


def make_sampler(kind: str | None = "auto", interval_s: float | None = None) -> Sampler:
    """The sampler for *kind*: "auto" picks the richest source present; "none" samples nothing.

    *interval_s* overrides the sampler's default sampling interval. An explicitly named source
    that is unavailable is an :class:`EdgebenchError` with the reason
    (the user asked for it); "auto" falls back and records why under ``fallbacks``.
    """
    kind = (kind or "auto").lower()
    if kind not in KINDS:
        raise EdgebenchError(f"telemetry: unknown source {kind!r}, expected one of {list(KINDS)}")
    if kind != "auto":
        reason = _unavailable_reason(kind)
        if reason:
            raise EdgebenchError(f"telemetry '{kind}' is unavailable: {reason}")
        return _Completing(_new(kind, interval_s), [])
    fallbacks: list[dict] = []
    for candidate in AUTO_ORDER:
        reason = _unavailable_reason(candidate)
        if reason is None:
            try:
                return _Completing(_new(candidate, interval_s), fallbacks)
            except EdgebenchError as exc:  # became unavailable between the check and the start
                reason = str(exc)
        fallbacks.append({"source": candidate, "reason": reason})
        log.info("telemetry %s unavailable: %s", candidate, reason)
    raise EdgebenchError(f"telemetry: no source available ({fallbacks})")
