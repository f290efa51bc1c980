"""Issue 20: robust accuracy (the per-image worst case over every attack) and the divergence rows
are shown beside the per-attack rows: in the HTML and Markdown reports and in the terminal view
``edgebench run`` prints; and results.json keeps them, typed."""

from __future__ import annotations

import io

from report_helpers import entry, find_cell, html_cells, load_fixture
from rich.console import Console

WORST = {
    "id": "worst-linf-8",
    "norm": "linf",
    "eps": 8 / 255,
    "robust_accuracy": 0.40625,
    "robust_accuracy_ci95": [0.2521, 0.5796],
    "count": 32,
    "images": "evaluation images 0-31",
    "clean_accuracy": 0.96875,
    "attacks": ["fgsm-linf-8", "whitebox:pgd-linf-8", "divergence:diva-linf-8"],
    "by_setting": {"transfer": 0.59375, "whitebox": 0.5, "divergence": 0.875},
    "note": "computed on the 32 images every attack covered (transfer 256, whitebox 32, divergence 32 images attacked)",
    "base_robust_accuracy": 0.65625,
}
DIVA = {
    "setting": "divergence",
    "set": "diva-linf-8",
    "attack": "diva",
    "norm": "linf",
    "eps": 8 / 255,
    "id": "divergence:diva-linf-8",
    "accuracy": 0.875,
    "accuracy_ci95": [0.719, 0.950],
    "count": 32,
    "clean_accuracy": 0.96875,
    "divergence_rate": 0.09375,
    "divergence_rate_ci95": [0.0324, 0.2422],
    "divergence_count": 3,
    "base_accuracy": 0.96875,
}


def _results() -> dict:
    from edgebench.report.gates import judged

    results = load_fixture()
    e = entry(results, "int8")
    e["robust_accuracy"] = [WORST]
    e["robustness"].append(DIVA)
    return judged(results).dump()


def test_results_keep_the_worst_case_typed_and_find_it_by_set() -> None:
    from edgebench.results import validate_results

    typed = validate_results(_results())
    e = next(c for c in typed.candidates if c.name == "int8").devices["local"]
    row = e.worst_case("pgd-linf-8")
    assert row is not None and row.robust_accuracy == 0.40625 and row.count == 32
    assert e.worst_case("whitebox:fgsm-linf-8") is row and e.worst_case("pgd-linf-16") is None


def test_html_and_markdown_show_robust_accuracy_and_divergence() -> None:
    from edgebench.report.html import render_html
    from edgebench.report.markdown import render_markdown

    results = _results()
    cells = html_cells(render_html(results, with_plots=False))
    assert find_cell(cells, "t-worst-case-local", "int8", "worst.robust_accuracy")["text"] == "40.6%"
    assert find_cell(cells, "t-worst-case-local", "int8", "worst.count")["text"].startswith(
        "32 (evaluation images 0-31"
    )
    assert find_cell(cells, "t-worst-case-local", "int8", "worst.by_setting.transfer")["text"] == "59.4%"
    assert find_cell(cells, "t-worst-case-local", "int8", "worst.base_robust_accuracy")["text"] == "65.6%"
    assert find_cell(cells, "t-divergence-local", "int8", "divergence.divergence_rate")["text"] == "9.4%"
    md = render_markdown(results)
    section = md[md.index("Robust accuracy: right under every attack") :]
    assert "40.6%" in section.splitlines()[4] and "int8" in section.splitlines()[4]
    assert "Divergence attack: inputs the base still gets right" in md


def test_terminal_run_view_shows_them_after_the_per_attack_rows() -> None:
    from edgebench.report.run_view import run_view

    console = Console(file=io.StringIO(), width=300)
    from pathlib import Path

    for part in run_view(_results(), Path("/tmp/run")):
        console.print(part)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.index("accuracy under attacks crafted on base") < text.index("Robust accuracy: right under every")
    line = next(ln for ln in text.splitlines() if "40.6%" in ln)
    assert "int8" in line and "59.4%" in line
    assert "Base right, candidate wrong" in text
