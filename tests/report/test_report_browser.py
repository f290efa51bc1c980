"""report.html in a real browser (Playwright driving the system's headless Chromium): what only a
browser can tell. It renders offline with no console error and no Content-Security-Policy
violation, loads nothing but itself, runs no script from the data, draws every plot with a
non-zero size, stays usable at a phone's width (no horizontal scroll of the page), and its tables
show the numbers of results.json.

Screenshots (desktop and phone, and each plot alone) are kept in tests/artifacts/ for a human
to look at. The run shown is the fixture with issue 23's plot traps: a p99 budget (100 ms) far
beyond every latency, one 193 ms outlier, and int8 measuring exactly what base measures; the
plotted points must still spread across their axis.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_helpers import ARTIFACTS, EVIL_HOST, EVIL_NAME, RESULTS, find_cell, html_cells

from edgebench.report import render_report
from edgebench.report.render import load_results

CHROMIUM = "/usr/bin/chromium"
# Headless, offline and quiet: no sandbox (containers), no GPU, nothing fetched in the background.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--hide-scrollbars",
]
DESKTOP = {"width": 1400, "height": 1000}
PLOT_KEYS = ("pareto", "robustness", "latency", "memory", "ops")
PHONE = {"width": 375, "height": 812}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright not installed (pip install -e '.[dev]'); it drives the system Chromium, no download",
    ),
]

# Registered before any page script: CSP violations as the page itself sees them.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""

PLOTS_JS = """() => Array.from(document.querySelectorAll('svg')).map(s => {
  const r = s.getBoundingClientRect();
  return {visible: s.checkVisibility({opacityProperty: true, visibilityProperty: true}),
          width: r.width, height: r.height, left: r.left, right: r.right};
})"""


class Page:
    """One page in a fresh browser context, with every console message, page error, request,
    dialog and CSP violation recorded."""

    def __init__(self, browser: Any, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, java_script_enabled=True)
        self.context.add_init_script(WATCH_CSP)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> Page:
        self.page.goto(url, wait_until="load")
        return self

    def errors(self) -> list[str]:
        return [m for m in self.console if m.startswith(("error", "pageerror"))]

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__csp"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


# Where each Pareto point is drawn, in page pixels, relative to its plot.
POINTS_JS = """() => Array.from(document.querySelectorAll('figure[data-plot=pareto] svg')).map(s => {
  const box = s.getBoundingClientRect();
  return Array.from(s.querySelectorAll('g[id^="eb-point-"] use')).map(u => {
    const r = u.getBoundingClientRect();
    return {x: r.left + r.width / 2 - box.left, y: r.top + r.height / 2 - box.top, width: box.width};
  });
})"""


def issue_results() -> dict:
    """The fixture with issue 23's plot traps (see the module docstring)."""
    results = json.loads(RESULTS.read_text())
    results["budgets"]["max_p99_latency_ms"] = 100.0
    by_name = {c["name"]: c["devices"]["local"] for c in results["candidates"]}
    base, int8 = by_name["base"], by_name["int8"]
    base["latency_ms"]["max"] = 193.0
    int8["latency_ms"]["p50"] = base["latency_ms"]["p50"]
    int8["clean_accuracy"] = base["clean_accuracy"]
    for mine, theirs in zip(int8["robustness"], base["robustness"]):
        mine["accuracy"] = theirs["accuracy"]
    return results


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    run = tmp_path_factory.mktemp("browser-run")
    (run / "results.json").write_text(json.dumps(issue_results()))
    _, html_path = render_report(run)
    return {"url": html_path.resolve().as_uri(), "results": load_results(run)[0].dump()}


@pytest.fixture(scope="module")
def desktop(browser: Any, report: dict) -> Iterator[Page]:
    page = Page(browser, DESKTOP).open(report["url"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    for key in PLOT_KEYS:
        page.page.locator(f"figure[data-plot={key}]").first.screenshot(path=str(ARTIFACTS / f"plot-{key}.png"))
    yield page
    page.close()


@pytest.fixture(scope="module")
def phone(browser: Any, report: dict) -> Iterator[Page]:
    page = Page(browser, PHONE).open(report["url"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "report-phone.png"), full_page=True)
    yield page
    page.close()


def test_detectors_see_a_script_that_runs_and_a_csp_violation(browser: Any, tmp_path: Path) -> None:
    """The checks below are not blind: a script that runs shows up as a dialog, an inline script
    blocked by the page's CSP as a violation event and a console error."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>alert(1)</script></body></html>")
    csp = tmp_path / "csp.html"
    csp.write_text(
        '<html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        "</head><body><script>alert(2)</script></body></html>"
    )
    overflow = tmp_path / "wide.html"
    overflow.write_text("<html><body><table><tr><td style='min-width:900px'>x</td></tr></table></body></html>")
    page = Page(browser, PHONE)
    try:
        page.open(bad.as_uri())
        assert page.dialogs == ["1"]
        page.open(csp.as_uri())
        assert page.dialogs == ["1"]  # alert(2) was blocked
        assert page.csp_violations() == ["script-src-elem inline"]
        assert any("Content Security Policy" in m for m in page.errors())
        page.open(overflow.as_uri())
        assert page.page.evaluate("document.documentElement.scrollWidth") > PHONE["width"]
    finally:
        page.close()


def test_renders_without_console_errors_or_csp_violations(desktop: Page, phone: Page) -> None:
    for page in (desktop, phone):
        assert page.errors() == [] and page.csp_violations() == []
        assert page.dialogs == []  # alert(1) in a candidate name never ran
    assert desktop.page.title() == "edgebench report: demo-lenet5"


def test_loads_nothing_but_itself(desktop: Page, report: dict) -> None:
    assert desktop.requests == [report["url"]]


def test_no_script_from_the_data_ran(desktop: Page) -> None:
    p = desktop.page
    assert p.evaluate("document.scripts.length") == 0 and p.evaluate("document.images.length") == 0
    names = p.locator("#t-verdict-local td[data-key=candidate]").all_inner_texts()
    assert EVIL_NAME in names  # shown literally, as text
    assert EVIL_HOST in p.locator("body").inner_text()


def test_every_plot_is_visible_with_a_size(desktop: Page, phone: Page) -> None:
    plots = desktop.page.evaluate(PLOTS_JS)
    assert len(plots) == 5
    assert all(s["visible"] and s["width"] > 300 and s["height"] > 150 for s in plots), plots
    small = phone.page.evaluate(PLOTS_JS)
    assert len(small) == 5
    # shrunk to the phone's width, still drawn, and inside the screen
    assert all(s["visible"] and s["width"] > 100 and s["height"] > 50 for s in small), small
    assert all(s["left"] >= 0 and s["right"] <= PHONE["width"] + 0.5 for s in small), small


def test_plotted_points_spread_across_their_axis(desktop: Page) -> None:
    """Pareto points are not all at one x position although the budget is 100x the latencies
    (the axis spans the data), and base and int8, measured equal, are both drawn."""
    panels = desktop.page.evaluate(POINTS_JS)
    points = [p for panel in panels for p in panel]
    assert len(points) == 8, points  # four candidates in each of the two panels
    width = points[0]["width"]
    left = sorted(p["x"] for p in points if p["x"] < width / 2)  # the clean-accuracy panel
    right = sorted(p["x"] for p in points if p["x"] >= width / 2)  # the robust-accuracy panel
    for xs in (left, right):
        assert len(xs) == 4 and len({round(x) for x in xs}) >= 3, xs
        assert xs[-1] - xs[0] > 0.2 * width, xs  # spread over the panel, not squeezed at 0
    assert "p99 budget 100 ms" in desktop.page.locator("figure[data-plot=pareto]").inner_text()
    latency = desktop.page.locator("figure[data-plot=latency]").inner_text()
    assert "max 193 ms" in latency


def test_page_is_usable_at_phone_width(phone: Page) -> None:
    """No horizontal scroll of the page at 375 px: wide tables scroll inside their own box."""
    p = phone.page
    assert p.evaluate("window.innerWidth") == PHONE["width"]
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert p.evaluate("document.body.scrollWidth") <= PHONE["width"]
    p.evaluate("window.scrollTo(500, 0)")
    assert p.evaluate("window.scrollX") == 0
    # every table either fits or sits in a box that scrolls sideways
    unfit = p.evaluate(
        """() => Array.from(document.querySelectorAll('table')).filter(t => {
             const box = t.parentElement; const r = box.getBoundingClientRect();
             return r.right > window.innerWidth + 0.5 ||
                    (t.scrollWidth > box.clientWidth && getComputedStyle(box).overflowX !== 'auto');
           }).map(t => t.id)"""
    )
    assert unfit == []


def test_desktop_page_does_not_overflow(desktop: Page) -> None:
    assert desktop.page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]


def test_rendered_tables_show_results_numbers(desktop: Page, report: dict) -> None:
    results = report["results"]
    cells = html_cells(desktop.page.content())
    checked = 0
    for cand in results["candidates"]:
        e = cand["devices"]["local"]
        v = e["verdict"]
        assert find_cell(cells, "t-verdict-local", cand["name"], "verdict")["text"] == v["status"]
        for gate in v["gates"]:
            c = find_cell(cells, "t-verdict-local", cand["name"], gate["name"])
            assert (json.loads(c["value"]) if c["value"] is not None else None) == gate["value"]
            # a pass on an unstable measurement is shown as a warning, never a plain pass
            shown = "warn" if gate["status"] == "pass" and gate.get("unstable") else gate["status"]
            assert shown in c["cls"].split()
            checked += 1
        for p in ("p50", "p90", "p99"):
            c = find_cell(cells, "t-latency-local", cand["name"], f"latency_ms.{p}")
            assert json.loads(c["value"]) == e["latency_ms"][p] and c["text"] == f"{e['latency_ms'][p]:.3f}"
            checked += 1
        c = find_cell(cells, "t-accuracy-local", cand["name"], "clean_accuracy")
        assert json.loads(c["value"]) == e["clean_accuracy"]
        accs = [
            x
            for x in cells
            if x["table"] == "t-robustness-local"
            and x["candidate"] == cand["name"]
            and x["key"] == "robustness.accuracy"
        ]
        assert [json.loads(x["value"]) if x["value"] else None for x in accs] == [
            r["accuracy"] for r in e["robustness"]
        ]
        checked += 1 + len(accs)
    assert checked >= 60


def test_screenshots_saved(desktop: Page, phone: Page) -> None:
    sizes = {"report.png": 50_000, "report-phone.png": 50_000, **{f"plot-{k}.png": 5_000 for k in PLOT_KEYS}}
    for name, least in sizes.items():
        data = (ARTIFACTS / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > least, name
