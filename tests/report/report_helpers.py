"""Shared helpers for the report tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
RESULTS = DATA / "results.json"
EVIL_NAME = "pruned-50+int8<script>alert(1)</script>"
EVIL_HOST = 'ci-runner"><img src=x onerror=alert(2)>'
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

_cache: dict = {}


def load_fixture() -> dict:
    """A fresh deep copy of the fixture (tests mutate what they get)."""
    if "results" not in _cache:
        _cache["results"] = json.loads(RESULTS.read_text())
    return copy.deepcopy(_cache["results"])


def judged_fixture() -> dict:
    """The fixture as results.json is assembled: verdicts stored (the fixture itself has none)."""
    from edgebench.report.gates import judged

    return judged(load_fixture()).dump()


def candidate(results: dict, name: str) -> dict:
    return next(c for c in results["candidates"] if c["name"] == name)


def entry(results: dict, name: str, device: str = "local") -> dict:
    return candidate(results, name)["devices"][device]


def write_run(folder: Path, results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    return folder


def html_cells(html: str) -> list[dict]:
    """Every ``<td>`` of every table as ``{table, candidate, key, value, threshold, cls, text}``."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.cells: list[dict] = []
            self.table: str | None = None
            self.row: str | None = None
            self.cur: dict | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self.table = a.get("id")
            elif tag == "tr":
                self.row = a.get("data-candidate")
            elif tag == "td":
                self.cur = {
                    "table": self.table,
                    "candidate": self.row,
                    "key": a.get("data-key"),
                    "value": a.get("data-value"),
                    "threshold": a.get("data-threshold"),
                    "cls": a.get("class") or "",
                    "text": "",
                }

        def handle_endtag(self, tag):
            if tag == "td" and self.cur is not None:
                self.cur["text"] = self.cur["text"].strip()
                self.cells.append(self.cur)
                self.cur = None

        def handle_data(self, data):
            if self.cur is not None:
                self.cur["text"] += data

    parser = Cells()
    parser.feed(html)
    return parser.cells


def find_cell(cells: list[dict], table: str, candidate: str | None, key: str, nth: int = 0) -> dict:
    hits = [
        c
        for c in cells
        if c["table"] == table and c["key"] == key and (candidate is None or c["candidate"] == candidate)
    ]
    assert len(hits) > nth, f"no cell {key!r} for {candidate!r} in table {table!r}"
    return hits[nth]


def external_references(html: str) -> list[str]:
    """URLs the page would load or follow outside itself: URL-valued attributes of every element
    and CSS ``url(...)`` / ``@import`` in style attributes and <style> blocks, except in-page
    anchors (``#...``) and ``data:`` URIs. Parsed as HTML, so escaped text cannot trip it."""
    import re
    from html.parser import HTMLParser

    url_attrs = {
        "src",
        "href",
        "srcset",
        "action",
        "formaction",
        "poster",
        "data",
        "xlink:href",
        "background",
        "ping",
        "manifest",
        "cite",
        "longdesc",
        "codebase",
        "archive",
    }

    def css_urls(css: str) -> list[str]:
        return re.findall(r"""url\(\s*["']?([^"')]+)""", css, re.I) + re.findall(
            r"""@import\s+["']([^"']+)""", css, re.I
        )

    class Refs(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.refs: list[str] = []
            self.in_style = False

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if value is None:
                    continue
                if name.lower() in url_attrs:
                    self.refs.extend(v.strip().split()[0] for v in value.split(",") if v.strip())
                elif name.lower() == "style":
                    self.refs.extend(css_urls(value))
                elif name.lower() == "http-equiv" and value.lower() == "refresh":
                    self.refs.append("meta-refresh")
            self.in_style = tag == "style"

        def handle_endtag(self, tag):
            if tag == "style":
                self.in_style = False

        def handle_data(self, data):
            if self.in_style:
                self.refs.extend(css_urls(data))

    parser = Refs()
    parser.feed(html)
    return [r for r in parser.refs if not r.startswith("#") and not r.lower().startswith("data:")]
