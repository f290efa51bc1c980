"""Type checks for values read from YAML and JSON (numpy scalars count; booleans do not)."""

from __future__ import annotations

import numpy as np


def is_int(value: object) -> bool:
    """An integer (Python or numpy), not a boolean."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or float (Python or numpy), not a boolean."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
