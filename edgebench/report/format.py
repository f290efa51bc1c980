"""How every number in a report is written. One place, so Markdown and HTML agree.

A value that was never measured (``None``) is always written :data:`UNMEASURED`, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
    """Items per second, a plain number with thousands separators: 34740.2 -> '34,740';
    decimals only where a slow model needs them (12.34 -> '12.3', 0.456 -> '0.46')."""
    v = _num(value)
    if v is None:
        return UNMEASURED
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


# A timing mode as every table and line writes it (results.json keeps the key, ``end_to_end``).
MODES = {"end_to_end": "end-to-end", "compute": "compute"}


def mode(value: Any) -> str:
    """A latency mode for people: ``end_to_end`` -> 'end-to-end' (one spelling everywhere)."""
    if value is None:
        return UNMEASURED
    return MODES.get(str(value), str(value).replace("_", "-"))


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


def _criterion(*names: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda options: options.get("criterion") in names


def _finetuned(options: Mapping[str, Any]) -> bool:
    return bool(options.get("epochs"))


# Options that act only under another option's value, per recipe step: a recipe is written with
# the options that act (results.json keeps every option, resolved). A criterion's own options
# are named after it (``gap_*``, ``taylor_*``; tests/cli/test_output.py keeps this table in step
# with PruneSpec); ``seed`` draws the random criterion, GAP's PGD start and the samples that
# taylor and gap read. ``finetune`` options act only when it runs (``epochs`` > 0).
ACTS_WHEN: dict[str, dict[str, Callable[[Mapping[str, Any]], bool]]] = {
    "prune": {
        "gap_eps": _criterion("gap"),
        "gap_steps": _criterion("gap"),
        "gap_rel_stepsize": _criterion("gap"),
        "gap_samples": _criterion("gap"),
        "gap_train_mode": _criterion("gap"),
        "taylor_samples": _criterion("taylor"),
        "seed": _criterion("random", "taylor", "gap"),
        "layers": lambda options: options.get("layers", "all") != "all",  # said only when it narrows
    },
    "quantize": {"percentile": lambda options: options.get("calibration") == "percentile"},
    "finetune": {key: _finetuned for key in ("lr", "batch_size", "seed", "optimizer")},
}


def recipe(step: str, options: Mapping[str, Any] | None) -> str:
    """One compression step's options as a recipe cell: only those that are set (not null) and
    act under the others (:data:`ACTS_WHEN`); a nested step (``finetune``) in parentheses.
    ``recipe('prune', {'ratio': 0.5, 'criterion': 'l1', 'round_to': None, 'gap_eps': 0.03})``
    -> 'ratio=0.5, criterion=l1'."""
    if not options:
        return UNMEASURED if options is None else ""
    acts = ACTS_WHEN.get(step, {})
    parts = []
    for key, value in options.items():
        if value is None or (key in acts and not acts[key](options)):
            continue
        if isinstance(value, Mapping):
            parts.append(f"{key}({recipe(key, value)})")
        else:
            parts.append(f"{key}={text(value)}")
    return ", ".join(parts)


def export_check(check: Mapping[str, Any] | None) -> str:
    """An artifact's check against its source as a phrase: the ONNX checker, the fp32 max |diff|
    and the top-1 agreement (on the exact INT8 arithmetic too, where measured), on how many images."""
    if not check:
        return "not checked"
    parts = [f"onnx.checker {text(check.get('onnx_checker'))}"]
    if check.get("max_abs_diff") is not None:
        parts.append(f"max |diff| {sci(check['max_abs_diff'])}")
    if check.get("top1_agreement") is not None:
        exact = check.get("qdq_reference_top1_agreement")
        extra = f" (exact INT8 arithmetic {pct(exact)})" if exact is not None else ""
        parts.append(f"top-1 agreement {pct(check['top1_agreement'])}{extra}")
    n = f" on {count(check['count'])} images" if check.get("count") is not None else ""
    return ", ".join(parts) + n


def short_sha(value: Any, n: int = 12) -> str:
    return UNMEASURED if not value else str(value)[:n]
