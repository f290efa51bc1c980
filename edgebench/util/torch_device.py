"""Where a PyTorch module lives (torch imported only when asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of *module*'s first parameter, else its first buffer, else the CPU: where a
    library function runs the module and puts its inputs (the study's ``host.device`` put it there)."""
    import torch

    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")
