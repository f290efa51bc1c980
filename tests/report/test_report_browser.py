"""report.html in headless Chromium: renders offline without console errors, loads nothing but
itself, runs no script from the data, and its tables show the numbers of results.json.

Talks to Chromium over the DevTools protocol (tests/report/report_cdp.py, standard library only).
Saves a screenshot to tests/artifacts/report.png for a human to look at.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from report_helpers import ARTIFACTS, EVIL_HOST, EVIL_NAME, find_cell, html_cells

from edgebench.report import render_report
from edgebench.report.gates import evaluate_verdicts
from edgebench.report.render import load_results

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.access("/usr/bin/chromium", os.X_OK),
        reason="headless Chromium not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    from report_cdp import Browser
    from report_helpers import RESULTS

    run = tmp_path_factory.mktemp("browser-run")
    (run / "results.json").write_text(RESULTS.read_text())
    _, html_path = render_report(run)
    results = evaluate_verdicts(load_results(run)[0])
    with Browser(width=1400, height=3000) as browser:
        browser.open(html_path.resolve().as_uri())
        out = {
            "results": results,
            "url": html_path.resolve().as_uri(),
            "problems": browser.problems(),
            "requests": browser.requests(),
            "dom": browser.evaluate("document.documentElement.outerHTML"),
            "scripts": browser.evaluate("document.scripts.length"),
            "imgs": browser.evaluate("document.images.length"),
            "dialogs": browser.dialogs(),
            "title": browser.evaluate("document.title"),
            "evil_text": browser.evaluate(
                "Array.from(document.querySelectorAll('#t-verdict-local td[data-key=candidate]')).map(td => td.textContent)"
            ),
            "svg_sizes": browser.evaluate(
                "Array.from(document.querySelectorAll('svg.plot')).map(s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])"
            ),
            "overflow": browser.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"),
            "screenshot": browser.screenshot(ARTIFACTS / "report.png"),
        }
    return out


def test_detector_sees_an_unescaped_script(tmp_path):
    """The checks below would catch a script that ran or a load the CSP blocked (not blind)."""
    from report_cdp import Browser

    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>alert(1)</script></body></html>")
    csp = tmp_path / "csp.html"
    csp.write_text(
        '<html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        "</head><body><script>alert(2)</script></body></html>"
    )
    with Browser(width=400, height=300) as browser:
        browser.open(page.as_uri())
        assert browser.dialogs() == ["1"]
        browser.open(csp.as_uri())
        assert browser.dialogs() == [] and any("Content Security Policy" in p for p in browser.problems())


def test_renders_without_console_errors(rendered):
    assert rendered["problems"] == []
    assert rendered["title"] == "edgebench report: demo-lenet5"


def test_loads_nothing_but_itself(rendered):
    assert rendered["requests"] == [rendered["url"]]


def test_no_script_from_the_data_ran(rendered):
    assert rendered["scripts"] == 0 and rendered["imgs"] == 0
    assert rendered["dialogs"] == []  # alert(1) from the candidate name never ran
    # The names are shown literally, as text.
    assert EVIL_NAME in rendered["evil_text"]
    assert EVIL_HOST in rendered["dom"].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')


def test_rendered_tables_show_results_numbers(rendered):
    results = rendered["results"]
    cells = html_cells(rendered["dom"])
    checked = 0
    for cand in results["candidates"]:
        e = cand["devices"]["local"]
        v = e["verdict"]
        assert find_cell(cells, "t-verdict-local", cand["name"], "verdict")["text"] == v["status"]
        for gate in v["gates"]:
            c = find_cell(cells, "t-verdict-local", cand["name"], gate["name"])
            assert (json.loads(c["value"]) if c["value"] is not None else None) == gate["value"]
            assert gate["status"] in c["cls"].split()
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


def test_plots_are_drawn_and_page_fits(rendered):
    sizes = rendered["svg_sizes"]
    assert len(sizes) == 5 and all(w > 300 and h > 150 for w, h in sizes)
    assert not rendered["overflow"]  # nothing wider than the 1400 px window


def test_screenshot_saved(rendered):
    png = Path(rendered["screenshot"])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
