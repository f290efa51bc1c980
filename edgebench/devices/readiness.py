"""What a device's Python must import for the agent, and the one line when it cannot.

The agent checks its own needs before a job runs (:mod:`edgebench.agent.__main__`): the modules
every job imports (``AGENT_NEEDS``) and the runtime of the job's backend. When one is missing it
answers ``{"ok": false, "missing": {module: reason}, "python": ...}`` instead of crashing, and the
host turns that into :class:`DeviceNotReady`: what is missing and the ``edgebench devices setup``
command that installs it. ``devices check`` and ``devices setup`` read the same registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebench.agent.env import AGENT_NEEDS
from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.devices.inventory import DeviceSpec


@dataclass(frozen=True)
class Requirement:
    """A module the agent imports on the device and how to get it there.

    ``pip``: the requirement ``devices setup`` installs (None: pip cannot provide it);
    ``hint``: what to do instead, or what else can provide it (a wheel the user names)."""

    module: str
    pip: str | None
    hint: str = ""


# keyed by the module the agent imports, which is also the runtime's name in a device's ``runtimes``
REQUIREMENTS: dict[str, Requirement] = {
    "numpy": Requirement("numpy", "numpy"),
    "psutil": Requirement("psutil", "psutil"),
    "onnxruntime": Requirement(
        "onnxruntime",
        "onnxruntime",
        "for CUDA/TensorRT providers on a Jetson, NVIDIA's onnxruntime-gpu wheel (--wheel)",
    ),
    "torch": Requirement("torch", "torch", "on a Jetson, NVIDIA's PyTorch wheel for its JetPack (--wheel)"),
    "tensorrt": Requirement("tensorrt", None, "tensorrt comes with JetPack: sudo apt install nvidia-jetpack"),
}


def requirement(module: str) -> Requirement:
    """The registry's entry for *module*; an unknown one is taken to be the pip package of that name."""
    return REQUIREMENTS.get(module, Requirement(module, module))


def needed_modules(spec: DeviceSpec, extra_runtimes: Iterable[str] = ()) -> list[str]:
    """What the agent imports on *spec*: its own needs, then the device's runtimes, in order."""
    out: list[str] = []
    for name in (*AGENT_NEEDS, *spec.runtimes, *extra_runtimes):
        if name not in out and name != "null":
            out.append(name)
    return out


class DeviceNotReady(EdgebenchError):
    """The device's Python lacks a module the agent needs; the message says how to fix it."""


def fix_hint(spec: DeviceSpec, missing: Iterable[str]) -> str:
    """How to get *missing* onto *spec*: the ``devices setup`` command (with ``--runtime`` for a
    runtime the device does not list yet) and, for what pip cannot install, the registry's hint."""
    missing = list(missing)
    installable = [m for m in missing if requirement(m).pip is not None]
    unlisted = [m for m in installable if m not in AGENT_NEEDS and m not in spec.runtimes]
    parts = []
    if installable:
        runtimes = "".join(f" --runtime {m}" for m in unlisted)
        parts.append(f"run `edgebench devices setup {spec.name}{runtimes}`")
    parts += [requirement(m).hint for m in missing if requirement(m).pip is None]
    return "; ".join(parts)


def missing_phrase(missing: Iterable[str]) -> str:
    """``numpy and psutil are missing (the agent needs them)`` and the like."""
    names = list(missing)
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "is" if len(names) == 1 else "are"
    needs = [m for m in names if m in AGENT_NEEDS]
    if len(needs) == len(names):
        why = f"the agent needs {'it' if len(names) == 1 else 'them'}"
    elif not needs:
        why = "the job's runtime"
    else:
        why = "the agent and the job's runtime need them"
    return f"{listed} {verb} missing ({why})"


def not_ready(spec: DeviceSpec, missing: Iterable[str], python: str | None = None) -> DeviceNotReady:
    """The one-line error for a device whose Python (*python*, when known) lacks *missing*."""
    missing = list(missing)
    where = f" from its Python {python}" if python else " on the device"
    phrase = missing_phrase(missing).replace(" missing (", f" missing{where} (", 1)
    return DeviceNotReady(f"device '{spec.name}' is not ready: {phrase}; {fix_hint(spec, missing)}")


def refusal(spec: DeviceSpec, answer: dict) -> DeviceNotReady | None:
    """The not-ready error an agent's answer (a job result or a session reply) carries, if any."""
    missing = answer.get("missing")
    if not isinstance(missing, dict) or not missing:
        return None
    python = answer.get("python")
    return not_ready(spec, [str(m) for m in missing], python if isinstance(python, str) else None)
