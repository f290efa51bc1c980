"""Plots for the HTML report, as inline SVG strings (matplotlib, Agg, no files, no fonts fetched).

Each function returns an ``<svg>...</svg>`` fragment ready to embed, or ``None`` when there is
nothing measured to draw. matplotlib escapes text it writes into SVG; candidate names are
also protected from mathtext (``$``) and from legend hiding (a leading ``_``).
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

from edgebench.report.gates import base_candidate, budgets_of, device_entry
from edgebench.results import Candidate, Results, RobustnessRow

_counter = itertools.count()
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _plt():
    """Import pyplot lazily with the Agg backend (no display, no GUI toolkit)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def label(name: Any, limit: int = 40) -> str:
    """A candidate name safe for matplotlib text: no mathtext, never hidden from a legend."""
    text = str(name)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


# One marker shape per candidate, beside its colour: two candidates with the same numbers draw
# on the same spot, and a different shape (and size, the later one smaller and on top) keeps
# both visible instead of one hiding the other.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "--", "-.", ":")
OUTSIDE = 0.08  # share of the data's span left free on each side of an axis scaled to the data


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def marker_size(index: int) -> float:
    """Scatter area (pt^2): later candidates smaller, so one drawn on another leaves a rim."""
    return 110.0 - 14.0 * (index % 5)


def data_range(values: list[float]) -> tuple[float, float]:
    """An axis range around *values* with a margin; a single value gets +-10 % of itself."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * OUTSIDE if hi > lo else (abs(hi) * 0.1 or 1.0)
    return lo - pad, hi + pad


def budget_line(ax, budget: float | None, lo: float, hi: float, text: str, unit: str, legend: bool = False) -> bool:
    """The budget as a dotted vertical line when it lies inside ``[lo, hi]`` (the data's range);
    else a note saying where it is (a legend entry with *legend*, else a line of text above the
    plot), so it never stretches the axis away from the data. Returns whether the line was drawn."""
    if budget is None:
        return False
    style = {"color": "#dc2626", "linestyle": ":", "linewidth": 1.2}
    if lo <= budget <= hi:
        ax.axvline(budget, label=text, gid=f"eb-budget-{next(_counter)}", **style)
        return True
    note = f"{text} {budget:g} {unit}, " + ("beyond the axis →" if budget > hi else "← before the axis")
    if legend:
        ax.plot([], [], label=note, **style)  # a legend entry only: nothing drawn in the plot
    else:
        ax.annotate(
            note, xy=(1.0, 1.01), xycoords="axes fraction", ha="right", va="bottom", fontsize=8, color="#dc2626"
        )
    return False


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def to_svg(fig) -> str:
    """Serialize *fig* as an inline ``<svg>`` element: no XML prolog, no metadata, no namespaces
    pointing at external URLs, ids unique within the page."""
    plt = _plt()
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"eb{next(_counter)}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    # Natural size (pt, as matplotlib wrote it), shrunk by CSS (max-width) on narrow pages.
    svg = svg.replace("<svg", '<svg class="plot"', 1)
    return svg


def _style(ax) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _candidates(results: Results) -> list[Candidate]:
    return list(results.candidates)


def chosen_attack(results: Results, device: str) -> RobustnessRow | None:
    """The attack the Pareto plot uses for robust accuracy: PGD L-inf at 8/255 when present,
    else the PGD L-inf with the middle epsilon, else the first attack anyone measured."""
    rows: dict[str, RobustnessRow] = {}
    for cand in _candidates(results):
        for row in device_entry(cand, device).robustness:
            if row.id and _num(row.accuracy) is not None and row.setting in (None, "transfer"):
                rows.setdefault(row.id, row)
    if not rows:
        return None
    pgd = sorted(
        (r for r in rows.values() if r.attack == "pgd" and r.norm == "linf"),
        key=lambda r: r.eps or 0,
    )
    for r in pgd:
        if abs((r.eps or 0) * 255 - 8) < 1e-3:
            return r
    if pgd:
        return pgd[len(pgd) // 2]
    return next(iter(rows.values()))


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both lower latency and higher accuracy, by latency."""
    front = []
    best = -1.0
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_svg(results: Results, device: str) -> str | None:
    """p50 latency (end-to-end) against clean accuracy and robust accuracy, one panel each."""
    attack = chosen_attack(results, device)
    panels: list[tuple[str, str | None]] = [("clean accuracy", None)]
    if attack is not None:
        from edgebench.report import format as fmt

        panels.append(
            (
                f"accuracy under {attack.attack} {attack.norm} eps={fmt.eps(attack.norm, attack.eps)}",
                attack.id,
            )
        )
    data = []
    for i, cand in enumerate(_candidates(results)):
        entry = device_entry(cand, device)
        lat = None if entry.latency_ms is None else _num(entry.latency_ms.p50)
        clean = _num(entry.clean_accuracy)
        robust = None
        if attack is not None:
            for row in entry.robustness:
                if row.id == attack.id:
                    robust = _num(row.accuracy)
        data.append((i, cand.name, lat, clean, robust))
    if not any(d[2] is not None and (d[3] is not None or d[4] is not None) for d in data):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    budget = budgets_of(results).get("max_p99_latency_ms")
    # the x axis spans the measured latencies (both panels), never 0..budget: a budget far from
    # the data would squeeze every point onto one spot
    x_lo, x_hi = data_range([d[2] for d in data if d[2] is not None])
    for k, (title, _attack_id) in enumerate(panels):
        ax = axes[0][k]
        pts = []
        for i, name, lat, clean, robust in data:
            y = clean if k == 0 else robust
            if lat is None or y is None:
                continue
            pts.append((lat, 100 * y))
            dot = ax.scatter(
                [lat],
                [100 * y],
                s=marker_size(i),
                marker=marker(i),
                color=color(i),
                label=label(name),
                zorder=3 + i,
                edgecolor="white",
                linewidth=0.8,
            )
            dot.set_gid(f"eb-point-{next(_counter)}")
        front = _pareto_front(pts)
        if len(front) > 1:
            ax.step(
                [p[0] for p in front],
                [p[1] for p in front],
                where="post",
                color="#9ca3af",
                linestyle="--",
                linewidth=1,
                zorder=2,
                label="Pareto front",
            )
        budget_line(ax, budget, x_lo, x_hi, "p99 budget", "ms", legend=True)
        ax.set_xlim(x_lo, x_hi)
        ax.set_xlabel("p50 latency, end-to-end (ms)")
        ax.set_ylabel("clean accuracy (%)" if k == 0 else "robust accuracy (%)")
        ax.set_title(title, fontsize=10)
        _style(ax)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(4, max(1, len(labels))),
        fontsize=8,
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return to_svg(fig)


def robustness_svg(results: Results, device: str) -> str | None:
    """Accuracy against epsilon: one panel per attack family (attack + norm) measured at two or
    more epsilons, a line per candidate; attacks run at a single epsilon share one bar panel."""
    cands = _candidates(results)
    points: dict[tuple[str, str], dict[int, list[tuple[float, float]]]] = {}
    for i, cand in enumerate(cands):
        for r in device_entry(cand, device).robustness:
            e, a = _num(r.eps), _num(r.accuracy)
            if e is None or a is None or r.sanity_only:
                continue
            # one panel per threat model: transfer and white-box curves are never mixed
            attack = f"{r.setting or 'transfer'} {r.attack}"
            points.setdefault((attack, r.norm), {}).setdefault(i, []).append((e, a))
    if not points:
        return None
    curves = [f for f, per in points.items() if len({e for pts in per.values() for e, _ in pts}) >= 2]
    singles = [f for f in points if f not in curves]
    panels = len(curves) + (1 if singles else 0)
    plt = _plt()
    fig, axes = plt.subplots(1, panels, figsize=(max(5.0, 4.4 * panels), 3.5), squeeze=False)
    base = base_candidate(results)
    for k, (attack, norm) in enumerate(curves):
        ax = axes[0][k]
        linf = norm.lower() == "linf"
        for i, pts in sorted(points[(attack, norm)].items()):
            pts = sorted(pts)
            ax.plot(
                [(x * 255 if linf else x) for x, _ in pts],
                [100 * y for _, y in pts],
                marker=marker(i),
                markersize=7 - (i % 4),  # later ones smaller and on top: equal curves stay visible
                linestyle=LINESTYLES[i % len(LINESTYLES)],
                color=color(i),
                label=label(cands[i].name),
                linewidth=2.4 if cands[i] is base else 1.4,
                zorder=2 + i,
            )
        ax.set_xlabel("eps (x/255)" if linf else f"eps ({norm})")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{attack} {norm}", fontsize=10)
        _style(ax)
    if singles:
        from edgebench.report import format as fmt

        ax = axes[0][len(curves)]
        groups = []
        for attack, norm in singles:
            for e in sorted({e for pts in points[(attack, norm)].values() for e, _ in pts}):
                groups.append((attack, norm, e))
        width = 0.8 / max(1, len(cands))
        for i, cand in enumerate(cands):
            xs, ys = [], []
            for g, (attack, norm, e) in enumerate(groups):
                for x, y in points[(attack, norm)].get(i, []):
                    if x == e:
                        xs.append(g - 0.4 + width * (i + 0.5))
                        ys.append(100 * y)
            if xs:
                ax.bar(xs, ys, width=width, color=color(i), label=label(cand.name))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{a} {n}\neps={fmt.eps(n, e)}" for a, n, e in groups], fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 103)
        ax.set_title("single-epsilon attacks", fontsize=10)
        _style(ax)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(4, len(labels)),
        fontsize=8,
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return to_svg(fig)


def latency_svg(results: Results, device: str) -> str | None:
    """Per candidate: min-max whisker, p50-p99 box, p90 tick, for end-to-end and compute.

    The axis ends a little past the largest p99 (one slow outlier of a single run would
    otherwise shrink every box to a line); a whisker whose max lies beyond is cut at the edge
    and marked with an arrow and the max's value."""
    rows = []
    for i, cand in enumerate(_candidates(results)):
        entry = device_entry(cand, device)
        for kind, lat in (("end-to-end", entry.latency_ms), ("compute", entry.latency_compute_ms)):
            if lat is None:
                continue
            vals = {"min": _num(lat.min), "p50": _num(lat.p50), "p90": _num(lat.p90), "p99": _num(lat.p99)}
            vals["max"] = _num(lat.max)
            p50 = vals["p50"]
            if p50 is None:
                continue
            rows.append((i, cand.name, kind, p50, vals))
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.34 * len(rows) + 1.3))
    budget = budgets_of(results).get("max_p99_latency_ms")
    right = with_budget(latency_clip(rows), budget)
    ylabels = []
    for y, (i, name, kind, p50, v) in enumerate(rows):
        c = color(i)
        p99 = v["p99"] if v["p99"] is not None else p50
        lo = v["min"] if v["min"] is not None else p50
        hi = v["max"] if v["max"] is not None else p99
        ax.plot([lo, min(hi, right)], [y, y], color=c, linewidth=1, alpha=0.6)
        if hi > right:  # an outlier past the axis: marked at the edge with its value
            ax.plot([right], [y], marker=">", markersize=6, color=c, clip_on=False, gid=f"eb-outlier-{next(_counter)}")
            ax.annotate(
                f"max {hi:.3g} ms",
                xy=(right, y),
                xytext=(-4, 4),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color="#374151",
            )
        ax.barh(
            y,
            p99 - p50,
            left=p50,
            height=0.5,
            color=c,
            alpha=0.85 if kind == "end-to-end" else 0.45,
            edgecolor=c,
        )
        ax.plot([p50], [y], marker="|", markersize=14, color="black")
        if v["p90"] is not None:
            ax.plot([v["p90"]], [y], marker="|", markersize=10, color="#374151")
        ylabels.append(f"{label(name, 28)} ({kind})")
    if budget_line(ax, budget, 0.0, right, "p99 budget", "ms"):
        ax.text(budget, len(rows) - 0.4, " p99 budget", color="#dc2626", fontsize=8, va="bottom")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(ylabels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("latency, batch 1 (ms); ▶ a max beyond the axis")
    ax.set_xlim(0, right)
    _style(ax)
    fig.tight_layout()
    return to_svg(fig)


def with_budget(right: float, budget: float | None) -> float:
    """An axis from 0 that ends at *right*, stretched to show *budget* when that costs the data
    at most half the width (bars from 0 stay readable); a budget further out is only noted."""
    if budget is not None and right < budget <= 2 * right:
        return budget * (1 + OUTSIDE / 2)
    return right


def latency_clip(rows: list[tuple[int, str, str, float, dict[str, float | None]]]) -> float:
    """Where the latency axis ends: past the largest p99 by :data:`OUTSIDE` of it (the largest
    p50 where no p99 was measured)."""
    top = max((v["p99"] if v["p99"] is not None else p50) for _, _, _, p50, v in rows)
    return top * (1 + 2 * OUTSIDE)


def memory_svg(results: Results, device: str) -> str | None:
    """RSS after load and peak RSS per candidate, with the memory budget."""
    rows: list[tuple[int, str, float | None, float | None]] = []
    for i, cand in enumerate(_candidates(results)):
        mem = device_entry(cand, device).memory_mb
        if mem is None:
            rows.append((i, cand.name, None, None))
        else:
            rows.append((i, cand.name, _num(mem.rss_after_load), _num(mem.peak_rss)))
    if not any(r[2] is not None or r[3] is not None for r in rows):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    for y, (i, _name, after, peak) in enumerate(rows):
        if peak is not None:
            ax.barh(y, peak, height=0.6, color=color(i), alpha=0.45, label="peak RSS" if y == 0 else None)
        if after is not None:
            ax.barh(y, after, height=0.3, color=color(i), label="RSS after load" if y == 0 else None)
        if peak is None and after is None:
            ax.text(0.01, y, "unmeasured", va="center", fontsize=8, color="#6b7280", transform=ax.get_yaxis_transform())
    budget = budgets_of(results).get("max_peak_memory_mb")
    top = with_budget(max(v for r in rows for v in r[2:] if v is not None) * (1 + 2 * OUTSIDE), budget)
    if budget_line(ax, budget, 0.0, top, "memory budget", "MB"):
        ax.text(budget, -0.55, "memory budget ", color="#dc2626", fontsize=8, ha="right")
    ax.set_xlim(0, top)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label(r[1], 32) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    _style(ax)
    fig.tight_layout()
    return to_svg(fig)


def ops_svg(results: Results, device: str, top: int = 5) -> str | None:
    """Share of runtime per operator type (top *top*, the rest as 'other'), a bar per candidate."""
    rows = []
    for cand in _candidates(results):
        ops = device_entry(cand, device).op_profile or []
        shares: dict[str, float] = {}
        for row in sorted(ops, key=lambda o: -(o.total_ms or 0)):
            s = _num(row.share)
            if s is not None:
                shares[row.op_type] = shares.get(row.op_type, 0.0) + s
        rows.append((cand.name, shares))
    if not any(r[1] for r in rows):
        return None
    plt = _plt()
    ranked: dict[str, float] = {}
    for _, shares in rows:
        for op, s in shares.items():
            ranked[op] = ranked.get(op, 0.0) + s
    keep = [op for op, _ in sorted(ranked.items(), key=lambda kv: -kv[1])][: max(top, 1) * 2]
    keep = keep[:9]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    for y, (_name, shares) in enumerate(rows):
        left = 0.0
        if not shares:
            ax.text(0.01, y, "unmeasured", va="center", fontsize=8, color="#6b7280", transform=ax.get_yaxis_transform())
            continue
        for j, op in enumerate(keep + ["other"]):
            s = (
                shares.get(op, 0.0)
                if op != "other"
                else max(0.0, sum(shares.values()) - sum(shares.get(o, 0.0) for o in keep))
            )
            if s <= 0:
                continue
            ax.barh(
                y,
                100 * s,
                left=left,
                height=0.6,
                color=PALETTE[j % len(PALETTE)] if op != "other" else "#d1d5db",
                label=label(op) if op not in ax.get_legend_handles_labels()[1] else None,
                edgecolor="white",
            )
            left += 100 * s
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label(r[0], 32) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of operator time (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    _style(ax)
    fig.tight_layout()
    return to_svg(fig)


def device_plots(results: Results, device: str) -> list[tuple[str, str, str | None]]:
    """``[(key, title, svg or None)]`` for one device, in the order the HTML shows them."""
    return [
        ("pareto", "Latency against accuracy (Pareto)", pareto_svg(results, device)),
        ("robustness", "Robustness curves", robustness_svg(results, device)),
        (
            "latency",
            "Latency distribution (whisker min to max, box p50 to p99, ticks at p50 and p90; "
            "axis cut past the largest p99, a max beyond it marked at the edge)",
            latency_svg(results, device),
        ),
        ("memory", "Memory (wide bar: peak RSS, narrow bar: RSS after load)", memory_svg(results, device)),
        ("ops", "Share of operator time (top operators, the rest as other)", ops_svg(results, device)),
    ]
