"""Issue 23, item 5: no robustness table sets accuracy on one set of images beside accuracy on
another. The run from the issue: 48 evaluation images, transfer attacks on 16, white-box on 16;
the base's clean accuracy is 0.229 over 48 but 0.0 over the 16 attacked, where one attack left
0.312 (the attack fixed images it got wrong clean). Checked in the terminal view ``edgebench run``
prints, in the HTML and Markdown reports, and in results.json's rows."""

from __future__ import annotations

import io
import re

import pytest
from report_helpers import find_cell, html_cells, load_fixture
from rich.console import Console

from edgebench.report.run_view import robustness_table, whitebox_table


def _issue_run() -> dict:
    """The fixture cut to the issue's counts: transfer rows on 16 of 48 images, white-box rows
    (and the pgd-linf-255 sanity row) on 16, one sanity warning."""
    results = load_fixture()
    for cand in results["candidates"]:
        e = cand["devices"]["local"]
        e["eval_count"] = 48
        wb = []
        for r in e["robustness"]:
            r["count"] = 16
            r["clean_accuracy"] = 0.25
            wb.append(dict(r, setting="whitebox", set=r["id"], id=f"whitebox:{r['id']}", clean_accuracy=0.1875))
        wb.append(
            dict(
                wb[-1],
                attack="pgd",
                norm="linf",
                eps=1.0,
                set="pgd-linf-255",
                id="whitebox:pgd-linf-255",
                accuracy=0.0,
                sanity_only=True,
            )
        )
        e["robustness"] += wb
    base = results["candidates"][0]["devices"]["local"]
    base["clean_accuracy"] = 0.229
    first = base["robustness"][0]
    first["accuracy"], first["clean_accuracy"] = 0.312, 0.0
    base["sanity"] = [
        {
            "check": "accuracy_decreases",
            "status": "warn",
            "label": "accuracy rises with epsilon: possible gradient masking",
            "numbers": [],
            "detail": "accuracy rises with epsilon in 1 step(s)",
        }
    ]
    for a in results["attacks"]:
        a["count"] = 16
    return results


def _text(table) -> str:
    console = Console(file=io.StringIO(), width=250)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _row(text: str, label: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.strip("│ ").startswith(label))
    return [c.strip() for c in line.strip("│").split("│")]


def test_terminal_transfer_rows_state_their_count_and_the_clean_accuracy_on_those_images() -> None:
    text = _text(robustness_table(_issue_run(), "local"))
    assert _row(text, "clean, all images")[:3] == ["clean, all images", "48", "0.229"]
    assert _row(text, "clean, the 16 attacked")[:3] == ["clean, the 16 attacked", "16", "0.000"]
    assert _row(text, "fgsm-linf-8")[:3] == ["fgsm-linf-8", "16", "0.312"]


def test_terminal_whitebox_rows_state_their_count_and_explain_the_sanity_row() -> None:
    text = _text(whitebox_table(_issue_run(), "local"))
    assert _row(text, "clean, the 16 attacked")[:3] == ["clean, the 16 attacked", "16", "0.188"]
    assert _row(text, "pgd-linf-255 (sanity)")[:2] == ["pgd-linf-255 (sanity)", "16"]
    flat = re.sub(r"\s+", " ", text)
    assert "pgd-linf-255 is a sanity check, not a threat model" in flat
    assert "base: accuracy rises with epsilon: possible gradient masking" in flat


def test_a_row_whose_candidates_saw_different_images_says_so() -> None:
    results = _issue_run()
    base = results["candidates"][0]["devices"]["local"]
    next(r for r in base["robustness"] if r["id"] == "pgd-linf-8")["count"] = 32
    text = _text(robustness_table(results, "local"))
    assert _row(text, "pgd-linf-8")[1] == "16 (base 32)"


@pytest.mark.parametrize("render", ["html", "markdown"])
def test_report_robustness_rows_state_count_and_clean_accuracy_on_the_same_images(render: str) -> None:
    from edgebench.report.gates import judged

    results = judged(_issue_run()).dump()
    if render == "html":
        from edgebench.report.html import render_html

        cells = html_cells(render_html(results, with_plots=False))
        assert find_cell(cells, "t-robustness-local", "base", "robustness.count")["text"] == "16"
        assert find_cell(cells, "t-robustness-local", "base", "robustness.clean_accuracy")["text"] == "0.0%"
        assert find_cell(cells, "t-robustness-local", "base", "robustness.accuracy")["text"] == "31.2%"
        assert find_cell(cells, "t-settings-local", "base", "whitebox.clean_accuracy")["value"] == "0.1875"
        # the sanity table names what is expected and, apart, what was found
        check = find_cell(cells, "t-sanity-local", "base", "sanity.check")["text"]
        assert check == "accuracy does not rise as epsilon grows (accuracy_decreases)"
        found = find_cell(cells, "t-sanity-local", "base", "sanity.label")["text"]
        assert found.startswith("accuracy rises with epsilon")
    else:
        from edgebench.report.markdown import render_markdown

        md = render_markdown(results)
        section = md[md.index("### Robustness to adversarial inputs crafted on the base") :]
        header = section.splitlines()[2]
        assert "| Images |" in header and "Clean accuracy, same images" in header
        first = section.splitlines()[4]
        assert "| 16 | 0.0% |" in first and "31.2%" in first
