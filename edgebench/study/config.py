"""The study config (YAML), validated up front with messages that say what was expected.

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
      settings: [transfer, whitebox]      # whitebox: crafted on each candidate (INT8: fake-quant STE model)
      whitebox_samples: 32
      suite:
        - {name: fgsm, eps_255: [2, 4, 8, 16, 32]}
        - {name: pgd, norm: linf, eps_255: [2, 4, 8, 16, 32], steps: 10}
        - {name: pgd, norm: l2, epsilons: [0.5, 1.0, 2.0]}
    blackbox: {enabled: true, name: hsj, max_queries: 400, samples: 8, epsilons: [1.0, 2.0, 3.0],
               square: {norm: linf, eps_255: [8, 16, 32], max_queries: 500}}
    devices: [local]
    profile: {batches: [1, 32], warmup_iters: 10, iterations: 100, min_duration_s: 1.0, threads: null}
    budgets: {max_p99_latency_ms: 10, max_peak_memory_mb: 1024, max_accuracy_drop: 0.02, max_robustness_drop: 0.10}
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError, check_keys
from edgebench.report.gates import GATES
from edgebench.search.config import parse_search
from edgebench.subject.zoo import DataConfig, ModelConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


@dataclass(frozen=True)
class CandidateConfig:
    """A candidate: optionally pruned (from base, or further from a ``parent`` candidate's
    pruned model: an iterative grid such as 50 -> 75 -> 87.5 %), optionally quantized."""

    name: str
    prune: dict | None = None  # parsed by edgebench.compress.prune.parse_prune_spec
    quantize: dict | None = None  # parsed by edgebench.compress.quantize.parse_quant_spec
    parent: str | None = None  # prune starting from this candidate's fp32 model instead of base
    engine: str = "onnxruntime"  # or tensorrt: built on the device (edgebench/study/engines.py)
    precision: str | None = None  # tensorrt: fp16 | int8
    builder: str | None = None  # tensorrt: api (default) | trtexec

    def recipe(self) -> dict:
        out: dict = {"prune": self.prune, "quantize": self.quantize}
        if self.parent is not None:
            out["parent"] = self.parent
        if self.engine != "onnxruntime":
            out["engine"] = {"name": self.engine, "precision": self.precision, "builder": self.builder}
        return out


@dataclass(frozen=True)
class AttackConfig:
    samples: int = 256
    suite: tuple[dict, ...] = ()  # parsed by edgebench.robustness.attacks.parse_attack_specs
    batch_size: int = 128
    # threat models: transfer (crafted on base) and/or whitebox (crafted on each candidate itself)
    settings: tuple[str, ...] = ("transfer", "whitebox")
    whitebox_samples: int = 32  # images attacked white-box per candidate (crafting cost x candidates)


@dataclass(frozen=True)
class BlackBoxConfig:
    """A decision-based attack whose queries go to each deployed artifact through the agent.

    ``samples`` evaluation images are attacked with at most ``max_queries`` queries each;
    starting points come from ``pool`` other evaluation images. Off unless ``enabled``.
    """

    enabled: bool = False
    name: str = "hsj"  # hsj (HopSkipJump) | boundary
    norm: str = "l2"
    max_queries: int = 400
    samples: int = 8
    pool: int = 64
    epsilons: tuple[float, ...] = (1.0, 2.0, 3.0)
    gradient_queries: int = 40
    # a score-based attack beside it (Square on the engine's logits), e.g.
    # {norm: linf, eps_255: [8, 16, 32], max_queries: 500}; parsed by robustness.blackbox.square_spec
    square: dict | None = None

    def spec_kwargs(self) -> dict:
        return {
            "name": self.name,
            "norm": self.norm,
            "max_queries": self.max_queries,
            "epsilons": tuple(self.epsilons),
            "gradient_queries": self.gradient_queries,
        }


@dataclass(frozen=True)
class ProfileConfig:
    batches: tuple[int, ...] = (1, 32)
    modes: tuple[str, ...] = ("end_to_end", "compute")
    warmup_iters: int = 10
    warmup_s: float = 0.2
    iterations: int = 100
    min_duration_s: float = 1.0
    threads: int | None = None
    profile_ops: bool = True
    telemetry: str = "auto"
    max_parallel_devices: int = 4

    def budget(self) -> dict:
        return {
            "warmup_iters": self.warmup_iters,
            "warmup_s": self.warmup_s,
            "iterations": self.iterations,
            "min_duration_s": self.min_duration_s,
        }


# Gates; ``None`` means no gate. One field per gate of the registry (report/gates.py), with that
# gate's default ceiling: adding a gate there adds its budget here.
Budgets = dataclasses.make_dataclass(
    "Budgets",
    [(g.budget, float | None, dataclasses.field(default=g.default)) for g in GATES],
    frozen=True,
)
Budgets.__doc__ = "Budgets from the study YAML: one ceiling per gate (see docs/results.md)."


@dataclass(frozen=True)
class StudyConfig:
    name: str = "demo"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    candidates: tuple[CandidateConfig, ...] = ()
    attacks: AttackConfig = AttackConfig()
    blackbox: BlackBoxConfig = BlackBoxConfig()
    devices: tuple[str, ...] = ("local",)
    profile: ProfileConfig = ProfileConfig()
    budgets: Any = Budgets()  # a Budgets: its fields are made from the gate registry
    search: Any = None  # an edgebench.search.config.SearchConfig (``edgebench search``), or None
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        if d.get("search") is None:
            d.pop("search", None)  # a study without search binds run folders exactly as before
        return d


DEFAULT_CANDIDATES = (
    CandidateConfig("base"),
    CandidateConfig("pruned-50", prune={"ratio": 0.5}),
    CandidateConfig("int8", quantize={"preset": "ort-cpu"}),
    CandidateConfig("pruned-50+int8", prune={"ratio": 0.5}, quantize={"preset": "ort-cpu"}),
)


def _section(cls: type, data: Any, where: str, convert: dict[str, Any] | None = None) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise EdgebenchError(f"{where}: expected a mapping, found {type(data).__name__} {data!r}")
    check_keys(data, cls, where)
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, val in data.items():
        default = getattr(cls(), key) if key in fields else None
        if convert and key in convert:
            val = convert[key](val, f"{where}.{key}")
        elif val is not None and default is not None:
            val = _coerce(val, default, f"{where}.{key}")
        values[key] = val
    try:
        return cls(**values)
    except EdgebenchError as exc:  # checks in __post_init__ (model, data) name their key already
        raise EdgebenchError(f"{where.rsplit(': ', 1)[0]}: {exc}") from None


def _coerce(val: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(val, bool):
            raise EdgebenchError(f"{where}: expected true or false, found {val!r}")
        return val
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise EdgebenchError(f"{where}: expected a number, found {val!r}")
        return type(default)(val) if isinstance(default, float) or float(val).is_integer() else val
    if isinstance(default, str) and not isinstance(val, str):
        raise EdgebenchError(f"{where}: expected a string, found {val!r}")
    if isinstance(default, tuple):
        if not isinstance(val, (list, tuple)):
            raise EdgebenchError(f"{where}: expected a list, found {val!r}")
        return tuple(val)
    return val


def _positive_ints(val: Any, where: str) -> tuple[int, ...]:
    if not isinstance(val, (list, tuple)) or not val or not all(isinstance(v, int) and v > 0 for v in val):
        raise EdgebenchError(f"{where}: expected a non-empty list of positive integers, found {val!r}")
    return tuple(val)


def _candidate(item: Any, i: int) -> CandidateConfig:
    where = f"candidates[{i}]"
    if isinstance(item, str):
        for c in DEFAULT_CANDIDATES:
            if c.name == item:
                return c
        m = re.fullmatch(r"pruned-(\d+(?:\.\d+)?)(\+int8)?", item)
        if m:
            return CandidateConfig(
                item, prune={"ratio": float(m.group(1)) / 100.0}, quantize={"preset": "ort-cpu"} if m.group(2) else None
            )
        raise EdgebenchError(
            f"{where}: unknown candidate shorthand '{item}': expected base, int8, pruned-<percent>, "
            "pruned-<percent>+int8, or a mapping {name, prune, quantize}"
        )
    if not isinstance(item, dict):
        raise EdgebenchError(f"{where}: expected a name or a mapping, found {item!r}")
    check_keys(item, ("name", "prune", "quantize", "parent", "engine", "precision", "builder"), where)
    from edgebench.study.engines import parse_engine

    engine, precision, builder = parse_engine(item, where)
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise EdgebenchError(f"{where}: expected a 'name' of letters, digits and . _ + -, found {name!r}")
    for key in ("prune", "quantize"):
        if item.get(key) is not None and not isinstance(item[key], dict):
            raise EdgebenchError(f"{where}.{key}: expected a mapping, found {item[key]!r}")
    parent = item.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise EdgebenchError(f"{where}.parent: expected a candidate name, found {parent!r}")
    if parent is not None and item.get("prune") is None:
        raise EdgebenchError(f"{where}: 'parent' names where pruning starts; it needs a 'prune' recipe too")
    return CandidateConfig(name, item.get("prune"), item.get("quantize"), parent, engine, precision, builder)


def study_from_dict(data: dict | None, source: str = "<defaults>") -> StudyConfig:
    data = dict(data or {})
    check_keys(data, {f.name for f in dataclasses.fields(StudyConfig)} - {"source"}, source)
    cands_raw = data.get("candidates")
    candidates: tuple[CandidateConfig, ...]
    if cands_raw is None:
        candidates = DEFAULT_CANDIDATES
    else:
        if not isinstance(cands_raw, list) or not cands_raw:
            raise EdgebenchError(f"{source}: candidates: expected a non-empty list, found {cands_raw!r}")
        candidates = tuple(_candidate(c, i) for i, c in enumerate(cands_raw))
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise EdgebenchError(f"{source}: candidates: names must be unique, found {names}")
    if "base" not in names:
        candidates = (CandidateConfig("base"),) + candidates  # everything is measured against base
    seen: dict[str, CandidateConfig] = {}
    for c in candidates:
        if c.parent is not None:
            par = seen.get(c.parent)
            if par is None:
                raise EdgebenchError(
                    f"{source}: candidate '{c.name}': parent '{c.parent}' must be a candidate listed before it, "
                    f"found {sorted(seen)}"
                )
            if par.quantize is not None:
                raise EdgebenchError(
                    f"{source}: candidate '{c.name}': parent '{c.parent}' is quantized; pruning continues from an fp32 "
                    "candidate (quantize the child instead)"
                )
        seen[c.name] = c
    devices = data.get("devices", ["local"])
    if isinstance(devices, str):
        devices = [devices]
    if not isinstance(devices, list) or not devices or not all(isinstance(d, str) for d in devices):
        raise EdgebenchError(f"{source}: devices: expected a list of device names, found {devices!r}")
    attacks = data.get("attacks")
    if attacks is not None and not isinstance(attacks, dict):
        raise EdgebenchError(f"{source}: attacks: expected a mapping with 'samples' and 'suite', found {attacks!r}")
    attacks = dict(attacks or {})
    suite = attacks.pop("suite", None)
    if suite is not None and not isinstance(suite, list):
        raise EdgebenchError(f"{source}: attacks.suite: expected a list of attacks, found {suite!r}")
    attack_cfg = _section(AttackConfig, attacks, f"{source}: attacks")
    if suite is not None:
        attack_cfg = dataclasses.replace(attack_cfg, suite=tuple(suite))
    if attack_cfg.samples < 1:
        raise EdgebenchError(f"{source}: attacks.samples: expected a positive number, found {attack_cfg.samples}")
    bad = [v for v in attack_cfg.settings if v not in ("transfer", "whitebox")]
    if bad or not attack_cfg.settings or len(set(attack_cfg.settings)) != len(attack_cfg.settings):
        raise EdgebenchError(
            f"{source}: attacks.settings: expected a non-empty list of transfer and/or whitebox, found {list(attack_cfg.settings)}"
        )
    if (
        isinstance(attack_cfg.whitebox_samples, bool)
        or not isinstance(attack_cfg.whitebox_samples, int)
        or attack_cfg.whitebox_samples < 1
    ):
        raise EdgebenchError(
            f"{source}: attacks.whitebox_samples: expected a positive integer, found {attack_cfg.whitebox_samples!r}"
        )
    seed = data.get("seed", 0)
    if not isinstance(seed, int):
        raise EdgebenchError(f"{source}: seed: expected an integer, found {seed!r}")
    name = data.get("name", "demo")
    if not isinstance(name, str) or not _NAME.match(name):
        raise EdgebenchError(f"{source}: name: expected letters, digits and . _ + -, found {name!r}")
    profile = _section(ProfileConfig, data.get("profile"), f"{source}: profile", {"batches": _positive_ints})
    bad_modes = sorted(set(profile.modes) - {"end_to_end", "compute"})
    if bad_modes:
        raise EdgebenchError(f"{source}: profile.modes: unknown {bad_modes}; expected end_to_end and/or compute")
    cfg = StudyConfig(
        name=name,
        seed=seed,
        model=_section(ModelConfig, data.get("model"), f"{source}: model"),
        data=_section(DataConfig, data.get("data"), f"{source}: data"),
        candidates=candidates,
        attacks=attack_cfg,
        blackbox=_section(BlackBoxConfig, data.get("blackbox"), f"{source}: blackbox"),
        devices=tuple(devices),
        profile=profile,
        budgets=_section(Budgets, data.get("budgets"), f"{source}: budgets"),
        search=parse_search(data.get("search"), source),
        source=source,
    )
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
