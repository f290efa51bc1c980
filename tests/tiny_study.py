"""The smallest study settings the end-to-end tests share: a LeNet-5 trained one epoch on 400
MNIST images, 100 evaluation images, and a profile of a few batch-1 iterations (the tests check
what is measured and where, not how fast)."""

from __future__ import annotations

TINY_MODEL = {"arch": "lenet5", "train_epochs": 1}
TINY_DATA = {"name": "mnist", "eval_count": 100, "calib_count": 32, "train_count": 400}
TINY_PROFILE = {
    "batches": [1],
    "iterations": 10,
    "min_duration_s": 0.0,
    "warmup_iters": 1,
    "warmup_s": 0.0,
    "threads": 1,
}
