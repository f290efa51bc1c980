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

Validated here with one-line errors; imports nothing heavy (the study config imports it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgebench.errors import EdgebenchError, check_keys
from edgebench.util.checks import is_int, is_number

SAMPLERS = ("nsga2", "tpe")
CHOICE_KEYS = ("criterion", "quantize", "calibration", "epochs")
SPACE_KEYS = ("prune_ratio", *CHOICE_KEYS)


@dataclass(frozen=True)
class SearchSpace:
    """What a trial may choose. A dimension left out is fixed at its default (shown here)."""

    prune_ratio: tuple[float, float] = (0.0, 0.0)
    criterion: tuple[str, ...] = ("l1",)
    quantize: tuple[str, ...] = ("none",)
    calibration: tuple[str, ...] = ("minmax",)
    epochs: tuple[int, ...] = (0,)

    def size_hint(self) -> str:
        lo, hi = self.prune_ratio
        return (
            f"prune_ratio [{lo}, {hi}] x criterion {list(self.criterion)} x quantize {list(self.quantize)} x "
            f"calibration {list(self.calibration)} x epochs {list(self.epochs)}"
        )


@dataclass(frozen=True)
class SearchConfig:
    trials: int = 8
    sampler: str = "nsga2"
    keep: float = 0.5
    space: SearchSpace = SearchSpace()


def _choices(val: Any, where: str, kind: str) -> tuple:
    if not isinstance(val, list) or not val:
        raise EdgebenchError(f"{where}: expected a non-empty list of choices, found {val!r}")
    if len(set(map(str, val))) != len(val):
        raise EdgebenchError(f"{where}: expected distinct choices, found {val!r}")
    if kind == "int" and not all(is_int(v) and v >= 0 for v in val):
        raise EdgebenchError(f"{where}: expected integers >= 0, found {val!r}")
    if kind == "str" and not all(isinstance(v, str) and v for v in val):
        raise EdgebenchError(f"{where}: expected names, found {val!r}")
    return tuple(val)


def _space(data: Any, where: str) -> SearchSpace:
    from edgebench.compress.prune import CRITERIA
    from edgebench.compress.quantize import CALIBRATION_METHODS, PRESETS

    if not isinstance(data, dict) or not data:
        raise EdgebenchError(
            f"{where}: expected a non-empty mapping with some of {', '.join(SPACE_KEYS)}, found {data!r} "
            "(an empty search space has nothing to search)"
        )
    check_keys(data, SPACE_KEYS, where)
    values: dict[str, Any] = {}
    if "prune_ratio" in data:
        r = data["prune_ratio"]
        if is_number(r):
            r = [r, r]
        if not (isinstance(r, list) and len(r) == 2 and all(is_number(v) for v in r)):
            raise EdgebenchError(f"{where}.prune_ratio: expected a range [low, high] or one number, found {r!r}")
        lo, hi = float(r[0]), float(r[1])
        if not (0.0 <= lo <= hi < 1.0):
            raise EdgebenchError(f"{where}.prune_ratio: expected 0 <= low <= high < 1, found [{lo}, {hi}]")
        values["prune_ratio"] = (lo, hi)
    allowed = {
        "criterion": tuple(CRITERIA),
        "quantize": (*PRESETS, "none"),
        "calibration": tuple(CALIBRATION_METHODS),
    }
    for key in CHOICE_KEYS:
        if key not in data:
            continue
        raw = data[key]
        if key == "quantize" and isinstance(raw, list):
            raw = ["none" if v is None else v for v in raw]
        vals = _choices(raw, f"{where}.{key}", "int" if key == "epochs" else "str")
        if key in allowed:
            bad = [v for v in vals if v not in allowed[key]]
            if bad:
                raise EdgebenchError(f"{where}.{key}: unknown {bad}; expected some of {list(allowed[key])}")
        values[key] = vals
    return SearchSpace(**values)


def parse_search(data: Any, source: str) -> SearchConfig | None:
    """The validated ``search:`` section, or ``None`` when the study has none."""
    if data is None:
        return None
    where = f"{source}: search"
    if not isinstance(data, dict):
        raise EdgebenchError(f"{where}: expected a mapping with 'space' and 'trials', found {data!r}")
    check_keys(data, SearchConfig, where)
    trials = data.get("trials", SearchConfig.trials)
    if not is_int(trials) or trials < 1:
        raise EdgebenchError(f"{where}.trials: expected an integer >= 1, found {trials!r}")
    sampler = data.get("sampler", SearchConfig.sampler)
    if sampler not in SAMPLERS:
        raise EdgebenchError(f"{where}.sampler: expected one of {', '.join(SAMPLERS)}, found {sampler!r}")
    keep = data.get("keep", SearchConfig.keep)
    if not is_number(keep) or not 0 < keep <= 1:
        raise EdgebenchError(f"{where}.keep: expected a share in (0, 1], found {keep!r}")
    space = data.get("space")
    if isinstance(space, dict) and set(space) <= {f.name for f in dataclasses.fields(SearchSpace)}:
        # to_dict() output (tuples as lists) reads back unchanged
        space = {k: list(v) for k, v in space.items()}
    return SearchConfig(trials=int(trials), sampler=sampler, keep=float(keep), space=_space(space, f"{where}.space"))
