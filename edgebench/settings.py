"""Every environment variable edgebench reads, in one place.

=========================  =====================================================
``EDGEBENCH_CACHE_DIR``    where trained demo models and datasets are cached
                           (default: the user cache dir, ``~/.cache/edgebench``)
``EDGEBENCH_INVENTORY``    a user-level device inventory YAML, merged over
                           the project's ``devices/`` folder
``EDGEBENCH_DEVICES_DIR``  the project ``devices/`` folder (default: ./devices,
                           else the source tree's devices/)
``EDGEBENCH_LOG_LEVEL``    logging level name (default WARNING)
=========================  =====================================================
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache: ``$EDGEBENCH_CACHE_DIR`` or ``$XDG_CACHE_HOME/edgebench``."""
    explicit = os.environ.get("EDGEBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgebench"


def user_inventory() -> Path:
    explicit = os.environ.get("EDGEBENCH_INVENTORY")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgebench" / "devices.yaml"


def devices_dir() -> Path:
    """``$EDGEBENCH_DEVICES_DIR``; else ``./devices`` when it exists; else the ``devices/`` of the
    source tree edgebench runs from (an editable install), so `local` keeps its profile anywhere."""
    explicit = os.environ.get("EDGEBENCH_DEVICES_DIR")
    if explicit:
        return Path(explicit)
    here = Path("devices")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "devices"


def log_level() -> str:
    return os.environ.get("EDGEBENCH_LOG_LEVEL", "WARNING").upper()
