"""Issue 23, item 7: plots scaled to the data. Read from the SVG each plot function returns:
point positions, marker shapes, tick labels and the budget line.

The run from the issue: a p99 budget of 100 ms beside latencies of 0.1 to 1.1 ms (every Pareto
point squeezed against 0), one 193 ms outlier in a latency distribution whose p99s are below
3 ms (every box a line), and int8 measuring exactly what base measures (one hiding the other).
"""

from __future__ import annotations

import re

import pytest
from report_helpers import candidate, load_fixture

from edgebench.report import plots
from edgebench.report.gates import judged
from edgebench.results import Results


def issue_run(budget_ms: float = 100.0) -> dict:
    """The fixture with the issue's budget, outlier and identical candidates."""
    r = load_fixture()
    r["budgets"]["max_p99_latency_ms"] = budget_ms
    base, int8 = (candidate(r, n)["devices"]["local"] for n in ("base", "int8"))
    base["latency_ms"]["max"] = 193.0
    int8["latency_ms"]["p50"] = base["latency_ms"]["p50"]
    int8["clean_accuracy"] = base["clean_accuracy"]
    for mine, theirs in zip(int8["robustness"], base["robustness"]):
        mine["accuracy"] = theirs["accuracy"]
    return r


def _results(raw: dict) -> Results:
    return judged(raw)


def _shape(d: str) -> str:
    """A marker's path with its size divided out: the same shape drawn smaller is the same."""
    nums = [float(n) for n in re.findall(r"-?[\d.]+", d)]
    scale = max((abs(n) for n in nums), default=1.0) or 1.0
    return re.sub(r"-?[\d.]+", lambda m: f"{float(m.group()) / scale:.2f}", " ".join(d.split()))


def _points(svg: str) -> list[tuple[float, float, str]]:
    """Every Pareto point: (x, y, its marker's shape; a def shared by reference)."""
    shapes = {k: _shape(d) for k, d in re.findall(r'<path id="([^"]+)" d="([^"]+)"', svg, flags=re.S)}
    out = []
    for g in re.findall(r'<g id="eb-point-\d+">(.*?)</g>\s*</g>', svg, flags=re.S):
        use = re.search(r'<use href="#([^"]+)" x="([-\d.]+)" y="([-\d.]+)"', g)
        assert use, g[:300]
        out.append((float(use.group(2)), float(use.group(3)), shapes[use.group(1)]))
    return out


def _width(svg: str) -> float:
    return float(re.search(r'<svg[^>]* width="([\d.]+)pt"', svg).group(1))


def _ticks(svg: str) -> list[float]:
    """The numbers written as tick labels (text elements that are only a number)."""
    return [float(t) for t in re.findall(r"<text [^>]*>(-?[\d.]+)</text>", svg)]


def test_pareto_points_spread_across_the_axis_when_the_budget_is_far_away() -> None:
    svg = plots.pareto_svg(_results(issue_run(100.0)), "local")
    pts = _points(svg)
    assert len(pts) == 8  # four candidates, two panels
    panel = sorted(x for x, _, _ in pts[:4])
    # the fastest and the slowest candidate lie far apart on a 0.1 .. 1.1 ms axis, not 1 % apart
    assert panel[-1] - panel[0] > 0.25 * _width(svg), panel
    assert "eb-budget-" not in svg  # 100 ms is off the data's axis: no line stretches it ...
    assert svg.count("p99 budget 100 ms, beyond the axis →") == 1  # ... the legend says where it is


def test_pareto_budget_line_drawn_when_it_lies_among_the_points() -> None:
    svg = plots.pareto_svg(_results(issue_run(0.5)), "local")
    assert svg.count('id="eb-budget-') == 2 and "p99 budget 0.5 ms" not in svg


def test_candidates_with_equal_numbers_stay_visible_with_their_own_shape() -> None:
    pts = _points(plots.pareto_svg(_results(issue_run()), "local"))[:4]
    base, _, int8, _ = pts
    assert (base[0], base[1]) == (int8[0], int8[1])  # the same spot ...
    assert len({shape for _, _, shape in pts}) == 4  # ... but every candidate has its own marker


def test_robustness_curves_of_equal_candidates_differ_in_marker_and_dash() -> None:
    svg = plots.robustness_svg(_results(issue_run()), "local")
    shapes = {_shape(d) for d in re.findall(r'<path id="m[0-9a-f]+" d="([^"]+)"', svg, flags=re.S)}
    assert len(shapes) >= 4, len(shapes)
    assert "stroke-dasharray" in svg  # at least one curve dashed, so one laid on another shows


def test_latency_axis_stops_past_the_largest_p99_and_marks_the_outlier() -> None:
    raw = issue_run()
    svg = plots.latency_svg(_results(raw), "local")
    p99s = [c["devices"]["local"]["latency_ms"]["p99"] for c in raw["candidates"]]
    assert max(_ticks(svg)) <= max(p99s) * 1.2  # not 0 .. 193 ms
    assert "max 193 ms" in svg and "eb-outlier-" in svg
    assert "p99 budget 100 ms, beyond the axis →" in svg and "eb-budget-" not in svg


def test_latency_budget_line_drawn_when_in_range() -> None:
    svg = plots.latency_svg(_results(issue_run(1.0)), "local")
    assert "eb-budget-" in svg


@pytest.mark.parametrize("values,expected", [([1.0, 3.0], (0.84, 3.16)), ([2.0], (1.8, 2.2)), ([0.0], (-1.0, 1.0))])
def test_data_range(values: list[float], expected: tuple[float, float]) -> None:
    assert plots.data_range(values) == pytest.approx(expected)
