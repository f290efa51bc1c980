"""The study's ``search:`` section: which compressions to explore and how many trials.

::

    search:
      trials: 8                       # trials in total (a re-run with more adds the difference)
      sampler: nsga2                  # nsga2 | tpe (both multi-objective, seeded by the study seed)
      keep: 0.5                       # share of screened trials measured on the devices
      space:
        prune_ratio: [0.0, 0.7]       # a range [low, high]; 0 means not pruned
        criterion: [l1, l2]           # choices
        quantize: [ort-cpu, none]     # a preset or none
        calibration: [minmax, entropy]
        epochs: [0, 1]                # fine-tune epochs after pruning

Typed (pydantic, :class:`~edgebench.util.schema.Section`), validated with one-line errors; imports
nothing heavy (the study config imports it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from edgebench.util.checks import is_int, is_number
from edgebench.util.schema import Section, Seq

Sampler = Literal["nsga2", "tpe"]
SAMPLERS = get_args(Sampler)
CHOICE_KEYS = ("criterion", "quantize", "calibration", "epochs")
SPACE_KEYS = ("prune_ratio", *CHOICE_KEYS)


def _allowed(key: str) -> tuple | None:
    """The values a choice dimension may take (None: any of its type)."""
    from edgebench.compress.prune import CRITERIA
    from edgebench.compress.quantize import CALIBRATION_METHODS, PRESETS

    return {
        "criterion": tuple(CRITERIA),
        "quantize": (*PRESETS, "none"),
        "calibration": tuple(CALIBRATION_METHODS),
    }.get(key)


class SearchSpace(Section):
    """What a trial may choose. A dimension left out is fixed at its default (shown here)."""

    prune_ratio: tuple[float, float] = (0.0, 0.0)
    criterion: Seq[str] = ("l1",)
    quantize: Seq[str] = ("none",)
    calibration: Seq[str] = ("minmax",)
    epochs: Seq[int] = (0,)

    @classmethod
    def expand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data:
            raise ValueError(
                f"expected a non-empty mapping with some of {', '.join(SPACE_KEYS)}, found {data!r} "
                "(an empty search space has nothing to search)"
            )
        return data

    @field_validator("prune_ratio", mode="before")
    @classmethod
    def _range(cls, r: Any) -> tuple[float, float]:
        """A range [low, high] (or one number) within [0, 1)."""
        if is_number(r):
            r = [r, r]
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(is_number(v) for v in r)):
            raise ValueError(f"expected a range [low, high] or one number, found {r!r}")
        lo, hi = float(r[0]), float(r[1])
        if not (0.0 <= lo <= hi < 1.0):
            raise ValueError(f"expected 0 <= low <= high < 1, found [{lo}, {hi}]")
        return lo, hi

    @field_validator(*CHOICE_KEYS, mode="before")
    @classmethod
    def _choices(cls, val: Any, info: ValidationInfo) -> tuple:
        """Distinct, known choices (``quantize: none`` may be written null)."""
        key = info.field_name or ""
        if key == "quantize" and isinstance(val, list):
            val = ["none" if v is None else v for v in val]
        if not isinstance(val, (list, tuple)) or not val:
            raise ValueError(f"expected a non-empty list of choices, found {val!r}")
        if len(set(map(str, val))) != len(val):
            raise ValueError(f"expected distinct choices, found {val!r}")
        if key == "epochs" and not all(is_int(v) and v >= 0 for v in val):
            raise ValueError(f"expected integers >= 0, found {val!r}")
        if key != "epochs" and not all(isinstance(v, str) and v for v in val):
            raise ValueError(f"expected names, found {val!r}")
        allowed = _allowed(key)
        bad = [v for v in val if allowed is not None and v not in allowed]
        if bad:
            raise ValueError(f"unknown {bad}; expected some of {list(allowed or ())}")
        return tuple(val)


class SearchConfig(Section):
    """The ``search:`` section: how many trials, which sampler, which share is measured, the space."""

    section: ClassVar[str] = "search"

    trials: int = Field(default=8, ge=1)
    sampler: Sampler = "nsga2"
    keep: float = 0.5
    space: SearchSpace = Field(default=None, validate_default=True)  # required: None names what it takes

    @field_validator("keep")
    @classmethod
    def _share(cls, keep: float) -> float:
        if not 0 < keep <= 1:
            raise ValueError(f"expected a share in (0, 1], found {keep!r}")
        return keep
