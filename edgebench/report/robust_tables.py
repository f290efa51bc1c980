"""Report tables for the two threat models, the attacker's model and the sanity checks.

Built from the ``robustness`` rows (``setting``: transfer | whitebox | divergence),
``robust_accuracy`` (the worst case over every attack), ``surrogate``, ``sanity``,
``int8_error`` and ``square`` entries of each candidate on a device; shared by the
Markdown and HTML renderings like every other table in :mod:`edgebench.report.model`.
"""

from __future__ import annotations

from typing import Any

from edgebench.report import format as fmt
from edgebench.report.gates import base_candidate, device_entry
from edgebench.report.tables import Cell, Table
from edgebench.results import Candidate, Results, as_results
from edgebench.robustness.sanity import CHECKS, UNBOUNDED_NOTE


def _c(text: str, value: Any = None, key: str = "", status: str = "", detail: str = "") -> Cell:
    return Cell(text=text, value=value, key=key, status=status, detail=detail)


def _m(value: Any, formatter: Any, key: str) -> Cell:
    return Cell(text=formatter(value), value=value, key=key, status="unmeasured" if value is None else "")


def _name(cand: Candidate) -> Cell:
    return Cell(text=cand.name, value=cand.name, key="candidate")


def settings_table(results: Results, device: str) -> Table | None:
    """Transfer and white-box accuracy side by side per candidate and set (same images)."""
    rows = []
    for cand in results.candidates:
        robust = device_entry(cand, device).robustness
        transfer = {r.id if r.set is None else r.set: r for r in robust if r.setting in (None, "transfer")}
        for r in robust:
            if r.setting != "whitebox":
                continue
            t = transfer.get(r.set) if r.set is not None else None
            wb, ta = r.accuracy, r.transfer_accuracy
            gap = None if wb is None or ta is None else wb - ta
            rows.append(
                (
                    _name(cand),
                    _c(fmt.text(r.attack) + " " + fmt.text(r.norm), r.set, "attack"),
                    _c(fmt.eps(r.norm, r.eps), r.eps, "eps"),
                    _m(None if t is None else t.accuracy, fmt.pct, "transfer.accuracy"),
                    _m(None if t is None else t.count, fmt.count, "transfer.count"),
                    _m(r.count, fmt.count, "whitebox.count"),
                    _m(r.clean_accuracy, fmt.pct, "whitebox.clean_accuracy"),
                    _m(ta, fmt.pct, "whitebox.transfer_accuracy"),
                    _m(wb, fmt.pct, "whitebox.accuracy"),
                    _c(fmt.ci(r.accuracy_ci95), r.accuracy_ci95, "whitebox.accuracy_ci95"),
                    _m(gap, fmt.pp, "whitebox.minus_transfer"),
                    _m(r.agreement_with_surrogate, fmt.pct, "whitebox.agreement_with_surrogate"),
                    _c(_by_model(r.surrogates, r.runs), r.surrogates, "whitebox.surrogates"),
                    _c(
                        "same sets as transfer"
                        if r.same_as_transfer
                        else ("sanity set: must reach ~0 % (else masked gradients)" if r.sanity_only else ""),
                        key="whitebox.note",
                    ),
                )
            )
    if not rows:
        return None
    return Table(
        f"settings-{device}",
        "Threat models side by side: transfer (crafted on base) and white-box (crafted on the candidate)",
        (
            "Candidate",
            "Attack",
            "eps",
            "Transfer accuracy",
            "Transfer images",
            "White-box images",
            "Clean accuracy, white-box images",
            "Transfer, white-box images",
            "White-box accuracy",
            "95% CI",
            "White-box minus transfer",
            "Engine agrees with attacker's model",
            "Each attacker's model alone",
            "Note",
        ),
        tuple(rows),
        "Both settings are replayed through the deployed artifact on this device. White-box sets are crafted "
        "on the candidate's own model, rebuilt from its artifact (fp32: its graph; INT8: a fake-quant model "
        "with the artifact's scales and zero points and straight-through rounding). 'Transfer, white-box "
        "images' is the transfer accuracy over the same images the white-box attack used, and 'Clean accuracy, "
        "white-box images' the clean accuracy over them. The base's white-box sets are its transfer sets. "
        "'White-box accuracy' is the worst per image over every run (attacks.whitebox_restarts random starts) "
        "on every attacker's model: an INT8 candidate is also attacked through its fp32 parent graph (every "
        "quantizer as the identity), since straight-through rounding alone can mask gradients; 'Each "
        "attacker's model alone' gives the engine's accuracy under each one's runs. "
        f"A robust claim should use the lower of the two. {UNBOUNDED_NOTE}.",
    )


_SETTING_TITLES = (
    ("transfer", "Transfer alone"),
    ("whitebox", "White-box alone"),
    ("divergence", "Divergence alone"),
    ("blackbox", "Black-box alone"),
)


def _not_run(value: Any, key: str) -> Cell:
    """A setting's worst case, or 'not run' where it had no attack at that epsilon."""
    return Cell(text="not run", value=None, key=key) if value is None else _m(value, fmt.pct, key)


def worst_case_table(results: Results, device: str, compact: bool = False) -> Table | None:
    """Robust accuracy per candidate and epsilon: right clean and under every attack, per image.
    Per-setting columns only for settings some row ran; *compact* (the terminal) leaves out the
    clean accuracy, the attack list and the note."""
    entries = [(cand, r) for cand in results.candidates for r in device_entry(cand, device).robust_accuracy or []]
    if not entries:
        return None
    settings = [(k, t) for k, t in _SETTING_TITLES if any(k in r.by_setting for _, r in entries)]
    base = base_candidate(results)
    rows = []
    for cand, r in entries:
        cells = [
            _name(cand),
            _c(fmt.eps(r.norm, r.eps) + " " + fmt.text(r.norm), r.id, "worst.eps"),
            _m(r.robust_accuracy, fmt.pct, "worst.robust_accuracy"),
            _c(fmt.ci(r.robust_accuracy_ci95), r.robust_accuracy_ci95, "worst.robust_accuracy_ci95"),
            _c(f"{r.count} ({fmt.text(r.images)})", r.count, "worst.count"),
            *([] if compact else [_m(r.clean_accuracy, fmt.pct, "worst.clean_accuracy")]),
            *(_not_run(r.by_setting.get(key), f"worst.by_setting.{key}") for key, _ in settings),
            _c("(base)", key="worst.base_robust_accuracy")
            if cand is base
            else _m(r.base_robust_accuracy, fmt.pct, "worst.base_robust_accuracy"),
        ]
        if not compact:
            cells += [
                _c(fmt.text(", ".join(r.attacks)), r.attacks, "worst.attacks"),
                _c(fmt.text(r.note), r.note, "worst.note"),
            ]
        rows.append(tuple(cells))
    columns = (
        "Candidate",
        "eps",
        "Robust accuracy",
        "95% CI",
        "Images",
        *([] if compact else ["Clean accuracy, same images"]),
        *(title for _, title in settings),
        "Base, same images",
        *([] if compact else ["Attacks", "Note"]),
    )
    return Table(
        f"worst-case-{device}",
        "Robust accuracy: right under every attack at each epsilon (per image, all settings)",
        columns,
        tuple(rows),
        "Robust accuracy as RobustBench and AutoAttack define it: the share of images the deployed engine "
        "classifies correctly clean and after every attack at that epsilon -- transfer sets, white-box sets "
        "(every attacker's model and restart), divergence sets and query attacks alike. An image broken by "
        "any attack counts as broken, so it is never above any per-attack row on the same images. Attacks "
        "cover different images (white-box: the first attacks.whitebox_samples of the transfer images; "
        "black-box: its own first blackbox.samples), so it is computed on the images every attack covered, "
        "named in 'Images'; the per-setting columns are the worst case over that setting alone, same images.",
    )


def divergence_table(results: Results, device: str) -> Table | None:
    """Divergence (diva) rows: images the deployed base gets right and the deployed candidate wrong."""
    rows = []
    for cand in results.candidates:
        for r in device_entry(cand, device).robustness:
            if r.setting != "divergence":
                continue
            rows.append(
                (
                    _name(cand),
                    _c(fmt.text(r.attack) + " " + fmt.text(r.norm), r.set, "divergence.attack"),
                    _c(fmt.eps(r.norm, r.eps), r.eps, "divergence.eps"),
                    _m(r.count, fmt.count, "divergence.count"),
                    _m(r.divergence_rate, fmt.pct, "divergence.divergence_rate"),
                    _c(fmt.ci(r.divergence_rate_ci95), r.divergence_rate_ci95, "divergence.divergence_rate_ci95"),
                    _m(r.base_accuracy, fmt.pct, "divergence.base_accuracy"),
                    _m(r.accuracy, fmt.pct, "divergence.accuracy"),
                    _m(r.clean_accuracy, fmt.pct, "divergence.clean_accuracy"),
                )
            )
    if not rows:
        return None
    return Table(
        f"divergence-{device}",
        "Divergence attack: inputs the base still gets right and the compressed candidate does not",
        (
            "Candidate",
            "Attack",
            "eps",
            "Images",
            "Base right, candidate wrong",
            "95% CI",
            "Base accuracy",
            "Candidate accuracy",
            "Candidate clean accuracy",
        ),
        tuple(rows),
        "diva (DIVA, Hong et al. 2021): within eps, PGD raises the candidate's loss on the true label while "
        "keeping the base's low, crafted on the candidate's attacker's model paired with the base's; both "
        "deployed artifacts replay the same examples. 'Base right, candidate wrong' is the share of images "
        "that split them: what compression alone gave away to an attacker.",
    )


def worst_case_tables(results: Results | dict, device: str) -> list[Table]:
    """The worst-case and divergence tables (for the terminal after a run; typed or raw results)."""
    typed = as_results(results)
    tables = (worst_case_table(typed, device, compact=True), divergence_table(typed, device))
    return [t for t in tables if t is not None]


def surrogate_table(results: Results, device: str) -> Table | None:
    rows = []
    for cand in results.candidates:
        entry = device_entry(cand, device)
        sur = entry.surrogate
        if sur is None:
            continue
        check = next((c for c in entry.sanity or [] if c.check == "surrogate_agreement"), None)
        numbers = check.numbers if check is not None and isinstance(check.numbers, dict) else {}  # per check: open
        engine = numbers.get("engine_top1_agreement")
        rows.append(
            (
                _name(cand),
                _c(fmt.text(sur.kind), sur.kind, "surrogate.kind"),
                _m(sur.qdq_points, fmt.count, "surrogate.qdq_points"),
                _m(engine, fmt.pct, "surrogate.engine_top1_agreement"),
                _m(sur.top1_agreement, fmt.pct, "surrogate.top1_agreement"),
                _m(sur.qdq_reference_agreement, fmt.pct, "surrogate.qdq_reference_agreement"),
                _m(sur.max_abs_logit_diff, fmt.sci, "surrogate.max_abs_logit_diff"),
                _m(sur.count, fmt.count, "surrogate.count"),
            )
        )
    if not rows:
        return None
    return Table(
        f"surrogate-{device}",
        "The white-box attacker's model of each artifact",
        (
            "Candidate",
            "Model",
            "Activation QDQ points",
            "Top-1 agreement with engine (device)",
            "Top-1 agreement with ONNX Runtime (host)",
            "Agreement with the unfused QDQ graph",
            "Max |logit diff|",
            "Images",
        ),
        tuple(rows),
        "fake-quant-ste: every QuantizeLinear/DequantizeLinear of the artifact reproduced with its parameters, "
        "rounding and saturation passed straight through on the backward pass (BPDA). The engine runs fused "
        "integer kernels, so it can differ from the QDQ arithmetic it was built from on a few images.",
    )


def _by_model(per_model: dict[str, Any] | None, runs: int | None) -> str:
    """``fake-quant-ste 43.8 %, fp32-parent 27.1 % (4 runs)``: the engine's accuracy per model."""
    if not per_model:
        return ""
    text = ", ".join(f"{fmt.text(k)} {fmt.pct(v)}" for k, v in per_model.items())
    return f"{text} ({runs} runs)" if runs else text


def _expectation(check: str) -> str:
    """What a check expects, with its results.json name (an unknown name is shown as it is)."""
    known = CHECKS.get(check)
    return fmt.text(check) if known is None else f"{known[0]} ({check})"


def sanity_table(results: Results, device: str) -> Table | None:
    rows = []
    for cand in results.candidates:
        for c in device_entry(cand, device).sanity or []:
            rows.append(
                (
                    _name(cand),
                    _c(_expectation(c.check), c.check, "sanity.check"),
                    _c(fmt.text(c.status), c.status, "sanity.status", "pass" if c.status == "pass" else "warn"),
                    _c(fmt.text(c.label) if c.label else "", c.label, "sanity.label"),
                    _c(fmt.text(c.detail), c.detail, "sanity.detail"),
                )
            )
    if not rows:
        return None
    return Table(
        f"sanity-{device}",
        "Sanity checks on the attacks (Carlini et al. 2019)",
        ("Candidate", "Check (what a working attack shows)", "Status", "Found", "Numbers"),
        tuple(rows),
        "Each check states what a working attack shows; a warning's 'Found' says what was measured instead. A "
        "warning means the attack, not the model, may be what failed (gradient masking); the full numbers are in "
        "results.json under sanity, by check name (" + ", ".join(CHECKS) + ").",
    )


def square_table(results: Results, device: str) -> Table | None:
    """Square, the score-based attack whose queries went to each deployed artifact."""
    runs = [(cand, device_entry(cand, device).blackbox_square) for cand in results.candidates]
    if not any(sq for _, sq in runs):
        return None
    eps_all = sorted({r.eps for _, sq in runs if sq for r in sq.rows})
    norm = next((sq.norm for _, sq in runs if sq), "linf")
    rows = []
    for cand, sq in runs:
        acc = {} if sq is None else {r.eps: r.accuracy for r in sq.rows}
        rows.append(
            (
                _name(cand),
                _m(None if sq is None else sq.count, fmt.count, "square.count"),
                _m(None if sq is None else sq.clean_accuracy, fmt.pct, "square.clean_accuracy"),
                _m(None if sq is None else sq.max_queries, fmt.count, "square.max_queries"),
                _m(None if sq is None else sq.queries_mean, lambda v: fmt.num(v, 1), "square.queries_mean"),
                *(_m(acc.get(e), fmt.pct, f"square.accuracy@{e:g}") for e in eps_all),
            )
        )
    return Table(
        f"square-{device}",
        "Score-based black-box attack on the deployed engine (Square)",
        (
            "Candidate",
            "Images",
            "Clean accuracy",
            "Query budget per eps",
            "Queries used (mean)",
            *(f"Accuracy at eps {fmt.eps(norm, e)}" for e in eps_all),
        ),
        tuple(rows),
        "Square (Andriushchenko et al. 2020) reads the logits the engine returns through the agent: no gradient, "
        "so masking cannot hide a weakness from it. Every success was confirmed by the engine.",
    )


def int8_error_table(results: Results, device: str) -> Table | None:
    """The layers where adversarial inputs push each INT8 model furthest from its fp32 graph."""
    rows = []
    for cand in results.candidates:
        if cand.int8_error is None:
            continue
        for set_name, info in cand.int8_error.sets.items():
            for rank, layer in enumerate(info.top_layers, 1):
                rows.append(
                    (
                        _name(cand),
                        _c(set_name, set_name, "int8_error.set"),
                        _m(rank, fmt.count, "int8_error.rank"),
                        _c(fmt.text(layer.tensor), layer.tensor, "int8_error.tensor"),
                        _m(layer.sqnr_clean_db, lambda v: fmt.num(v, 2), "int8_error.sqnr_clean_db"),
                        _m(layer.sqnr_adv_db, lambda v: fmt.num(v, 2), "int8_error.sqnr_adv_db"),
                        _m(layer.drop_db, lambda v: fmt.num(v, 2), "int8_error.drop_db"),
                        _m(info.count, fmt.count, "int8_error.count"),
                    )
                )
    if not rows:
        return None
    return Table(
        f"int8-error-{device}",
        "INT8 error localisation: where adversarial inputs push the quantized model from the float one",
        (
            "Candidate",
            "Adversarial set",
            "Rank",
            "Tensor",
            "SQNR clean (dB)",
            "SQNR adversarial (dB)",
            "Drop (dB)",
            "Images",
        ),
        tuple(rows),
        "Computed on the host with ONNX Runtime: every activation the fp32 and INT8 QDQ graphs share, INT8 "
        "taken after its quantize-dequantize step; SQNR = 10 log10(signal / (fp32 - INT8)^2). Error accumulates "
        "along the graph. Ranked by the drop from clean to adversarial inputs (same images); every layer is in "
        "results.json under int8_error.",
    )


def robustness_extra_tables(results: Results, device: str) -> list[Table]:
    """Every table of this module that has something to show on *device*, in reading order."""
    builders = (
        worst_case_table,
        divergence_table,
        settings_table,
        surrogate_table,
        sanity_table,
        int8_error_table,
        square_table,
    )
    tables = [t(results, device) for t in builders]
    return [t for t in tables if t is not None]


__all__ = [
    "divergence_table",
    "robustness_extra_tables",
    "sanity_table",
    "settings_table",
    "surrogate_table",
    "worst_case_table",
    "worst_case_tables",
]
