"""Model size and cost counts: parameters, non-zero parameters, MACs, layer widths.

MACs count Conv and Linear multiply-accumulates only (the work that dominates vision models
and that pruning removes); they are a theoretical cost, never a latency.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from edgebench.errors import expect

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch


def count_params(model: torch.nn.Module) -> int:
    """All parameters (trainable or not), zeros included."""
    return int(sum(p.numel() for p in model.parameters()))


def count_nonzero_params(model: torch.nn.Module) -> int:
    """Parameters that are not exactly zero: what unstructured pruning actually removes.

    A dense runtime still stores and multiplies the zeros, so this is a size-after-compression
    figure, not a speed figure.
    """
    return int(sum(int((p.detach() != 0).sum()) for p in model.parameters()))


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Conv/Linear multiply-accumulates of one forward pass on an input of *input_shape*.

    Pass batch 1, e.g. ``(1, 3, 224, 224)``, for the per-image figure. Grouped and depthwise
    convolutions count ``in_channels / groups`` inputs per output; transposed convolutions
    count per input element. Computed with forward hooks on a zero input (eval mode, no grad);
    the model's training flag is restored afterwards. A model whose layers hooks cannot see (a
    TorchScript module, convolutions called functionally) is counted from the aten ops it runs
    instead (:func:`count_macs_dispatched`); None when neither counts anything, never a 0.
    """
    import torch
    from torch import nn

    expect(
        isinstance(input_shape, (tuple, list))
        and len(input_shape) >= 2
        and all(isinstance(d, int) and d > 0 for d in input_shape),
        f"count_macs: expected an input shape like (1, 3, 224, 224), found {input_shape!r}",
    )
    total = [0]

    def conv_hook(m: Any, inp: tuple, out: torch.Tensor) -> None:
        k = math.prod(m.kernel_size)
        if getattr(m, "transposed", False):
            total[0] += inp[0].numel() * (m.out_channels // m.groups) * k
        else:
            total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: Any, inp: tuple, out: torch.Tensor) -> None:
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            model(torch.zeros(*input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total[0]) if total[0] else count_macs_dispatched(model, input_shape)


def count_macs_dispatched(model: Any, input_shape: tuple[int, ...]) -> int | None:
    """Multiply-accumulates of one forward pass counted from the aten ops it dispatches
    (``torch.utils.flop_counter.FlopCounterMode``: FLOPs / 2; convolutions and matrix products),
    for any callable module, scripted ones included; None when it cannot run or counts nothing."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(*input_shape, device=device))
    except Exception as exc:  # noqa: BLE001 - a count is optional; shown as unmeasured without one
        log.info("could not count MACs from dispatched ops: %s", exc)
        return None
    return int(counter.get_total_flops() // 2) or None


def layer_widths(model: torch.nn.Module) -> dict[str, int]:
    """Output channels (Conv) or features (Linear) of every layer, by module name."""
    from torch import nn

    out: dict[str, int] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            out[name] = int(m.out_channels)
        elif isinstance(m, nn.Linear):
            out[name] = int(m.out_features)
    return out
