"""Parse trtexec's performance output (TensorRT 7, 8.x and 10) into edgebench's latency keys.

Users already trust trtexec; reading its log lets edgebench put a trtexec run next to its own
numbers. Every summary becomes a dict with the keys of
:func:`edgebench.measure.stats.summarize_latency` (``min, mean, std, p50, p90, p95, p99, max,
cv, unstable, samples, throughput_ips``); a value trtexec did not print is None, never 0.
"""

from __future__ import annotations

import re
from typing import Any

from edgebench.measure.stats import CI_PERCENTILES, PERCENTILES, UNSTABLE_CV

_PREFIX = re.compile(r"^\s*(?:\[[^\]]*\]\s*)*")  # "[10/03/2024-10:47:59] [I] "
_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_FIELD = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*" + _NUM + r"\s*ms")
_SUMMARY = re.compile(
    r"^(Latency|GPU Compute Time|Host Latency|Enqueue Time|H2D Latency|D2H Latency|End-to-End Host Latency):\s*(.*)$"
)
_THROUGHPUT = re.compile(r"^Throughput:\s*" + _NUM + r"\s*qps")
_WALLTIME = re.compile(r"^Total Host Walltime:\s*" + _NUM + r"\s*s")
_TRT7 = re.compile(r"^mean:\s*" + _NUM + r"\s*ms\s*\(end to end\s*" + _NUM + r"\s*ms\)")
_AVERAGE = re.compile(
    r"^Average on\s+(\d+)\s+runs\s*-\s*GPU latency:\s*"
    + _NUM
    + r"\s*ms\s*-\s*Host latency:\s*"
    + _NUM
    + r"\s*ms(?:\s*\(enqueue\s*"
    + _NUM
    + r"\s*ms\))?"
)
_UNSTABLE = re.compile(r"is unstable, with coefficient of variance\s*=\s*" + _NUM + r"\s*%")
_ENQUEUE_BOUND = re.compile(r"bound by Enqueue Time", re.IGNORECASE)

# trtexec section names -> edgebench keys
SECTIONS = {
    "Latency": "latency_ms",
    "Host Latency": "latency_ms",
    "End-to-End Host Latency": "end_to_end_host_ms",
    "GPU Compute Time": "gpu_compute_ms",
    "Enqueue Time": "enqueue_ms",
    "H2D Latency": "h2d_ms",
    "D2H Latency": "d2h_ms",
}


def empty_latency() -> dict:
    """The latency dict with every key of ``summarize_latency`` set to None."""
    out: dict[str, Any] = {"min": None, "mean": None, "std": None}
    for p in PERCENTILES:
        out[f"p{p}"] = None
    for p in CI_PERCENTILES:  # trtexec prints no samples, so no interval can be derived
        out[f"p{p}_ci"] = None
    out["p99_insufficient"] = None
    out.update({"max": None, "cv": None, "unstable": None, "samples": None, "throughput_ips": None})
    return out


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\n")).strip()


def parse_latency_fields(text: str) -> dict:
    """``min = 5.3 ms, max = ..., median = ..., percentile(99%) = ...`` -> latency dict."""
    out = empty_latency()
    for m in _FIELD.finditer(text):
        key, pct, value = m.group(1), m.group(2), float(m.group(3))
        if key == "median":
            out["p50"] = value
        elif pct is not None:
            name = f"p{int(float(pct))}" if float(pct).is_integer() else f"p{pct}"
            out[name] = value
        else:
            out[key] = value
    return out


def parse_line(line: str) -> tuple[str, dict] | None:
    """One trtexec line -> ``(kind, values)``, or None when it carries no performance number.

    Kinds: a key of :data:`SECTIONS` values (``latency_ms``, ``gpu_compute_ms``, ...),
    ``throughput``, ``walltime``, ``trt7_mean``, ``average``, ``unstable``, ``enqueue_bound``.
    """
    s = _strip(line)
    if not s or s.startswith("#"):
        return None
    m = _SUMMARY.match(s)
    if m:
        return SECTIONS[m.group(1)], parse_latency_fields(m.group(2))
    m = _THROUGHPUT.match(s)
    if m:
        return "throughput", {"qps": float(m.group(1))}
    m = _WALLTIME.match(s)
    if m:
        return "walltime", {"seconds": float(m.group(1))}
    m = _TRT7.match(s)
    if m:
        lat = empty_latency()
        lat["mean"] = float(m.group(1))
        return "trt7_mean", {"latency_ms": lat, "end_to_end_ms": float(m.group(2))}
    m = _AVERAGE.match(s)
    if m:
        return "average", {
            "runs": int(m.group(1)),
            "gpu_ms": float(m.group(2)),
            "host_ms": float(m.group(3)),
            "enqueue_ms": float(m.group(4)) if m.group(4) is not None else None,
        }
    m = _UNSTABLE.search(s)
    if m:
        return "unstable", {"cv": float(m.group(1)) / 100.0, "what": s.split(" is unstable")[0].lstrip("* ").strip()}
    if _ENQUEUE_BOUND.search(s):
        return "enqueue_bound", {"message": s.lstrip("* ").strip()}
    return None


def parse_trtexec(text: str, batch: int = 1) -> dict:
    """A whole trtexec log -> ``{latency_ms, gpu_compute_ms, ..., throughput_qps, host_walltime_s,
    averages, warnings}``. Sections that were not printed are absent; the last summary wins.

    The ``unstable`` flag of a section is set from trtexec's own CV warning when it printed one
    (GPU compute), else from edgebench's rule once a CV is known. trtexec's throughput is in
    queries (batches) per second; ``throughput_ips`` is that times *batch*.
    """
    out: dict[str, Any] = {"averages": [], "warnings": {"unstable_cv": None, "enqueue_bound": False}}
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed is None:
            continue
        kind, values = parsed
        if kind in SECTIONS.values():
            out[kind] = values
        elif kind == "throughput":
            out["throughput_qps"] = values["qps"]
        elif kind == "walltime":
            out["host_walltime_s"] = values["seconds"]
        elif kind == "trt7_mean":
            out["latency_ms"] = values["latency_ms"]
            out["end_to_end_ms"] = values["end_to_end_ms"]
        elif kind == "average":
            out["averages"].append(values)
        elif kind == "unstable":
            out["warnings"]["unstable_cv"] = values["cv"]
        elif kind == "enqueue_bound":
            out["warnings"]["enqueue_bound"] = True
    cv = out["warnings"]["unstable_cv"]
    if cv is not None and "gpu_compute_ms" in out:
        out["gpu_compute_ms"]["cv"] = cv
        out["gpu_compute_ms"]["unstable"] = cv > UNSTABLE_CV
    if "throughput_qps" in out and "latency_ms" in out:
        out["latency_ms"]["throughput_ips"] = out["throughput_qps"] * batch
    return out
