"""How every number in a report is written. One place, so Markdown and HTML agree.

A value that was never measured (``None``) is always written :data:`UNMEASURED`, never 0.
"""

from __future__ import annotations

import math
from typing import Any

UNMEASURED = "unmeasured"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ms(value: Any) -> str:
    """Milliseconds: 3 decimals below 100 ms (edge latencies are often sub-millisecond)."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def num(value: Any, digits: int = 3) -> str:
    """A plain number with *digits* decimals."""
    v = _num(value)
    return UNMEASURED if v is None else f"{v:.{digits}f}"


def sci(value: Any) -> str:
    """Small differences (logit diffs) in scientific notation when tiny."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    if v == 0:
        return "0"
    return f"{v:.2e}" if abs(v) < 1e-3 else f"{v:.4f}"


def pct(value: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: 0.988 -> '98.8%'."""
    v = _num(value)
    return UNMEASURED if v is None else f"{100.0 * v:.{digits}f}%"


def pp(value: Any, digits: int = 1) -> str:
    """A difference of fractions in percentage points: 0.008 -> '0.8 pp'."""
    v = _num(value)
    return UNMEASURED if v is None else f"{100.0 * v:.{digits}f} pp"


def ci(bounds: Any) -> str:
    """A 95 % interval ``[lo, hi]`` of fractions as '[96.1%, 99.6%]'."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return UNMEASURED
    lo, hi = (_num(b) for b in bounds)
    if lo is None or hi is None:
        return UNMEASURED
    return f"[{pct(lo)}, {pct(hi)}]"


def mb(value: Any) -> str:
    v = _num(value)
    return UNMEASURED if v is None else f"{v:.1f}"


def count(value: Any) -> str:
    """An integer with thousands separators."""
    v = _num(value)
    return UNMEASURED if v is None else f"{int(round(v)):,}"


def si(value: Any) -> str:
    """A large count compactly: 61706 -> '61.7 K', 4.1e9 -> '4.10 G'."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= factor:
            scaled = v / factor
            return f"{scaled:.3g} {suffix}" if scaled < 100 else f"{scaled:.0f} {suffix}"
    return f"{v:g}"


def size(value: Any) -> str:
    """Bytes in binary units: 61234 -> '59.8 KiB'."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    for factor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if v >= factor:
            return f"{v / factor:.1f} {suffix}"
    return f"{int(v)} B"


def ips(value: Any) -> str:
    """Items per second."""
    v = _num(value)
    return UNMEASURED if v is None else f"{v:,.0f}"


def eps(norm: Any, value: Any) -> str:
    """An attack budget: L-inf as k/255 (how the literature writes it), other norms as numbers."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    if str(norm).lower() in ("linf", "l-inf", "inf"):
        k = v * 255.0
        if abs(k - round(k)) < 1e-3:
            return f"{int(round(k))}/255"
        return f"{k:.3g}/255"
    return f"{v:g}"


def flag(value: Any) -> str:
    if value is None:
        return UNMEASURED
    return "yes" if value else "no"


def text(value: Any) -> str:
    """Any JSON value as display text (lists joined, None as unmeasured)."""
    if value is None:
        return UNMEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items())
    return str(value)


def short_sha(value: Any, n: int = 12) -> str:
    return UNMEASURED if not value else str(value)[:n]
