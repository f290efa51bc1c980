"""Short, seeded fine-tuning after pruning (and the accuracy helper the tests use).

The point is recovery, not training from scratch: a few epochs of Adam (or SGD) on the
caller's training split, deterministic for a given seed, model returned in eval mode. It trains
on the ``device`` the caller names (the study's ``host.device``: the CPU or a CUDA GPU), moving
the model there once and back where it was afterwards; batches are drawn on the CPU with a
seeded generator, so the order is the same on every device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgebench.errors import EdgebenchError, expect
from edgebench.util.checks import is_int, is_number
from edgebench.util.torch_device import module_device

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class FinetuneSpec:
    """How to fine-tune after each pruning step. ``epochs=0`` disables fine-tuning."""

    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)

    def __post_init__(self) -> None:
        expect(
            is_int(self.epochs) and self.epochs >= 0,
            f"finetune.epochs: expected an integer >= 0, found {self.epochs!r}",
        )
        expect(is_number(self.lr) and self.lr > 0, f"finetune.lr: expected a number > 0, found {self.lr!r}")
        expect(
            is_int(self.batch_size) and self.batch_size >= 1,
            f"finetune.batch_size: expected an integer >= 1, found {self.batch_size!r}",
        )
        expect(is_int(self.seed), f"finetune.seed: expected an integer, found {self.seed!r}")
        expect(
            self.optimizer in OPTIMIZERS,
            f"finetune.optimizer: expected one of {', '.join(OPTIMIZERS)}, found {self.optimizer!r}",
        )


# How many fine-tuning epochs a pruned model gets by default (``edgebench init``), and below which
# a large accuracy drop is put down to short fine-tuning (a note in the candidate's ``pruning``).
FINETUNE_IMAGES = 5000  # training images a default fine-tuning shows the pruned model, all epochs together
MAX_SUGGESTED_EPOCHS = 30
EPOCH_RULE = f"epochs = {FINETUNE_IMAGES} / training images, rounded up, between 1 and {MAX_SUGGESTED_EPOCHS}"
SHORT_FINETUNE_DROP = 0.10  # an accuracy drop from base this large, with short fine-tuning, gets a note


def suggested_epochs(train_images: int) -> int:
    """Fine-tuning epochs for *train_images* training images (:data:`EPOCH_RULE`): a pruned model
    sees about the same number of images on 150 as on 5000, within the cap; 0 with none."""
    if train_images <= 0:
        return 0
    return max(1, min(MAX_SUGGESTED_EPOCHS, -(-FINETUNE_IMAGES // train_images)))


def finetune_was_short(epochs: int, train_images: int) -> bool:
    """Fewer fine-tuning epochs (all pruning steps together) than :func:`suggested_epochs`, or
    no training images at all."""
    return epochs < max(suggested_epochs(train_images), 1)


def short_finetune_note(epochs: int, train_images: int, base_accuracy: float, accuracy: float) -> str | None:
    """One line when a pruned model lost :data:`SHORT_FINETUNE_DROP` or more accuracy from base
    after short fine-tuning (:func:`finetune_was_short`): the drop may be the short fine-tuning,
    not the pruning. None otherwise."""
    want = suggested_epochs(train_images)
    if base_accuracy - accuracy < SHORT_FINETUNE_DROP or not finetune_was_short(epochs, train_images):
        return None
    if train_images == 0:
        advice = "there are no training images to fine-tune on: give data.train (or a larger single source)"
    else:
        advice = f"try prune.finetune.epochs: {want} ({EPOCH_RULE})"
    return (
        f"accuracy {accuracy:.1%} after pruning vs {base_accuracy:.1%} for base, with {epochs} fine-tuning "
        f"epoch(s) on {train_images} training images: fine-tuning was short, {advice}"
    )


def check_train_data(
    train: tuple[np.ndarray, np.ndarray], input_shape: tuple[int, ...] | None = None, what: str = "train"
) -> None:
    """Validate a ``(x, y)`` pair: x float32 (N, *input_shape[1:]) in [0, 1], y int64 (N,)."""
    expect(
        isinstance(train, (tuple, list)) and len(train) == 2,
        f"{what}: expected a pair (x, y) of numpy arrays, found {type(train).__name__}",
    )
    x, y = train
    expect(
        isinstance(x, np.ndarray) and isinstance(y, np.ndarray),
        f"{what}: expected numpy arrays, found {type(x).__name__}, {type(y).__name__}",
    )
    expect(x.dtype == np.float32, f"{what}: expected x of dtype float32, found {x.dtype}")
    expect(y.dtype == np.int64, f"{what}: expected y of dtype int64, found {y.dtype}")
    expect(
        y.ndim == 1 and len(y) == len(x) and len(x) > 0,
        f"{what}: expected x (N, ...) and y (N,) with N > 0, found x {x.shape} and y {y.shape}",
    )
    if input_shape is not None:
        expect(
            tuple(x.shape[1:]) == tuple(input_shape[1:]),
            f"{what}: expected images of shape {tuple(input_shape[1:])}, found {tuple(x.shape[1:])}",
        )
    lo, hi = float(x.min()), float(x.max())
    expect(
        lo >= -1e-6 and hi <= 1 + 1e-6,
        f"{what}: expected pixel values in [0, 1] (normalization lives inside the model), found [{lo:.3g}, {hi:.3g}]",
    )


def finetune(
    model: torch.nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    spec: FinetuneSpec,
    on_progress: Callable[[str], None] | None = None,
    device: torch.device | str | None = None,
) -> torch.nn.Module:
    """Train *model* in place for ``spec.epochs`` with a fixed seed, on *device* (default: where
    the model is), and return it in eval mode on the device it came on."""
    import torch
    import torch.nn.functional as F

    check_train_data(train)
    if spec.epochs == 0:
        return model.eval()
    home = module_device(model)
    target = home if device is None else torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(train[0]))
    y = torch.from_numpy(np.ascontiguousarray(train[1]))
    if not any(p.requires_grad for p in model.parameters()):
        raise EdgebenchError("finetune: the model has no trainable parameters")
    model.to(target)  # in place, once; the optimizer takes the parameters as they are on target
    from edgebench.export.to_torch import is_graph_constant

    # a converted ONNX graph's constants are cut with their channels, never trained
    params = [p for n, p in model.named_parameters() if p.requires_grad and not is_graph_constant(n)]
    cuda = [target] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(spec.seed)
        gen = torch.Generator().manual_seed(spec.seed)
        if spec.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=spec.lr)
        else:
            opt = torch.optim.SGD(params, lr=spec.lr, momentum=0.9)
        model.train()
        n = len(x)
        for epoch in range(spec.epochs):
            perm = torch.randperm(n, generator=gen)
            total, count = torch.zeros((), device=target), 0  # summed on the device: no sync per batch
            for i in range(0, n, spec.batch_size):
                idx = perm[i : i + spec.batch_size]
                if len(idx) < 2 and n >= 2:  # BatchNorm cannot train on one sample
                    continue
                opt.zero_grad(set_to_none=True)
                xb, yb = x[idx].to(target, non_blocking=True), y[idx].to(target, non_blocking=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
                count += len(idx)
            msg = f"fine-tune epoch {epoch + 1}/{spec.epochs}: loss {float(total) / max(count, 1):.4f}"
            log.info(msg)
            if on_progress:
                on_progress(msg)
        opt.zero_grad(set_to_none=True)
    return model.to(home).eval()


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    """Top-1 accuracy of *model* (eval mode, no grad) on ``(x, y)``, on the model's device."""
    import torch

    model = model.eval()
    dev = module_device(model)
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(dev)
            pred = model(xb).argmax(1).cpu().numpy()
            correct += int((pred == y[i : i + batch]).sum())
    return correct / max(len(x), 1)
