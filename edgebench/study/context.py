"""What every stage of one run shares: the study, the run folder, the UI, and the run's caches.

The stages (:mod:`edgebench.study.subject_stage`, :mod:`~edgebench.study.build`,
:mod:`~edgebench.study.attack`, :mod:`~edgebench.study.measure`) are public functions of a
:class:`RunContext`; :class:`edgebench.study.pipeline.Pipeline` is a context that composes them
in the one stage order (:func:`edgebench.study.pipeline.run_stages`), and every driver (``run``,
the local and Ray engines, ``search``) goes through it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError
from edgebench.study.assemble import RecordFn, assemble_results
from edgebench.study.config import CandidateConfig, StudyConfig
from edgebench.study.store import RunStore

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# ui(event, payload): "status" {text}; "task" {id, text, total}; "advance" {id, done?}; "done" {id}
UiFn = Callable[[str, dict], None]


def log_only(event: str, payload: dict) -> None:
    """The UI of a run without a terminal: status lines go to the log, progress nowhere."""
    if event == "status":
        log.info(payload.get("text", ""))


class NeedsTorch(Exception):
    """A candidate that needs the base model in PyTorch, which could not be made (its reason)."""


@dataclass
class Built:
    """A candidate's artifact as built (or found) in this run folder. ``manifest`` is the JSON of
    ``artifacts/<name>.json``: recipe, ``artifact`` (path, sha256, precision, input, output; null
    when the candidate could not be built and ``skipped`` says why), params, MACs, checks."""

    config: CandidateConfig
    manifest: dict

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def artifact(self) -> dict | None:
        return self.manifest.get("artifact")

    @property
    def skipped(self) -> str | None:
        return self.manifest.get("skipped")

    @property
    def is_base(self) -> bool:
        return self.config.prune is None and self.config.quantize is None


@dataclass(frozen=True)
class AttackSetRef:
    """An adversarial set crafted on the base and stored in the run folder: what the
    measurement stage replays (``id``, ``path`` relative to the run folder) and its manifest's
    summary (``summary``: attack, norm, eps, count, base accuracy, ...)."""

    id: str
    path: str
    summary: dict[str, Any]

    @classmethod
    def of(cls, summary: dict[str, Any]) -> AttackSetRef:
        return cls(str(summary["id"]), str(summary["path"]), dict(summary))


@dataclass(frozen=True)
class Measured:
    """What the measurement stage did for one candidate on one device: the measurement kinds it
    ran now (empty: all were on disk, or the candidate was skipped) and the skip reason, if any."""

    candidate: str
    device: str
    measured: tuple[str, ...]
    skipped: str | None = None


@dataclass
class RunContext:
    """One run of one study in one run folder."""

    config: StudyConfig
    run_dir: Path
    ui: UiFn = log_only
    # results.json records the command running the pipeline adds to every assembly (edgebench
    # search: "search"), so the study package needs no import of the commands built on it
    records: dict[str, RecordFn] = field(default_factory=dict)
    store: RunStore = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.store = RunStore(self.run_dir)
        self.lock = threading.Lock()  # one device pass writes results.json at a time
        self.array_cache: dict[str, dict[str, np.ndarray]] = {}
        # per device: the measurement loop's wall time and the part spent inside agent jobs
        self.timing: dict[str, dict[str, float]] = {}
        self.sets: list | None = None
        self.torch_ok = False  # the subject has a PyTorch module (set when it is loaded)
        self._host_device: torch.device | None = None

    @property
    def host_device(self) -> torch.device:
        """Where this run's host-side PyTorch work goes (fine-tuning, importance gradients,
        crafting, white-box surrogates): the study's ``host.device`` resolved once, and recorded
        in the run folder's environment on first use. The stages move their models here once and
        bring results back to the CPU as numpy; library functions follow their model's device."""
        if self._host_device is None:
            from edgebench.study.environment import host_device_record, record_host_device, resolve_host_device

            requested = self.config.host.device
            self._host_device = resolve_host_device(requested)
            with self.lock:
                record_host_device(self.run_dir, host_device_record(requested, self._host_device))
        return self._host_device

    def candidate(self, name: str) -> CandidateConfig:
        return next(c for c in self.config.candidates if c.name == name)

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """A run-folder array file (eval, base_logits), read once per run."""
        if name not in self.array_cache:
            arrays = self.store.load_arrays(name)
            if arrays is None:
                raise EdgebenchError(f"{self.store.data_path(name)}: expected it from the subject stage, found none")
            self.array_cache[name] = arrays
        return self.array_cache[name]

    def attack_sets(self) -> list | None:
        """The adversarial sets' metadata, loaded and sha256-verified once per run (after crafting)."""
        if self.sets is None and (self.store.attacks_dir / "attacks.json").is_file():
            from edgebench.robustness.store import load_folder

            self.sets = load_folder(self.store.attacks_dir, inputs=False)
        return self.sets

    def forget_attack_sets(self) -> None:
        """The sets change (crafted now): verify them again on the next read."""
        self.sets = None

    def write_results(self, final: bool = False) -> dict:
        """Assemble results.json from the measurement files; on the final call, render the report
        from those same results. Called per stage and device pass, not per measurement."""
        results = assemble_results(self.run_dir, sets=self.attack_sets(), records=self.records)
        if final:
            from edgebench.report.render import render_results

            render_results(results, self.run_dir)
        return results


__all__ = ["AttackSetRef", "Built", "Measured", "NeedsTorch", "RunContext", "UiFn", "log_only"]
