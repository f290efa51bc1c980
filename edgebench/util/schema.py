"""The base of every typed config section (pydantic v2) and the one formatter of its errors.

A :class:`Section` is frozen, refuses unknown keys by name and takes values strictly (``true``
is not a number, ``"5"`` is not an integer, a string is not a list). Whatever goes wrong while
validating one becomes a single line that names the field path, what was expected and what was
found (:func:`one_line`), e.g. ``candidates[2].prune.ratio: expected a number in [0, 1), found 1.5``.

Checks that already speak :class:`~edgebench.errors.EdgebenchError` (``parse_prune_spec``,
``check_model_config``...) run inside validators through :func:`user_checks`; their messages
name their own path (``prune.ratio: ...``), which :func:`one_line` joins to the section's place.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from edgebench.errors import EdgebenchError

T = TypeVar("T")


class SectionError(EdgebenchError):
    """A section built directly (``DataConfig(...)``) that failed validation, in one line."""


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# A YAML list (or a tuple) of strictly typed items, held as a tuple (hashable, frozen).
Seq = Annotated[tuple[T, ...], BeforeValidator(_as_tuple)]


class Section(BaseModel):
    """A frozen, strict config section; built directly, a bad value raises :class:`SectionError`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    # where the section sits in a study ("model", "data"): names the path when built directly
    section: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SectionError(one_line(exc, (self.section,) if self.section else ())) from None

    # validating behaves as pydantic's own __init__: nested sections and model_validate skip this
    # wrapper (as pydantic's RootModel does), so their errors keep their full field path
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def expand(cls, data: Any) -> Any:
        """Raw input before it is read as a mapping (a shorthand becomes its mapping here)."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        """A mapping of known keys; unknown ones are named with the keys that are allowed."""
        if isinstance(data, cls):
            return data
        data = cls.expand(data)
        if data is None:  # an empty YAML section: its defaults
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, found {data!r}")
        unknown = sorted(map(str, set(data) - set(cls.model_fields)))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; expected some of {sorted(cls.model_fields)}")
        return data


@contextlib.contextmanager
def user_checks() -> Iterator[None]:
    """Inside a validator: an :class:`EdgebenchError` becomes a ValueError that pydantic places."""
    try:
        yield
    except EdgebenchError as exc:
        raise ValueError(str(exc)) from None


# what each of pydantic's type errors expected, in the words of our other messages
_EXPECTED = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "dataclass_type": "a mapping",
    "missing": "a value",
    "finite_number": "a finite number",
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(loc: tuple[int | str, ...], message: str) -> str:
    """*message* at *loc*. A message that starts with the end of *loc* (``prune.ratio: ...`` at
    ``candidates[2].prune``) continues that path: ``candidates[2].prune.ratio: ...``."""
    for k in range(len(loc), 0, -1):
        tail = _path(loc[-k:])
        if isinstance(loc[-k], str) and re.match(re.escape(tail) + r"[.:\[ ]", message):
            head = _path(loc[:-k])
            return f"{head}.{message}" if head else message
    if loc and re.match(r"[A-Za-z_][\w.\[\]]*: ", message):  # a path inside this place
        return f"{_path(loc)}.{message}"
    return f"{_path(loc)}: {message}" if loc else message


def _describe(err: Any) -> str:
    """One pydantic error as 'expected ..., found ...' (or the validator's own message)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    found = "nothing" if kind == "missing" else repr(err["input"])
    if kind == "literal_error":
        return f"expected {ctx['expected']}, found {found}"
    if kind == "extra_forbidden":
        return "unknown key"
    for key, sign in _BOUNDS.items():
        if key in ctx:
            return f"expected a value {sign} {ctx[key]}, found {found}"
    expected = _EXPECTED.get(kind)
    if expected is None:  # a check without words of ours: pydantic's, first letter lowered
        msg = str(err["msg"])
        return f"{msg[:1].lower()}{msg[1:]}, found {found}"
    return f"expected {expected}, found {found}"


def one_line(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """The first error of *exc* as one line: field path, what was expected, what was found."""
    err = exc.errors()[0]
    return _join(prefix + tuple(err["loc"]), _describe(err))


S = TypeVar("S", bound=Section)


def validate(cls: type[S], data: Any, where: str) -> S:
    """*data* as a *cls*, or one :class:`EdgebenchError` line starting with *where* (the file)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise EdgebenchError(f"{where}: {one_line(exc)}") from None
