"""The report's "Reductions" and "Seeds" sections.

Reductions: what the study cut from a published protocol and why (its ``reductions:`` lines),
so a number measured under a reduced protocol is never read as the full one. Seeds: a study
with ``seeds:`` ran once per seed; one row per candidate and metric with each seed's value,
the mean and the sample standard deviation (``study/seeds.py`` computes them).
"""

from __future__ import annotations

from edgebench.report import format as fmt
from edgebench.report.tables import Cell, Section, Table
from edgebench.results import Results, SeedStat


def _c(text: str, value: object = None, key: str = "") -> Cell:
    return Cell(text=text, value=value, key=key)


def _value(stat: SeedStat, v: object) -> str:
    """Distances as plain numbers, everything else (accuracies, shares) as percentages."""
    return fmt.num(v) if stat.key.endswith(":median_distance") else fmt.pct(v)


def reductions_section(results: Results) -> Section | None:
    """The study's ``reductions:`` lines, or None when it declares none."""
    lines = results.study.get("reductions") or []
    if not lines:
        return None
    rows = tuple((_c(str(i + 1), i + 1, "n"), _c(str(line), line, "reduction")) for i, line in enumerate(lines))
    table = Table(
        "reductions",
        "Reductions from the published protocol",
        ("#", "Reduction"),
        rows,
        note="Declared in the study file (reductions:); every number in this report was measured under them.",
    )
    return Section("reductions", "Reductions", (table,))


def seeds_section(results: Results) -> Section | None:
    """Mean and spread over the seeds, or None for a run of one seed."""
    rec = results.seeds
    if rec is None:
        return None
    cols = ("Candidate", "Metric", *[f"seed {s}" for s in rec.seeds], "Mean", "Std (n-1)", "Min - max", "n")
    rows = []
    for st in rec.stats:
        rows.append(
            (
                _c(st.candidate, st.candidate, "candidate"),
                _c(st.metric, st.key, "metric"),
                *[_c(_value(st, v), v, f"seed-{s}") for s, v in zip(rec.seeds, st.values)],
                _c(_value(st, st.mean), st.mean, "mean"),
                _c(_value(st, st.std) if st.std is not None else "-", st.std, "std"),
                _c(f"{_value(st, st.min)} - {_value(st, st.max)}", [st.min, st.max], "range"),
                _c(str(st.n), st.n, "n"),
            )
        )
    table = Table(
        "seeds",
        f"Mean and spread over {len(rec.seeds)} seed(s), on {rec.device}",
        cols,
        tuple(rows),
        note=(
            f"Each seed is a whole run of the study (its folders: {', '.join(rec.runs)}): the data split, the base's "
            "training, the attacks' random starts, and the pruning and fine-tuning seeds all change with it. "
            "Std is the sample standard deviation over the seeds that measured the metric; the other sections "
            f"of this report show seed {rec.seeds[0]}'s run."
        ),
    )
    return Section("seeds", "Seeds", (table,))


def seeds_sections(results: Results) -> list[Section]:
    """The reductions and seeds sections this run has (none for an ordinary single run)."""
    return [s for s in (reductions_section(results), seeds_section(results)) if s is not None]


__all__ = ["reductions_section", "seeds_section", "seeds_sections"]
