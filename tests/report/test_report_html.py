"""report.html: self-contained, escaped, and carrying the exact numbers of results.json."""

from __future__ import annotations

import json
import re

import pytest
from report_helpers import EVIL_HOST, candidate, entry, external_references, find_cell, html_cells

from edgebench.report.html import Safe, render_html, tag


@pytest.fixture(scope="module")
def page() -> tuple[dict, str]:
    from report_helpers import judged_fixture

    results = judged_fixture()
    return results, render_html(results)


def test_self_contained(page):
    _, html = page
    assert external_references(html) == []
    # Not even a namespace URL or a link: nothing in the page names a network location.
    assert not re.search(r"https?://|//cdn|\bwww\.", html)
    assert "<link" not in html and "<iframe" not in html and "@font-face" not in html
    import html as _html

    assert "Content-Security-Policy" in html and "default-src 'none'" in _html.unescape(html)


def test_external_reference_detector_is_not_blind():
    # The checker above must catch what it claims to (else test_self_contained proves nothing).
    bad = (
        '<img src="https://x/y.png"><link rel=stylesheet href=//cdn/x.css>'
        '<div style="background:url(http://e/x)"></div><style>@import "http://f/g.css";</style>'
    )
    assert len(external_references(bad)) == 4


def test_no_script_and_data_is_escaped(page):
    _, html = page
    assert "<script" not in html.lower()
    assert "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")  # only as escaped text
    assert "<img" not in html
    assert "pruned-50+int8&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "ci-runner&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    # Attribute values are escaped too (the candidate name is in data-candidate / data-value).
    assert 'data-candidate="pruned-50+int8&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_tag_builder_escapes_children_and_attributes():
    out = tag("td", '<b>"x"</b>', Safe("<i>ok</i>"), data_value='"><script>', class_="a")
    assert out == '<td data-value="&quot;&gt;&lt;script&gt;" class="a">&lt;b&gt;&quot;x&quot;&lt;/b&gt;<i>ok</i></td>'


def test_verdict_table_reads_back(page):
    results, html = page
    cells = html_cells(html)
    for cand in results["candidates"]:
        v = cand["devices"]["local"]["verdict"]
        cell = find_cell(cells, "t-verdict-local", cand["name"], "verdict")
        assert cell["value"] == v["status"] and cell["text"] == v["status"]
        for gate in v["gates"]:
            g = find_cell(cells, "t-verdict-local", cand["name"], gate["name"])
            assert gate["status"] in g["cls"].split()
            assert json.loads(g["threshold"]) == gate["threshold"]
            if gate["value"] is None:
                assert g["value"] is None and g["text"] == "unmeasured"
            else:
                assert json.loads(g["value"]) == gate["value"]


def test_latency_memory_accuracy_cells_read_back(page):
    results, html = page
    cells = html_cells(html)
    for cand in results["candidates"]:
        e = cand["devices"]["local"]
        for p in ("p50", "p90", "p99", "mean"):
            c = find_cell(cells, "t-latency-local", cand["name"], f"latency_ms.{p}")
            assert json.loads(c["value"]) == e["latency_ms"][p]
            assert c["text"] == f"{e['latency_ms'][p]:.3f}"
            c = find_cell(cells, "t-latency-local", cand["name"], f"latency_compute_ms.{p}")
            assert json.loads(c["value"]) == e["latency_compute_ms"][p]
        c = find_cell(cells, "t-accuracy-local", cand["name"], "clean_accuracy")
        assert json.loads(c["value"]) == e["clean_accuracy"]
        assert c["text"] == f"{100 * e['clean_accuracy']:.1f}%"
        c = find_cell(cells, "t-memory-local", cand["name"], "memory_mb.peak_rss")
        if e["memory_mb"] is None:
            assert c["value"] is None and c["text"] == "unmeasured" and "unmeasured" in c["cls"]
        else:
            assert json.loads(c["value"]) == e["memory_mb"]["peak_rss"]


def test_robustness_rows_read_back(page):
    results, html = page
    cells = html_cells(html)
    for cand in results["candidates"]:
        rows = cand["devices"]["local"]["robustness"]
        accs = [
            c
            for c in cells
            if c["table"] == "t-robustness-local"
            and c["candidate"] == cand["name"]
            and c["key"] == "robustness.accuracy"
        ]
        epss = [
            c
            for c in cells
            if c["table"] == "t-robustness-local" and c["candidate"] == cand["name"] and c["key"] == "eps"
        ]
        assert len(accs) == len(rows)
        for row, acc, eps in zip(rows, accs, epss):
            assert (json.loads(acc["value"]) if acc["value"] else None) == row["accuracy"]
            assert json.loads(eps["value"]) == row["eps"]
            if row["norm"] == "linf":
                assert eps["text"] == f"{round(row['eps'] * 255)}/255"


def test_candidate_facts_and_ops(page):
    results, html = page
    cells = html_cells(html)
    for cand in results["candidates"]:
        assert find_cell(cells, "t-candidates", cand["name"], "sha256")["text"] == cand["artifact"]["sha256"][:12]
        assert json.loads(find_cell(cells, "t-candidates", cand["name"], "params")["value"]) == cand["params"]
        assert json.loads(find_cell(cells, "t-candidates", cand["name"], "macs")["value"]) == cand["macs"]
        ops = cand["devices"]["local"]["op_profile"]
        first = find_cell(cells, "t-ops-local", cand["name"], "op_type")
        if ops:
            assert first["text"] == max(ops, key=lambda o: o["total_ms"])["op_type"]
        else:
            assert first["text"] == "unmeasured"


def test_plots_are_inline_svg(page):
    _, html = page
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    # pareto, robustness, latency, memory, ops for the one device
    assert len(svgs) == 5
    for svg in svgs:
        assert "<script" not in svg and "<image" not in svg
    # The evil candidate name is drawn as escaped SVG text, not markup.
    assert any("alert(1)&lt;/script&gt;" in s for s in svgs)


def test_plots_skip_what_was_never_measured(results):
    for c in results["candidates"]:
        e = c["devices"]["local"]
        e["op_profile"] = None
        e["memory_mb"] = None
        e["robustness"] = []
    html = render_html(results)
    assert len(re.findall(r"<svg\b", html)) == 2  # pareto (clean only) and latency
    assert html.count("unmeasured: nothing to plot") == 3


def test_dollar_and_underscore_names_render(results):
    candidate(results, "pruned-50")["name"] = "_$x^2$ & co"
    html = render_html(results)
    assert "_$x^2$ &amp; co" in html


def test_multi_device(results):
    results["devices"]["jetson-orin"] = {"name": "jetson-orin", "kind": "ssh", "profile": {}}
    entry(results, "base", "local")  # still there
    import copy

    for c in results["candidates"]:
        c["devices"]["jetson-orin"] = copy.deepcopy(c["devices"]["local"])
        c["devices"]["jetson-orin"]["latency_ms"]["p99"] *= 3
    html = render_html(results)
    cells = html_cells(html)
    c = find_cell(cells, "t-verdict-jetson-orin", "base", "p99_latency_ms")
    assert json.loads(c["value"]) == candidate(results, "base")["devices"]["jetson-orin"]["latency_ms"]["p99"]
    assert 'id="device-jetson-orin"' in html
    assert EVIL_HOST not in html  # only escaped
