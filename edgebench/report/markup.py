"""Shared by the terminal views (``*_view.py``): a value as Rich markup, and lines of text.

A view returns a list of renderables that the CLI prints one by one; a ``str`` in that list is
printed as Rich markup with Rich's highlighting, a :func:`line` without it, and a
:func:`soft_line` whole, never wrapped nor cropped (``console.print(soft_wrap=True)``).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text


def fmt(value: Any, spec: str = ".3g", unit: str = "") -> str:
    """A number for a table, or 'unmeasured' when nobody measured it."""
    if value is None:
        return "[dim]unmeasured[/dim]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:{spec}}{unit}"
    return str(value)


def line(markup: str) -> Text:
    """One line of Rich markup, printed without highlighting (``console.print(s, highlight=False)``)."""
    return Text.from_markup(markup)


def soft_line(markup: str) -> Text:
    """A line printed whole: no wrapping, no cropping, however wide the terminal."""
    text = Text.from_markup(markup, overflow="ignore")
    text.no_wrap = True
    return text


def is_soft(renderable: object) -> bool:
    """Whether *renderable* is a :func:`soft_line`: the CLI prints it with ``soft_wrap=True``
    (Rich joins the texts it prints into a new one, so the line's own ``no_wrap`` is lost)."""
    return isinstance(renderable, Text) and bool(renderable.no_wrap) and renderable.overflow == "ignore"
