"""Roofline estimate: how much of the device's peak a measured latency achieves.

``achieved GOP/s = 2 * MACs per item * batch / latency``. The device profile
(``devices/*.yaml``, key ``profile``) gives ``peak_gops`` per precision and
``memory_bandwidth_gbs``. With an estimate of the bytes one batch moves (weights once plus
every activation written and read once), the arithmetic intensity says whether the model is
*memory*- or *compute*-bound on that device (Williams, Waterman, Patterson 2009): below the
ridge point ``peak / bandwidth`` the memory roof is the lower one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgebench.errors import EdgebenchError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _peak(profile: Mapping[str, Any], precision: str) -> float | None:
    peaks = profile.get("peak_gops") or {}
    if not isinstance(peaks, Mapping):
        raise EdgebenchError(f"device profile: expected peak_gops to be a mapping precision -> GOP/s, found {peaks!r}")
    value = peaks.get(precision)
    return float(value) if value is not None else None


def peak_kind(profile: Mapping[str, Any]) -> str | None:
    """Whether the profile's peak was ``measured`` on the device or is ``theoretical`` (a
    datasheet or flags x clock figure, the default for a YAML number without a source)."""
    if not profile.get("peak_gops"):
        return None
    kind = profile.get("peak_kind")
    if kind in ("measured", "theoretical"):
        return str(kind)
    source = str(profile.get("peak_source") or "").strip().lower()
    return "measured" if source.startswith("measured") else "theoretical"


def roofline(
    macs_per_item: int | None,
    latency_p50_ms: float | None,
    batch: int,
    precision: str,
    device_profile: Mapping[str, Any] | None,
    bytes_per_batch: float | None = None,
) -> dict | None:
    """Achieved vs peak throughput of one measured run, or None if MACs or latency are unknown.

    Returns ``{achieved_gops, peak_gops, peak_kind, share_of_peak, precision,
    memory_bandwidth_gbs, arithmetic_intensity, ridge_intensity, attainable_gops, bound}``
    (``peak_kind``: ``measured`` or ``theoretical``, see :func:`peak_kind`); values the device
    profile does not give (or *bytes_per_batch* is missing for) are None, never 0.
    """
    if precision not in PRECISIONS:
        raise EdgebenchError(f"roofline: precision expected one of {list(PRECISIONS)}, found {precision!r}")
    if batch < 1:
        raise EdgebenchError(f"roofline: batch expected >= 1, found {batch}")
    if not macs_per_item or latency_p50_ms is None or latency_p50_ms <= 0:
        return None
    profile = device_profile or {}
    ops = 2.0 * float(macs_per_item) * batch
    achieved = ops / (latency_p50_ms / 1e3) / 1e9
    peak = _peak(profile, precision)
    bw = profile.get("memory_bandwidth_gbs")
    bw = float(bw) if bw is not None else None
    intensity = ops / bytes_per_batch if bytes_per_batch else None
    ridge = peak / bw if peak and bw else None
    attainable = min(peak, intensity * bw) if peak and bw and intensity is not None else None
    bound = None
    if intensity is not None and ridge is not None:
        bound = "memory" if intensity < ridge else "compute"
    return {
        "achieved_gops": achieved,
        "peak_gops": peak,
        "peak_kind": peak_kind(profile) if peak else None,
        "share_of_peak": achieved / peak if peak else None,
        "precision": precision,
        "memory_bandwidth_gbs": bw,
        "arithmetic_intensity": intensity,
        "ridge_intensity": ridge,
        "attainable_gops": attainable,
        "bound": bound,
    }


def bytes_per_batch(weight_bytes: int | None, activation_bytes_per_item: int | None, batch: int) -> float | None:
    """Memory traffic estimate of one batch: weights read once, activations written and read once."""
    if weight_bytes is None or activation_bytes_per_item is None:
        return None
    return float(weight_bytes) + 2.0 * float(activation_bytes_per_item) * batch
