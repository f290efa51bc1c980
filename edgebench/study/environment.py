"""The host environment recorded in results.json: machine, library versions, git revision, and
where the host's own PyTorch work ran (the study's ``host.device``, resolved once per run)."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.agent import env as agent_env
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    import torch

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


def resolve_host_device(requested: str) -> torch.device:
    """The ``torch.device`` a study's ``host.device`` names on this machine: ``auto`` is the first
    CUDA device where torch sees one, else the CPU; ``cuda``/``cuda:N`` must exist here, else one
    line saying what was asked and what this machine has (raised before any work)."""
    import torch

    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if available else torch.device("cpu")
    if not available:
        raise EdgebenchError(
            f"host.device: expected a CUDA GPU for {requested!r}, found none here "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False); use auto or cpu"
        )
    index = int(requested.split(":", 1)[1]) if ":" in requested else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise EdgebenchError(f"host.device: expected a CUDA device index below {count}, found {requested!r}")
    return torch.device("cuda", index)


def host_device_record(requested: str, device: torch.device) -> dict[str, Any]:
    """What results.json says about where host work ran: as asked, as resolved, and the GPU."""
    import torch

    rec: dict[str, Any] = {"requested": requested, "device": str(device), "name": None, "cuda": None}
    if device.type == "cuda":
        rec["name"] = torch.cuda.get_device_name(device)
        rec["cuda"] = torch.version.cuda
    return rec


ENVIRONMENT_FILE = "environment.json"


def record_host_device(run_dir: Path, record: dict[str, Any]) -> None:
    """Put *record* in the run folder's ``environment.json`` (written with the rest of the host
    environment when it does not exist yet). A run resumed on another device keeps the devices
    earlier runs used in ``earlier``, so the record never claims more than what happened."""
    from edgebench.util.io import atomic_write_json, read_json

    path = Path(run_dir) / ENVIRONMENT_FILE
    env = read_json(path) if path.is_file() else host_environment()
    old = env.get("host_device")
    if old is not None and old.get("device") == record["device"] and old.get("requested") == record["requested"]:
        return
    earlier = list((old or {}).get("earlier") or [])
    if old is not None and old.get("device") != record["device"]:
        earlier.append(old["device"])
    env["host_device"] = {**record, "earlier": earlier or None}
    atomic_write_json(path, env)
