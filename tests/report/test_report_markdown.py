"""report.md: every section present, values formatted, unmeasured shown, text escaped."""

from __future__ import annotations

import pytest
from report_helpers import EVIL_NAME, entry, judged_fixture

from edgebench.report import format as fmt
from edgebench.report.markdown import md_escape, render_markdown


@pytest.fixture(scope="module")
def md() -> tuple[dict, str]:
    results = judged_fixture()
    return results, render_markdown(results)


def row_of(md_text: str, heading: str, first_cell: str, nth: int = 0) -> list[str]:
    """The cells of the nth table row starting with *first_cell* under the *heading* table."""
    section = md_text.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) > nth, f"no row {first_cell!r} under {heading!r}"
    return [c.strip() for c in rows[nth].strip("|").split(" | ")]


def test_sections(md):
    _, text = md
    for heading in (
        "## Verdicts",
        "### Verdict on local",
        "### Candidates and artifacts",
        "### Latency, batch 1 (ms)",
        "### Throughput and batch sweep",
        "### Memory (MB) and power",
        "### Clean accuracy and fidelity",
        "### Robustness to adversarial inputs",
        "### Top 5 operators by time",
        "### Roofline estimate",
        "### Versions",
        "### Host (compress, export, attack)",
        "### Adversarial sets",
    ):
        assert heading in text, heading


def test_verdict_rows(md):
    results, text = md
    row = row_of(text, "Verdict on local", "pruned-50")
    e = entry(results, "pruned-50")
    assert row[1] == "✅ READY"
    assert row[2] == ""  # caveats: none
    assert row[3] == f"✅ {e['latency_ms']['p99']:.3f} ms pass"
    assert row[4] == f"✅ {e['memory_mb']['peak_rss']:.1f} MB pass"
    evil = row_of(text, "Verdict on local", md_escape(EVIL_NAME))
    assert evil[1] == "❌ NOT READY"
    assert evil[2] == "⚠️ unstable latency"
    assert evil[4] == "⚠️ unmeasured"
    int8 = row_of(text, "Verdict on local", "int8")
    assert int8[1] == "⚠️ UNMEASURED"
    assert "pgd-l2-1.0" in int8[6]
    assert "max 1.000 ms" not in text and "p99 latency ≤ 1.000 ms" in text


def test_latency_rows_name_both_timings(md):
    results, text = md
    e = entry(results, "base")
    e2e = row_of(text, "Latency, batch 1 (ms)", "base", 0)
    comp = row_of(text, "Latency, batch 1 (ms)", "base", 1)
    assert e2e[1] == "end-to-end" and comp[1] == "compute"
    assert e2e[2:5] == [f"{e['latency_ms'][p]:.3f}" for p in ("p50", "p90", "p99")]
    assert comp[2:5] == [f"{e['latency_compute_ms'][p]:.3f}" for p in ("p50", "p90", "p99")]
    evil = row_of(text, "Latency, batch 1 (ms)", md_escape(EVIL_NAME))
    assert evil[9] == "❌ yes"  # unstable


def test_accuracy_and_robustness(md):
    results, text = md
    e = entry(results, "pruned-50")
    row = row_of(text, "Clean accuracy and fidelity to the base", "pruned-50")
    assert row[1] == fmt.pct(e["clean_accuracy"])
    assert row[2] == fmt.ci(e["clean_accuracy_ci95"])
    assert row[3] == "0.8 pp"
    rob = row_of(text, "Robustness to adversarial inputs crafted on the base", "pruned-50", 4)  # pgd-linf-8
    r = e["robustness"][4]
    assert rob[1:5] == ["pgd", "linf", "8/255", "256"]  # then the clean accuracy on those 256 images
    assert rob[6] == fmt.pct(r["accuracy"]) and rob[8] == fmt.pct(r["transfer_success_rate"])
    l2 = row_of(text, "Robustness to adversarial inputs crafted on the base", "int8", 6)
    assert l2[3] == "1" and l2[6] == "unmeasured"


def test_unmeasured_never_zero(md):
    _, text = md
    mem = row_of(text, "Memory (MB) and power", md_escape(EVIL_NAME))
    assert mem[1:6] == ["unmeasured"] * 5
    roof = row_of(text, "Roofline estimate", "int8")
    assert roof[1] == "unmeasured"


def test_environment(md):
    results, text = md
    for k, v in results["environment"]["versions"].items():
        assert f"| {k} | {v} |" in text
    assert "| git_revision | 1fc054f |" in text


def test_escaping(md):
    _, text = md
    assert "<script>" not in text and "<img" not in text
    assert "pruned-50+int8&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert md_escape("a|b`c\nd") == "a\\|b\\`c d"


@pytest.mark.parametrize(
    "norm, eps, shown",
    [("linf", 8 / 255, "8/255"), ("linf", 0.5 / 255, "0.5/255"), ("l2", 1.0, "1"), ("linf", None, "unmeasured")],
)
def test_eps_format(norm, eps, shown):
    assert fmt.eps(norm, eps) == shown


def test_formatters_show_unmeasured():
    for f in (fmt.ms, fmt.pct, fmt.pp, fmt.mb, fmt.count, fmt.si, fmt.size, fmt.ips, fmt.sci, fmt.ci):
        assert f(None) == "unmeasured"
    assert fmt.size(61234) == "59.8 KiB" and fmt.si(61706) == "61.7 K" and fmt.count(247232) == "247,232"
