"""The null backend (after MLPerf's): does no work, so the harness itself can be measured.

It returns a zero logit vector per item of the batch without touching the input. Timing it
shows the harness's own per-iteration overhead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.backends.base import Backend, Capabilities, TensorSpec


class NullBackend(Backend):
    name = "null"
    capabilities = Capabilities(user_models=False, options=("input_shape", "classes"))

    def _open(self) -> None:
        item = self.options.input_shape[1:] if self.options.input_shape else (1, 28, 28)
        self._spec = TensorSpec("input", ("batch", *item), "float32")
        self._classes = self.options.classes

    def _close(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:
        return [self._spec]

    def output_names(self) -> list[str]:
        return ["logits"]

    def _execute(self, prepared: Any) -> Any:
        batch = next(iter(prepared.values())).shape[0]
        return [np.zeros((batch, self._classes), dtype=np.float32)]

    def environment(self) -> dict:
        return {"backend": self.name, "version": "0"}
