"""``report.html``: one self-contained page that works offline.

No external URL, no CDN, no web font, no JavaScript: CSS is inline, plots are inline SVG. A
Content-Security-Policy forbids scripts and any network load, as a second line of defence.
Markup is built only through :func:`tag`, which escapes every text child and attribute value;
the only unescaped strings are :class:`Safe` ones this module (or matplotlib's SVG writer,
which escapes text itself) produced.

Every table cell carries ``data-key`` (metric) and, when measured, ``data-value`` (the raw
JSON value) so scripts and tests can read the exact numbers back; rows carry ``data-candidate``.
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Iterable
from typing import Any

from edgebench.report.model import build_report, status_class
from edgebench.report.tables import Cell, Report, Section, Table
from edgebench.results import Results, as_results


class Safe(str):
    """Markup that is already escaped (never construct one from outside data)."""


def esc(value: Any) -> Safe:
    return Safe(_html.escape(str(value), quote=True))


def _children(items: Iterable[Any]) -> str:
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, Safe):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.append(_children(item))
        else:
            out.append(esc(item))
    return "".join(out)


def tag(name: str, *children: Any, attrs: dict[str, Any] | None = None, **kw: Any) -> Safe:
    """``<name attr="...">children</name>`` with everything escaped; ``class_`` -> ``class``."""
    merged = dict(attrs or {})
    for key, value in kw.items():
        merged[key.rstrip("_").replace("_", "-")] = value
    parts = [name]
    for key, value in merged.items():
        if value is None or value is False:
            continue
        parts.append(esc(key) if value is True else f'{esc(key)}="{esc(value)}"')
    return Safe(f"<{' '.join(parts)}>{_children(children)}</{name}>")


CSS = """
:root{--ok:#15803d;--ok-bg:#dcfce7;--bad:#b91c1c;--bad-bg:#fee2e2;--unk:#92400e;--unk-bg:#fef3c7;
--ink:#111827;--mute:#6b7280;--line:#e5e7eb;--head:#f3f4f6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fafafa}
header{background:#111827;color:#f9fafb;padding:20px 32px}
header h1{margin:0 0 8px;font-size:22px;font-weight:600;overflow-wrap:anywhere}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0;font-size:13px}
header dt{color:#9ca3af}header dd{margin:0;overflow-wrap:anywhere}
.chips{margin-top:12px;display:flex;gap:8px;flex-wrap:wrap}
.chip{padding:3px 10px;border-radius:999px;font-weight:600;font-size:12px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;font-size:13px}
nav a{margin-right:16px;color:#1d4ed8;text-decoration:none}
main{padding:8px 32px 48px;max-width:1500px}
section{margin-top:24px}
h2{font-size:19px;border-bottom:2px solid var(--line);padding-bottom:4px;overflow-wrap:anywhere}
h3{font-size:15px;margin:18px 0 6px;overflow-wrap:anywhere}
.note{color:var(--mute);font-size:12.5px;margin:4px 0 10px;max-width:110ch}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:12.5px;margin-bottom:4px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.cand{font-weight:600;max-width:28ch;overflow-wrap:anywhere}
td.pass,.chip.ready,td.ready{background:var(--ok-bg);color:var(--ok)}
td.fail,.chip.not-ready,td.not-ready{background:var(--bad-bg);color:var(--bad)}
td.unmeasured,.chip.unmeasured,td.warn{background:var(--unk-bg);color:var(--unk)}
td.ready,td.not-ready,td.verdict-unmeasured,td.inconclusive{font-weight:700;white-space:nowrap}
td.inconclusive,.chip.inconclusive{background:#ede9fe;color:#6d28d9}
td.verdict-unmeasured{background:var(--unk-bg);color:var(--unk)}
table.verdict td{font-size:13px;max-width:34ch}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(560px,100%),1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px}
figcaption{font-weight:600;font-size:13px;margin-bottom:4px}
svg.plot{max-width:100%;height:auto;display:block;margin:0 auto}
details{margin:6px 0}
summary{cursor:pointer;font-weight:600;font-size:15px;margin:14px 0 6px}
.detail{display:block;font-size:11px;font-weight:400;opacity:.85;white-space:normal}
figure.wide{grid-column:1/-1}
.empty{color:var(--mute);font-style:italic}
footer{color:var(--mute);font-size:12px;padding:16px 32px}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

# Metrics whose cells are numbers (right-aligned).
_TEXT_KEYS = {
    "candidate",
    "verdict",
    "latency_kind",
    "mode",
    "attack",
    "norm",
    "recipe",
    "precision",
    "sha256",
    "onnx_checker",
    "telemetry.source",
    "op_type",
    "name",
    "roofline.precision",
    "id",
    "params",
    "caveats",
    "caveat",
    "caveat.detail",
    "images",
}


def _data_value(value: Any) -> str | None:
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def cell_html(cell: Cell) -> Safe:
    classes = []
    if cell.key == "candidate":
        classes.append("cand")
    elif cell.key == "verdict":
        classes.append("verdict-unmeasured" if cell.status == "unmeasured" else cell.status)
    elif cell.key not in _TEXT_KEYS and not cell.key.startswith("env.") and not cell.key.endswith(("ci95", "unstable")):
        classes.append("num")
    if cell.status and cell.key != "verdict":
        classes.append(cell.status)
    detail = tag("span", cell.detail, class_="detail") if cell.detail else None
    return tag(
        "td",
        cell.text,
        detail,
        class_=" ".join(classes) or None,
        data_key=cell.key or None,
        data_value=_data_value(cell.value),
        data_threshold=None if cell.threshold is None else json.dumps(cell.threshold),
    )


def table_html(table: Table, css_class: str | None = None) -> Safe:
    if not table.rows:
        body = tag("p", "Nothing measured.", class_="empty")
    else:
        head = tag("thead", tag("tr", [tag("th", c, scope="col") for c in table.columns]))
        rows = []
        for row in table.rows:
            cand = next((c.value for c in row if c.key == "candidate"), None)
            rows.append(tag("tr", [cell_html(c) for c in row], data_candidate=cand))
        body = tag(
            "div", tag("table", head, tag("tbody", rows), class_=css_class, id=f"t-{table.key}"), class_="scroll"
        )
    note = tag("p", table.note, class_="note") if table.note else None
    return Safe(tag("h3", table.title) + body + (note or ""))


def _figure(title: str, svg: str | None, wide: bool = False, key: str | None = None) -> Safe:
    if svg is None:
        content = tag("p", "unmeasured: nothing to plot", class_="empty")
    else:
        if not svg.lstrip().startswith("<svg"):
            raise ValueError("plot is not an inline <svg> element")
        content = Safe(svg)  # produced by matplotlib, which escapes its text (see plots.py)
    return tag("figure", tag("figcaption", title), content, class_="wide" if wide else None, data_plot=key)


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)


def section_html(section: Section, results: Results, with_plots: bool) -> Safe:
    parts: list[Any] = [tag("h2", section.title)]
    if section.note:
        parts.append(tag("p", section.note, class_="note"))
    if section.device is not None and with_plots:
        from edgebench.report.plots import device_plots

        figs = [
            _figure(title, svg, wide=key in ("pareto", "robustness"), key=key)
            for key, title, svg in device_plots(results, section.device)
        ]
        parts.append(tag("div", figs, class_="plots"))
    for table in section.tables:
        css = "verdict" if table.key.startswith("verdict-") else None
        parts.append(table_html(table, css))
    return tag("section", parts, id=_anchor(section.key))


def render_html(results: Results | dict, report: Report | None = None, with_plots: bool = True) -> str:
    """The whole HTML page for *results* (typed, or a results.json object, validated here)."""
    results = as_results(results)
    report = report or build_report(results)
    chips = [tag("span", f"{n} {s}", class_=f"chip {status_class(s)}") for s, n in report.counts.items()]
    header = tag(
        "header",
        tag("h1", f"edgebench readiness report: {report.run_id}"),
        tag("dl", [Safe(tag("dt", k) + tag("dd", v)) for k, v in report.headline]),
        tag("div", chips, class_="chips"),
    )
    nav = tag("nav", [tag("a", s.title, href=f"#{_anchor(s.key)}") for s in report.sections])
    body = tag("main", [section_html(s, results, with_plots) for s in report.sections])
    footer = tag(
        "footer",
        "Generated by edgebench from results.json. Values nobody measured are shown "
        "as \u201cunmeasured\u201d, never as 0. This page loads nothing from the network.",
    )
    head = Safe(
        '<meta charset="utf-8">'
        + tag("meta", http_equiv="Content-Security-Policy", content=CSP).replace("></meta>", ">")
        + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + tag("title", f"edgebench report: {report.run_id}")
        + tag("style", Safe(CSS))
    )
    return (
        "<!DOCTYPE html>\n" + tag("html", tag("head", head), tag("body", header, nav, body, footer), lang="en") + "\n"
    )
