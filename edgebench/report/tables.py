"""The report's data types: a :class:`Report` of :class:`Section` s of :class:`Table` s of
:class:`Cell` s. Every table builder (``model``, ``robust_tables``, ``search_tables``) and every
rendering (Markdown, HTML, terminal) imports them from here, so none depends on another's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One table cell: display text, the raw value it shows, a status class, a machine key."""

    text: str
    value: Any = None
    status: str = ""  # pass | fail | unmeasured | ready | not-ready | "" (css class / marker)
    key: str = ""  # metric name, e.g. "p99"; written as data-key
    threshold: Any = None  # gate ceiling, for gate cells
    detail: str = ""  # a secondary line (e.g. which attack is worst)


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    tables: tuple[Table, ...] = ()
    device: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Report:
    run_id: str
    created: str
    headline: tuple[tuple[str, str], ...]  # (label, text) facts about the run
    sections: tuple[Section, ...]
    counts: dict[str, int] = field(default_factory=dict)
