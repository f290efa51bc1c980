"""The study config (YAML) as one typed model (pydantic), parsed once when it is read.

Every section is a frozen :class:`~edgebench.util.schema.Section`: unknown keys and wrongly typed
values are refused in one line naming the field path, what was expected and what was found
(``study.yaml: candidates[2].prune.ratio: expected a number in [0, 1), found 1.5``). Candidates
hold parsed specs (:class:`PruneSpec`, :class:`QuantSpec`), the attack suite holds
:class:`AttackSpec` instances and ``blackbox.square`` a :class:`BlackBoxSpec`, so nothing
downstream parses a mapping again.

Every section is optional; the defaults are the embedded demo study::

    name: demo
    seed: 0
    model: {arch: lenet5}                 # or python/torchvision/timm/torchscript/onnx: see subject/sources.py
    data: {name: mnist, eval_count: 1000, calib_count: 256}   # or separate train/calib/eval sources
    candidates:
      - base
      - {name: pruned-50, prune: {ratio: 0.5, criterion: l1, round_to: null, finetune: {epochs: 2}}}
      - {name: int8, quantize: {preset: ort-cpu, calibration: minmax}}
      - {name: pruned-50+int8, prune: {ratio: 0.5}, quantize: {preset: ort-cpu}}
    attacks:
      samples: 256
      settings: [transfer, whitebox]      # whitebox: crafted on each candidate (INT8: fake-quant STE model and its fp32 parent)
      whitebox_samples: 32
      whitebox_restarts: 1                # PGD/diva white-box runs, each from its own random start
      adaptive: false                     # true: more images for INCONCLUSIVE robustness verdicts, in rounds
      adaptive_max_images: null           # at most this many (default: data.eval_count)
      suite:
        - {name: fgsm, eps_255: [2, 4, 8, 16, 32]}
        - {name: pgd, norm: linf, eps_255: [2, 4, 8, 16, 32], steps: 10}
        - {name: pgd, norm: l2, epsilons: [0.5, 1.0, 2.0]}
    blackbox: {enabled: true, name: hsj, max_queries: 400, samples: 8, epsilons: [1.0, 2.0, 3.0],
               square: {norm: linf, eps_255: [8, 16, 32], max_queries: 500}}
    devices: [local]
    profile: {batches: [1, 32], warmup_iters: 10, iterations: 100, min_duration_s: 1.0, threads: null}
    budgets: {max_p99_latency_ms: 10, max_peak_memory_mb: 1024, max_accuracy_drop: 0.02, max_robustness_drop: 0.10}
    host: {device: auto}                  # host-side torch work: auto | cpu | cuda | cuda:N
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    InstanceOf,
    PlainSerializer,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from edgebench.compress.prune import PruneSpec, parse_prune_spec
from edgebench.compress.quantize import QuantSpec, parse_quant_spec
from edgebench.errors import EdgebenchError
from edgebench.report.gates import BUDGET_KEYS, GATES, budget_value
from edgebench.robustness.attacks import AttackSpec, parse_attack_specs
from edgebench.robustness.blackbox import BlackBoxSpec, square_dict, square_spec
from edgebench.study.engines import Engine, TrtBuilder, TrtPrecision, check_engine
from edgebench.study.search_config import SearchConfig
from edgebench.subject.data import DataConfig
from edgebench.subject.sources import ModelConfig
from edgebench.util.checks import is_int
from edgebench.util.schema import Section, Seq, user_checks, validate

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"expected letters, digits and . _ + -, found {value!r}")
    return value


# a study or candidate name: it becomes a folder and a file name
Name = Annotated[str, AfterValidator(_name)]
Count = Annotated[int, Field(ge=1)]


def _spec_dict(spec: Any) -> dict:
    return spec.to_dict()


def _attack_dict(spec: AttackSpec) -> dict:
    return spec.to_dict(resolved=False)  # as written, so that the study reads back equal


def _parsed(cls: type[T], parse: Callable[[Any], T]) -> BeforeValidator:
    """Keep a *cls* instance; parse anything else with its one parser (messages placed by pydantic)."""

    def run(value: Any) -> T:
        if isinstance(value, cls):
            return value
        with user_checks():
            return parse(value)

    return BeforeValidator(run)


# parsed by the one parser of each; written back (results.json, run binding) with every option
# resolved, except the attack suite: as written, so that it reads back equal
Prune = Annotated[InstanceOf[PruneSpec], _parsed(PruneSpec, parse_prune_spec), PlainSerializer(_spec_dict)]
Quantize = Annotated[InstanceOf[QuantSpec], _parsed(QuantSpec, parse_quant_spec), PlainSerializer(_spec_dict)]
Attack = Annotated[InstanceOf[AttackSpec], PlainSerializer(_attack_dict)]
Square = Annotated[InstanceOf[BlackBoxSpec], _parsed(BlackBoxSpec, square_spec), PlainSerializer(square_dict)]


def _shorthand(item: str) -> dict:
    """``base``, ``int8``, ``pruned-<percent>`` or ``pruned-<percent>+int8`` as a candidate mapping."""
    if item == "base":
        return {"name": item}
    if item == "int8":
        return {"name": item, "quantize": {"preset": "ort-cpu"}}
    m = re.fullmatch(r"pruned-(\d+(?:\.\d+)?)(\+int8)?", item)
    if m is None:
        raise ValueError(
            f"unknown candidate shorthand '{item}': expected base, int8, pruned-<percent>, "
            "pruned-<percent>+int8, or a mapping {name, prune, quantize}"
        )
    return {
        "name": item,
        "prune": {"ratio": float(m.group(1)) / 100.0},
        "quantize": {"preset": "ort-cpu"} if m.group(2) else None,
    }


class CandidateConfig(Section):
    """A candidate: optionally pruned (from base, or further from a ``parent`` candidate's
    pruned model: an iterative grid such as 50 -> 75 -> 87.5 %), optionally quantized."""

    name: Name
    prune: Prune | None = None
    quantize: Quantize | None = None
    parent: str | None = None  # prune starting from this candidate's fp32 model instead of base
    engine: Engine = "onnxruntime"  # or tensorrt: built on the device (edgebench/study/engines.py)
    precision: TrtPrecision | None = None  # tensorrt: fp16 | int8
    builder: TrtBuilder | None = None  # tensorrt: api (default) | trtexec

    @classmethod
    def expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return _shorthand(data)
        if not isinstance(data, dict):
            raise ValueError(f"expected a name or a mapping, found {data!r}")
        return data

    @model_validator(mode="after")
    def _check(self) -> CandidateConfig:
        with user_checks():
            check_engine(self.engine, self.precision, self.builder, self.quantize)
        if self.parent is not None and self.prune is None:
            raise ValueError("'parent' names where pruning starts; it needs a 'prune' recipe too")
        return self

    def recipe(self) -> dict:
        """What builds this candidate, every option resolved (manifests and results.json)."""
        out: dict = {
            "prune": None if self.prune is None else self.prune.to_dict(),
            "quantize": None if self.quantize is None else self.quantize.to_dict(),
        }
        if self.parent is not None:
            out["parent"] = self.parent
        if self.engine != "onnxruntime":
            out["engine"] = {"name": self.engine, "precision": self.precision, "builder": self.builder}
        return out


class AttackConfig(Section):
    section: ClassVar[str] = "attacks"

    samples: Count = 256
    # parsed by edgebench.robustness.attacks.parse_attack_specs; none or [] is its default suite
    suite: Seq[Attack] = Field(default=None, validate_default=True)
    batch_size: Count = 128
    # threat models: transfer (crafted on base) and/or whitebox (crafted on each candidate itself)
    settings: Seq[Literal["transfer", "whitebox"]] = ("transfer", "whitebox")
    # images attacked white-box per candidate (crafting cost x candidates), at most `samples`
    whitebox_samples: Count = 32
    # white-box runs per randomly started attack (PGD, diva), each from its own random start
    # (seed, seed + 1, ...): an image counts as broken when any run's example fools the engine.
    # 1 by default: base is attacked once (its sets are the transfer sets), so restarts on the
    # candidates alone would make every candidate look less robust than base in the drop gate
    whitebox_restarts: Count = 1
    # adaptive sampling (study/adaptive.py): after the other stages, a candidate whose robustness
    # verdict is INCONCLUSIVE gets more evaluation images attacked (new ones, in rounds) until its
    # verdict is decided or its worst case rests on `adaptive_max_images` (default: every
    # evaluation image, data.eval_count)
    adaptive: bool = False
    adaptive_max_images: Count | None = None

    @field_validator("suite", mode="before")
    @classmethod
    def _suite(cls, suite: Any) -> tuple[AttackSpec, ...]:
        if isinstance(suite, tuple) and all(isinstance(s, AttackSpec) for s in suite):
            return suite
        if suite is not None and not isinstance(suite, list):
            raise ValueError(f"expected a list of attacks, found {suite!r}")
        try:
            return tuple(parse_attack_specs(suite))
        except EdgebenchError as exc:  # its attacks[i] is suite[i] here
            raise ValueError(re.sub(r"^attacks\[", "suite[", str(exc))) from None

    @field_validator("settings")
    @classmethod
    def _settings(cls, settings: tuple[str, ...]) -> tuple[str, ...]:
        if not settings or len(set(settings)) != len(settings):
            raise ValueError(f"expected a non-empty list of transfer and/or whitebox, found {list(settings)}")
        return settings

    @model_validator(mode="after")
    def _pairwise_needs_whitebox(self) -> AttackConfig:
        for i, spec in enumerate(self.suite):
            if spec.definition.pairwise and "whitebox" not in self.settings:
                raise ValueError(
                    f"suite[{i}]: {spec.name} is crafted white-box on each candidate paired with the base; "
                    f"expected 'whitebox' in attacks.settings, found {list(self.settings)}"
                )
        return self

    def robust_images(self) -> int:
        """The images the robustness gate's worst case rests on before adaptive sampling: the
        white-box images (a prefix of the transfer sets' ones) when white-box runs, else the
        transfer sets' (before capping by the evaluation images)."""
        return min(self.whitebox_samples, self.samples) if "whitebox" in self.settings else self.samples

    @model_validator(mode="after")
    def _adaptive(self) -> AttackConfig:
        cap = self.adaptive_max_images
        if cap is not None and not self.adaptive:
            raise ValueError(f"adaptive_max_images: expected it with adaptive: true, found adaptive: false and {cap}")
        if cap is not None and cap <= self.robust_images():
            raise ValueError(
                f"adaptive_max_images: expected more than the {self.robust_images()} images the robustness gate "
                f"already rests on (attacks.{'whitebox_samples' if 'whitebox' in self.settings else 'samples'}), "
                f"found {cap}"
            )
        return self


class BlackBoxConfig(Section):
    """A decision-based attack whose queries go to each deployed artifact through the agent.

    ``samples`` evaluation images are attacked with at most ``max_queries`` queries each;
    starting points come from ``pool`` other evaluation images. Off unless ``enabled``.
    """

    section: ClassVar[str] = "blackbox"

    enabled: bool = False
    name: str = "hsj"  # hsj (HopSkipJump) | boundary
    norm: str = "l2"
    max_queries: int = 400
    samples: Count = 8
    pool: int = Field(default=64, ge=0)
    epsilons: Seq[float] = (1.0, 2.0, 3.0)
    gradient_queries: int = 40
    # a score-based attack beside it (Square on the engine's logits), e.g.
    # {norm: linf, eps_255: [8, 16, 32], max_queries: 500}; parsed by robustness.blackbox.square_spec
    square: Square | None = None

    @model_validator(mode="after")
    def _check(self) -> BlackBoxConfig:
        with user_checks():
            self.spec()
        return self

    def spec(self) -> BlackBoxSpec:
        """The decision-based attack these settings describe (checked when the study is read)."""
        return BlackBoxSpec(
            name=self.name,
            norm=self.norm,
            max_queries=self.max_queries,
            epsilons=self.epsilons,
            gradient_queries=self.gradient_queries,
        )


def _positive_ints(val: Any) -> tuple[int, ...]:
    if not isinstance(val, (list, tuple)) or not val or not all(is_int(v) and v > 0 for v in val):
        raise ValueError(f"expected a non-empty list of positive integers, found {val!r}")
    return tuple(val)


class ProfileConfig(Section):
    section: ClassVar[str] = "profile"

    batches: Annotated[tuple[int, ...], BeforeValidator(_positive_ints)] = (1, 32)
    modes: Seq[Literal["end_to_end", "compute"]] = ("end_to_end", "compute")
    warmup_iters: int = 10
    warmup_s: float = 0.2
    iterations: int = 100
    min_duration_s: float = 1.0
    threads: int | None = None
    profile_ops: bool = True
    telemetry: str = "auto"
    max_parallel_devices: int = 4
    # every candidate of a device timed in rotating rounds (A B C, B C A, ...) in one agent
    # session, so all see the same drift; speed-ups over base get paired-round intervals
    interleave: bool = True
    rounds: Annotated[int, Field(ge=2)] = 6
    sessions: Literal["auto", "shared", "alternating"] = "auto"  # auto: shared when they fit in memory

    def budget(self) -> dict:
        return {
            "warmup_iters": self.warmup_iters,
            "warmup_s": self.warmup_s,
            "iterations": self.iterations,
            "min_duration_s": self.min_duration_s,
        }


# Gates; ``None`` means no gate. One field per gate of the registry (report/gates.py), with that
# gate's default ceiling or floor (``min_accuracy``: none by default), each checked against the
# gate's range when the study is read: adding a gate there adds its budget here.
if TYPE_CHECKING:

    class Budgets(Section):
        """What type checkers see: a ceiling (or None) per gate."""

        def __getattr__(self, name: str) -> float | None: ...

else:

    def _in_range(cls: type, value: float | None, info: ValidationInfo) -> float | None:
        """A budget in its gate's range: >= 0, and a fraction (``min_accuracy``) at most 1."""
        budget_value(info.field_name or "", value)
        return value

    Budgets = create_model(
        "Budgets",
        __base__=Section,
        __doc__="Budgets from the study YAML: one ceiling (max_*) or floor (min_*) per gate (see docs/results.md).",
        __validators__={"_in_range": field_validator(*BUDGET_KEYS)(_in_range)},
        **{g.budget: (float | None, g.default) for g in GATES},
    )


# ---- host: where the host's own torch work runs ---------------------------------------------
HOST_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _host_device(value: str) -> str:
    if not HOST_DEVICE.match(value):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N, found {value!r}")
    return value


class HostConfig(Section):
    """Where the host's own PyTorch work runs (fine-tuning after pruning, GAP/taylor gradients,
    attack crafting, white-box surrogates): ``auto`` (CUDA when torch sees a GPU, else the CPU),
    ``cpu``, ``cuda`` or ``cuda:N``. Resolved once per run (:func:`edgebench.study.environment.resolve_host_device`),
    where a ``cuda`` this machine lacks is one line before any work."""

    section: ClassVar[str] = "host"

    device: Annotated[str, AfterValidator(_host_device)] = "auto"


def _device_names(val: Any) -> tuple[str, ...]:
    if isinstance(val, str):
        val = [val]
    if not isinstance(val, (list, tuple)) or not val or not all(isinstance(d, str) for d in val):
        raise ValueError(f"expected a list of device names, found {val!r}")
    return tuple(val)


DEFAULT_CANDIDATES = ("base", "pruned-50", "int8", "pruned-50+int8")


def _seed_list(val: Any) -> tuple[int, ...] | None:
    """``seeds:``: a non-empty list of distinct integers (each a whole run of the study), or null."""
    if val is None:
        return None
    if not isinstance(val, (list, tuple)) or not val or not all(is_int(v) for v in val) or len(set(val)) != len(val):
        raise ValueError(f"expected a non-empty list of distinct integers, found {val!r}")
    return tuple(int(v) for v in val)


class StudyConfig(Section):
    """The whole study, validated when read; ``source`` is the file it came from."""

    name: Name = "demo"
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    candidates: Seq[CandidateConfig] = Field(default=None, validate_default=True)
    attacks: AttackConfig = Field(default_factory=AttackConfig)
    blackbox: BlackBoxConfig = Field(default_factory=BlackBoxConfig)
    devices: Annotated[tuple[str, ...], BeforeValidator(_device_names)] = ("local",)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    budgets: Budgets = Field(default_factory=Budgets)
    host: HostConfig = Field(default_factory=HostConfig)  # where host-side torch work runs
    search: SearchConfig | None = None  # ``edgebench search``; None: the study has none
    # the study runs once per seed (study/seeds.py: each run's seed, and its pruning and fine-tuning
    # seeds shifted by as much); the report shows mean and spread per candidate and metric
    seeds: Annotated[tuple[int, ...] | None, BeforeValidator(_seed_list)] = None
    # what this run cut from a published protocol and why, one line each: shown in the report
    reductions: Seq[str] = ()
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The study file (``<defaults>`` for a mapping), for messages."""
        return self._source

    @classmethod
    def expand(cls, data: Any) -> Any:
        """A search study without ``candidates:`` holds base and its trials, not the default lineup."""
        if isinstance(data, dict) and data.get("search") is not None and data.get("candidates") is None:
            return {**data, "candidates": ["base"]}
        return data

    @field_validator("candidates", mode="before")
    @classmethod
    def _listed(cls, cands: Any) -> Any:
        if cands is None:
            return DEFAULT_CANDIDATES
        if not isinstance(cands, (list, tuple)) or not cands:
            raise ValueError(f"expected a non-empty list, found {cands!r}")
        return cands

    @field_validator("candidates")
    @classmethod
    def _lineup(cls, cands: tuple[CandidateConfig, ...]) -> tuple[CandidateConfig, ...]:
        """Unique names, parents listed before their children and not quantized; base first if missing."""
        names = [c.name for c in cands]
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, found {names}")
        seen: dict[str, CandidateConfig] = {}
        for c in cands:
            par = seen.get(c.parent) if c.parent is not None else None
            if c.parent is not None and par is None:
                raise ValueError(
                    f"candidate '{c.name}': parent '{c.parent}' must be a candidate listed before it, "
                    f"found {sorted(seen)}"
                )
            if par is not None and par.quantize is not None:
                raise ValueError(
                    f"candidate '{c.name}': parent '{c.parent}' is quantized; pruning continues from an fp32 "
                    "candidate (quantize the child instead)"
                )
            seen[c.name] = c
        if "base" not in names:
            cands = (CandidateConfig(name="base"), *cands)  # everything is measured against base
        return cands

    @model_validator(mode="after")
    def _fits_data(self) -> StudyConfig:
        """Images the candidates and the black-box attack take from the data split exist."""
        for c in self.candidates:
            if c.quantize is not None and c.quantize.calib_samples > self.data.calib_count:
                raise ValueError(
                    f"candidate '{c.name}': quantize.calib_samples={c.quantize.calib_samples} but "
                    f"data.calib_count={self.data.calib_count}: calibration images are held out from evaluation; "
                    "raise calib_count or lower calib_samples"
                )
        bb, att = self.blackbox, self.attacks
        if att.adaptive and bb.enabled:
            raise ValueError(
                "attacks.adaptive: expected blackbox.enabled: false (query attacks cover blackbox.samples images "
                "only, so images added to the worst case could not change it), found blackbox.enabled: true"
            )
        if att.adaptive_max_images is not None and att.adaptive_max_images > self.data.eval_count:
            raise ValueError(
                f"attacks.adaptive_max_images: expected at most data.eval_count = {self.data.eval_count} "
                f"(adaptive sampling attacks evaluation images only), found {att.adaptive_max_images}"
            )
        if bb.enabled and bb.samples + bb.pool > self.data.eval_count:
            raise ValueError(
                f"blackbox: samples + pool = {bb.samples + bb.pool} must not exceed "
                f"data.eval_count = {self.data.eval_count}"
            )
        return self

    def to_dict(self) -> dict:
        """JSON-able, every spec resolved (echoed in results.json; binds run folders);
        :func:`study_from_dict` reads it back."""
        d = self.model_dump(mode="json")
        for key in ("search", "seeds", "reductions"):  # unset: binds run folders exactly as before
            if not d.get(key):
                d.pop(key, None)
        if not self.attacks.adaptive:  # off: as before adaptive sampling existed
            for key in ("adaptive", "adaptive_max_images"):
                d["attacks"].pop(key, None)
        if d.get("host") == HostConfig().model_dump(mode="json"):  # the default: as before too
            d.pop("host")
        return d

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with *changes*, validated like a study read from its file."""
        values = {key: getattr(self, key) for key in type(self).model_fields}
        new = validate(StudyConfig, {**values, **changes}, self.source or "<defaults>")
        new._source = self._source
        return new


def study_from_dict(data: dict | None, source: str = "<defaults>") -> StudyConfig:
    """The study a mapping describes (``source`` names it in messages)."""
    cfg = validate(StudyConfig, data or {}, source)
    cfg._source = source
    return cfg


# The embedded demo (``edgebench run`` without a study): a ResNet-8 wide enough (37 M MACs) that
# batch-1 latency is compute, not per-call overhead, so pruning and INT8 show what they buy;
# training and attack budgets sized so that a cold run stays near a minute on 2 cores.
# reduce_range: 7-bit weights, since U8S8 saturates on x86 CPUs without VNNI (-15 % accuracy here).
_DEMO_INT8 = {"preset": "ort-cpu", "reduce_range": True}
# two epochs on 2500 images bring the 50 %-pruned model back to the base's clean accuracy
_DEMO_FINETUNE = {"epochs": 2, "lr": 2e-3}
DEMO_STUDY: dict = {
    "model": {"arch": "resnet8-wide", "train_epochs": 2, "train_lr": 5e-3},
    "data": {"name": "mnist", "eval_count": 500, "calib_count": 256, "train_count": 2500},
    "candidates": [
        "base",
        {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": _DEMO_FINETUNE}},
        {"name": "int8", "quantize": _DEMO_INT8},
        {"name": "pruned-50+int8", "prune": {"ratio": 0.5, "finetune": _DEMO_FINETUNE}, "quantize": _DEMO_INT8},
    ],
    "attacks": {
        "samples": 32,
        "suite": [
            {"name": "fgsm", "eps_255": [2, 4, 8, 16, 32]},
            {"name": "pgd", "norm": "linf", "eps_255": [2, 4, 8, 16, 32], "steps": 10, "random_start": True},
        ],
    },
}


def load_study(path: str | Path | None) -> StudyConfig:
    """Read and validate a study YAML; ``None`` gives the embedded demo study (:data:`DEMO_STUDY`)."""
    if path is None:
        return study_from_dict(DEMO_STUDY)
    import yaml

    p = Path(path)
    if not p.is_file():
        raise EdgebenchError(f"study config not found: expected a YAML file at {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EdgebenchError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is not None and not isinstance(data, dict):
        raise EdgebenchError(f"{p}: expected a mapping at the top level, found {type(data).__name__}")
    return study_from_dict(data, str(p))
