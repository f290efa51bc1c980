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
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, TypeVar, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from edgebench.errors import EdgebenchError, unknown_keys

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
            raise SectionError(one_line(exc, (self.section,) if self.section else (), data, type(self))) from None

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
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise ValueError(unknown_keys(unknown, cls.model_fields))
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
    "number_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "missing": "a value",
    "finite_number": "a finite number",
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def found(value: Any) -> str:
    """*value* as the user wrote it (YAML/JSON words for true, false, null), at most 60 characters."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _expected(err: Any) -> str | None:
    """What a type error expected, in words; None for an error that is not about a type."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "literal_error":
        return str(ctx["expected"])
    if kind == "missing":
        return None
    for key, sign in _BOUNDS.items():
        if key in ctx:
            return f"a value {sign} {ctx[key]}"
    return _EXPECTED.get(kind)


def _describe(err: Any, alternatives: list[Any]) -> str:
    """One pydantic error as 'expected ..., found ...' (or the validator's own message);
    the other errors at the same place (a union's members) join what was expected."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "expected a value, found nothing"
    expected = [e for e in map(_expected, [err, *alternatives]) if e]
    if not expected:  # a check without words of ours: pydantic's, first letter lowered
        msg = str(err["msg"])
        return f"{msg[:1].lower()}{msg[1:]}, found {found(err['input'])}"
    return f"expected {' or '.join(dict.fromkeys(expected))}, found {found(err['input'])}"


def _data_loc(loc: tuple[int | str, ...], data: Any, kind: str) -> tuple[int | str, ...]:
    """*loc* as a path into *data*: without the union-member tags pydantic inserts (parts that are
    no key or index there), keeping the last part of a missing key."""
    out: list[int | str] = []
    obj = data
    for i, part in enumerate(loc):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, (list, tuple)) and isinstance(part, int) and 0 <= part < len(obj):
            obj = obj[part]
        elif not (kind == "missing" and i == len(loc) - 1):
            continue  # a union member's tag
        out.append(part)
    return tuple(out)


def _strip(tp: Any) -> Any:
    """*tp* without Annotated metadata and without ``| None``."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return tp


def _model_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the object at *loc* under *model* (None if not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return None
            current = field.annotation
        else:
            args = [a for a in typing.get_args(_strip(current)) if a is not type(None)]
            current = args[-1] if args else None
        current = _strip(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def one_line(
    exc: ValidationError, prefix: tuple[str, ...] = (), data: Any = None, model: type[BaseModel] | None = None
) -> str:
    """The first error of *exc* as one line: field path, what was expected, what was found.

    With the validated *data*, the path is the one into the file (a union member's tag dropped)
    and the union's alternatives are joined; with the root *model*, an unknown key names the keys
    its object allows. Further errors elsewhere are counted, not listed."""
    errors = exc.errors()

    def where(e: Any) -> tuple[int | str, ...]:
        loc = tuple(e["loc"])
        return _data_loc(loc, data, e["type"]) if data is not None else loc

    first = errors[0]
    loc = where(first)
    same = [e for e in errors[1:] if where(e) == loc]
    if first["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
        loc, message = loc[:-1], unknown_keys([loc[-1]], known)
    else:
        message = _describe(first, same)
    more = len(errors) - 1 - len(same)
    return _join(prefix + loc, message) + (f" (and {more} more)" if more else "")


S = TypeVar("S", bound=Section)


def validate(cls: type[S], data: Any, where: str) -> S:
    """*data* as a *cls*, or one :class:`EdgebenchError` line starting with *where* (the file)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise EdgebenchError(f"{where}: {one_line(exc, data=data, model=cls)}") from None
