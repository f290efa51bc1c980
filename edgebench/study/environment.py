"""The host environment recorded in results.json: machine, library versions, git revision."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from edgebench.agent import env as agent_env

_PACKAGES = {
    "edgebench": "edgebench",
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "foolbox": "foolbox",
    "torch_pruning": "torch-pruning",
    "numpy": "numpy",
}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dist in _PACKAGES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def git_revision() -> str | None:
    """The commit of the edgebench source tree, with ``-dirty`` if it has local changes."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def host_environment() -> dict:
    return {"host": agent_env.collect(), "versions": versions(), "git_revision": git_revision()}
