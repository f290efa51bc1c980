"""Sanity checks on a candidate's robustness numbers (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", section 5): a failed check is a sign the attack, not the model, is
weak -- most often gradient masking (rounding, saturation) -- so it is labeled that way.

Each check is a dict ``{"check", "status": "pass" | "warn", "label", "numbers", "detail"}``;
only checks whose inputs were measured are listed. Pure numpy/python over results rows. A
check's name says what is expected (``accuracy_decreases``: accuracy falls as epsilon grows); a
warning's ``label`` says what was found instead (:data:`CHECKS`), so no rendering has to show
the name of the expectation as if it were the finding.

* ``iterative_vs_single_step``: PGD L-inf accuracy <= FGSM accuracy at the same epsilon (per setting).
* ``whitebox_vs_transfer``: white-box accuracy <= transfer accuracy on the same samples and set.
* ``accuracy_decreases``: accuracy does not rise with epsilon along an attack curve (per setting).
* ``unbounded_eps``: at eps = 1 (the whole input range) the engine's accuracy is ~0.
* ``surrogate_agreement``: the white-box model predicts what the engine predicts on clean inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

MASKING = "possible gradient masking"
SLACK = 0.02  # allowed excess on top of one sample's worth (1/count): sampling noise, ties
UNBOUNDED_MAX_ACCURACY = 0.05
AGREEMENT_MIN = 0.95


# name -> (what a working attack shows, what a warning found instead)
CHECKS: dict[str, tuple[str, str]] = {
    "iterative_vs_single_step": ("PGD at least as strong as FGSM", "PGD weaker than FGSM"),
    "whitebox_vs_transfer": (
        "crafting on the candidate at least as strong as crafting on the base",
        "white-box weaker than transfer",
    ),
    "accuracy_decreases": ("accuracy does not rise as epsilon grows", "accuracy rises with epsilon"),
    "unbounded_eps": (
        "PGD L-inf at eps 255/255 (any image reachable) leaves ~0 accuracy",
        f"accuracy above {UNBOUNDED_MAX_ACCURACY:.0%} at eps 255/255",
    ),
    "surrogate_agreement": (
        "the attacker's model predicts what the engine predicts",
        "surrogate differs from the engine",
    ),
}

UNBOUNDED_ID = "pgd-linf-255"  # the white-box sanity set: PGD L-inf at eps = 255/255
UNBOUNDED_NOTE = (
    "pgd-linf-255 is a sanity check, not a threat model: PGD L-inf at eps = 255/255 may set every pixel "
    f"to anything, so a working gradient attack leaves ~0 accuracy (passes at <= {UNBOUNDED_MAX_ACCURACY:.0%}); "
    "more means masked gradients, and the white-box rows understate the attack"
)


def warning_label(check: str, cause: str = MASKING) -> str:
    """What a failed *check* found, and what that suggests (*cause*)."""
    found = CHECKS[check][1]
    return f"{found}: {cause}"


def _tol(count: Any) -> float:
    return SLACK + (1.0 / count if isinstance(count, int) and count > 0 else 0.0)


def _check(name: str, ok: bool, numbers: Any, detail: str, cause: str = MASKING) -> dict[str, Any]:
    return {
        "check": name,
        "status": "pass" if ok else "warn",
        "label": "" if ok else warning_label(name, cause),
        "numbers": numbers,
        "detail": detail,
    }


def _eps_text(norm: str, eps: float) -> str:
    return f"{eps * 255:.4g}/255" if norm == "linf" else f"{eps:.4g}"


def _rise(step: Mapping[str, Any]) -> str:
    """One rising step of a curve as text: family, then accuracy at each epsilon."""
    (e0, e1), (a0, a1) = step["eps"], step["accuracy"]
    n = step["norm"]
    return f"{step['family']}: {a0:.3f} at eps {_eps_text(n, e0)}, {a1:.3f} at eps {_eps_text(n, e1)}"


def _curve_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("eps") is not None and r.get("accuracy") is not None and not r.get("sanity_only")]


def sanity_checks(
    rows: list[Mapping[str, Any]],
    *,
    engine_clean_pred: np.ndarray | None = None,
    surrogate: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The checks for one candidate on one device from its ``robustness`` rows (both settings)."""
    out: list[dict[str, Any]] = []
    curve = _curve_rows(rows)

    # 1. iterative >= single-step
    pairs = []
    for setting in ("transfer", "whitebox"):
        fgsm = {
            round(r["eps"], 8): r
            for r in curve
            if r.get("setting", "transfer") == setting and r["attack"] == "fgsm" and r["norm"] == "linf"
        }
        for r in curve:
            if r.get("setting", "transfer") != setting or r["attack"] != "pgd" or r["norm"] != "linf":
                continue
            f = fgsm.get(round(r["eps"], 8))
            if f is not None:
                pairs.append(
                    {
                        "setting": setting,
                        "eps": r["eps"],
                        "single_step_accuracy": f["accuracy"],
                        "iterative_accuracy": r["accuracy"],
                        "excess": r["accuracy"] - f["accuracy"],
                        "ok": r["accuracy"] <= f["accuracy"] + _tol(r.get("count")),
                    }
                )
    if pairs:
        worst = max(pairs, key=lambda p: p["excess"])
        out.append(
            _check(
                "iterative_vs_single_step",
                all(p["ok"] for p in pairs),
                pairs,
                f"PGD accuracy minus FGSM accuracy, worst {worst['excess']:+.3f} "
                f"({worst['setting']}, eps {worst['eps'] * 255:.4g}/255)",
            )
        )

    # 2. white-box >= transfer (same samples)
    wt = [
        {
            "set": r.get("set"),
            "whitebox_accuracy": r["accuracy"],
            "transfer_accuracy": r["transfer_accuracy"],
            "excess": r["accuracy"] - r["transfer_accuracy"],
            "ok": r["accuracy"] <= r["transfer_accuracy"] + _tol(r.get("count")),
        }
        for r in rows
        if r.get("setting") == "whitebox" and r.get("transfer_accuracy") is not None and r.get("accuracy") is not None
    ]
    if wt:
        worst = max(wt, key=lambda p: p["excess"])
        out.append(
            _check(
                "whitebox_vs_transfer",
                all(p["ok"] for p in wt),
                wt,
                f"white-box minus transfer accuracy on the same images, worst {worst['excess']:+.3f} ({worst['set']})",
            )
        )

    # 3. accuracy does not rise with epsilon
    rises = []
    families: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in curve:
        families.setdefault((r.get("setting", "transfer"), r["attack"], r["norm"]), []).append(r)
    for (setting, attack, norm), pts in families.items():
        pts = sorted(pts, key=lambda r: r["eps"])
        for a, b in zip(pts, pts[1:]):
            rises.append(
                {
                    "family": f"{setting} {attack}-{norm}",
                    "norm": norm,
                    "eps": [a["eps"], b["eps"]],
                    "accuracy": [a["accuracy"], b["accuracy"]],
                    "ok": b["accuracy"] <= a["accuracy"] + _tol(b.get("count")),
                }
            )
    if rises:
        bad = [p for p in rises if not p["ok"]]
        out.append(
            _check(
                "accuracy_decreases",
                not bad,
                rises,
                "accuracy never rises with epsilon"
                if not bad
                else f"accuracy rises with epsilon in {len(bad)} step(s), first {_rise(bad[0])}",
            )
        )

    # 4. unbounded epsilon reaches ~100 % success
    unb = [r for r in rows if r.get("sanity_only") and r.get("accuracy") is not None]
    for r in unb:
        out.append(
            _check(
                "unbounded_eps",
                r["accuracy"] <= UNBOUNDED_MAX_ACCURACY,
                {
                    "set": r.get("set"),
                    "accuracy": r["accuracy"],
                    "count": r.get("count"),
                    "max": UNBOUNDED_MAX_ACCURACY,
                },
                f"engine accuracy {r['accuracy']:.3f} on {r.get('count')} images under white-box PGD L-inf at "
                f"eps = 255/255 ({r.get('set')}; should be ~0)",
            )
        )

    # 5. surrogate agrees with the engine
    if surrogate is not None and surrogate.get("predictions") is not None and engine_clean_pred is not None:
        sp = np.asarray(surrogate["predictions"])
        ep = np.asarray(engine_clean_pred)
        n = min(len(sp), len(ep))
        if n:
            agree = float(np.mean(sp[:n] == ep[:n]))
            out.append(
                _check(
                    "surrogate_agreement",
                    agree >= AGREEMENT_MIN,
                    {
                        "kind": surrogate.get("kind"),
                        "engine_top1_agreement": agree,
                        "host_top1_agreement": surrogate.get("top1_agreement"),
                        "qdq_reference_agreement": surrogate.get("qdq_reference_agreement"),
                        "count": n,
                        "min": AGREEMENT_MIN,
                    },
                    f"the white-box model ({surrogate.get('kind')}) agrees with the engine on {agree:.3f} of clean images",
                    cause="white-box numbers may understate the attack",
                )
            )
    return out


__all__ = ["CHECKS", "MASKING", "UNBOUNDED_ID", "UNBOUNDED_NOTE", "sanity_checks", "warning_label"]
