"""The one exception type for user errors.

The CLI prints an :class:`EdgebenchError` as a single line (no traceback) and exits with
:data:`EXIT_USAGE`. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EXIT_OK = 0
EXIT_NOT_READY = 1  # a gate failed: at least one candidate x device is NOT READY
EXIT_USAGE = 2  # bad input: missing file, corrupt model, wrong shape, unknown device...
EXIT_UNMEASURED = 3  # nothing failed, but some gate was never measured
EXIT_INCONCLUSIVE = 4  # nothing failed or is missing, but an interval straddles its budget (--fail-on inconclusive)


class EdgebenchError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The message should say what was expected and what was found.
    """

    exit_code = EXIT_USAGE


def expect(condition: bool, message: str) -> None:
    """Raise :class:`EdgebenchError` with *message* unless *condition* holds."""
    if not condition:
        raise EdgebenchError(message)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def unknown_keys(unknown: Iterable[Any], known: Iterable[str], noun: str = "key") -> str:
    """The one wording of unknown keys (a study section, results.json, an agent job's fields)."""
    return f"unknown {noun}(s) {sorted(map(str, unknown))}; expected some of {sorted(known)}"


def check_keys(data: Mapping[str, Any], allowed: Any, where: str) -> None:
    """Refuse keys of *data* outside *allowed* (names or a dataclass), naming both sides."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(allowed)} if dataclasses.is_dataclass(allowed) else set(allowed)
    unknown = set(data) - names
    if unknown:
        raise EdgebenchError(f"{where}: {unknown_keys(unknown, names)}")
