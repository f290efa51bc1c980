"""Study config validation: every mistake is one line saying what was expected and found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.compress.prune import FinetuneSpec, PruneSpec
from edgebench.compress.quantize import QuantSpec
from edgebench.errors import EdgebenchError
from edgebench.robustness.attacks import AttackSpec, default_attack_specs
from edgebench.robustness.blackbox import BlackBoxSpec
from edgebench.study.config import CandidateConfig, load_study, study_from_dict
from edgebench.subject.data import DataConfig


def test_defaults_are_the_demo_study() -> None:
    cfg = load_study(None)
    assert [c.name for c in cfg.candidates] == ["base", "pruned-50", "int8", "pruned-50+int8"]
    assert (
        cfg.model.kind == "arch"
        and cfg.model.spec == "resnet8-wide"
        and cfg.data.name == "mnist"
        and cfg.devices == ("local",)
    )
    # candidates hold parsed specs, every option resolved
    assert cfg.candidates[3].prune == PruneSpec(ratio=0.5, finetune=FinetuneSpec(epochs=2, lr=2e-3))
    assert cfg.candidates[3].quantize == QuantSpec(preset="ort-cpu", reduce_range=True)
    assert cfg.candidates[0].prune is None and cfg.candidates[0].quantize is None
    # a study file without a model section still gets the LeNet-5 default
    assert study_from_dict({}).model.spec == "lenet5"


def test_shorthands_and_base_is_always_present() -> None:
    cfg = study_from_dict({"candidates": ["pruned-75+int8", "int8"]})
    assert [c.name for c in cfg.candidates] == ["base", "pruned-75+int8", "int8"]
    assert cfg.candidates[1].prune == PruneSpec(ratio=0.75)
    assert cfg.candidates[1].quantize == cfg.candidates[2].quantize == QuantSpec(preset="ort-cpu")


def test_specs_are_parsed_when_the_study_is_read() -> None:
    """Attacks, the Square attack and the engine are typed specs; nothing downstream parses a mapping."""
    cfg = study_from_dict(
        {
            "attacks": {"suite": [{"name": "pgd", "norm": "linf", "eps_255": [8], "steps": 5}]},
            "blackbox": {"square": {"norm": "linf", "eps_255": [8, 16], "max_queries": 300}},
        }
    )
    assert cfg.attacks.suite == (AttackSpec("pgd", "linf", (8 / 255,), steps=5),)
    assert cfg.blackbox.square == BlackBoxSpec(
        name="square", norm="linf", epsilons=(8 / 255, 16 / 255), max_queries=300
    )
    assert cfg.blackbox.spec() == BlackBoxSpec(
        name="hsj", norm="l2", max_queries=400, epsilons=(1.0, 2.0, 3.0), gradient_queries=40
    )
    # no suite (or an empty one): the default suite, parsed
    assert study_from_dict({}).attacks.suite == tuple(default_attack_specs())
    assert study_from_dict({"attacks": {"suite": []}}).attacks.suite == tuple(default_attack_specs())


def test_to_dict_is_json_and_reads_back() -> None:
    """results.json echoes to_dict and run folders are bound by it: plain JSON, every spec
    resolved, the same for the same study, and read back to the same study."""
    cfg = load_study(None)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["candidates"][3]["prune"] == PruneSpec(ratio=0.5, finetune=FinetuneSpec(epochs=2, lr=2e-3)).to_dict()
    assert d["candidates"][3]["quantize"]["activation_type"] == "u8"  # resolved from the preset
    assert d["attacks"]["suite"][1]["steps"] == 10 and d["attacks"]["suite"][0]["steps"] is None
    assert "search" not in d
    again = study_from_dict(d)
    assert again.to_dict() == d and again.candidates == cfg.candidates and again.attacks == cfg.attacks
    assert cfg.candidates[1].recipe() == {"prune": d["candidates"][1]["prune"], "quantize": None}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"foo": 1}, "<defaults>: unknown key(s) ['foo']; expected some of ['attacks', "),
        ({"model": {"archh": "lenet5"}}, "model: unknown key(s) ['archh']"),
        ({"data": {"count": 5}}, "data: unknown key(s) ['count']"),
        ({"candidates": ["base", {"name": "x", "prunee": {}}]}, "candidates[1]: unknown key(s) ['prunee']"),
        ({"candidates": [{"name": "x", "prune": {"rato": 0.5}}]}, "candidates[0].prune: unknown key(s) ['rato']"),
        (
            {"candidates": [{"name": "x", "prune": {"finetune": {"epoch": 1}}}]},
            "candidates[0].prune.finetune: unknown key(s) ['epoch']",
        ),
        (
            {"candidates": [{"name": "x", "quantize": {"method": "x"}}]},
            "candidates[0].quantize: unknown key(s) ['method']",
        ),
        ({"attacks": {"sample": 3}}, "attacks: unknown key(s) ['sample']"),
        ({"attacks": {"suite": [{"name": "fgsm", "eps": [8]}]}}, "attacks.suite[0]: unknown key(s) ['eps']"),
        ({"blackbox": {"queries": 3}}, "blackbox: unknown key(s) ['queries']"),
        ({"blackbox": {"square": {"eps": [8]}}}, "blackbox.square: unknown key(s) ['eps']"),
        ({"profile": {"batch": [1]}}, "profile: unknown key(s) ['batch']"),
        ({"budgets": {"max_latency": 1}}, "budgets: unknown key(s) ['max_latency']"),
        ({"search": {"trial": 3}}, "search: unknown key(s) ['trial']"),
        ({"search": {"space": {"ratio": [0, 1]}}}, "search.space: unknown key(s) ['ratio']"),
    ],
)
def test_an_unknown_key_anywhere_is_named_with_its_path(data: dict, message: str) -> None:
    with pytest.raises(EdgebenchError) as exc:
        study_from_dict(data)
    text = str(exc.value)
    assert "\n" not in text and text.startswith("<defaults>: ") and message in text, text


@pytest.mark.parametrize(
    "data, message",
    [
        ({"seed": "5"}, "seed: expected an integer, found '5'"),
        ({"seed": True}, "seed: expected an integer, found true"),
        ({"model": {"train_lr": True}}, "model.train_lr: expected a number, found true"),
        ({"model": {"train_epochs": 2.5}}, "model.train_epochs: expected an integer, found 2.5"),
        ({"data": {"eval_count": "500"}}, "data.eval_count: expected an integer, found '500'"),
        ({"profile": {"warmup_s": "1"}}, "profile.warmup_s: expected a number, found '1'"),
        ({"profile": {"profile_ops": "yes"}}, "profile.profile_ops: expected true or false, found 'yes'"),
        ({"profile": {"modes": "compute"}}, "profile.modes: expected a list, found 'compute'"),
        ({"attacks": {"settings": "transfer"}}, "attacks.settings: expected a list, found 'transfer'"),
        ({"attacks": {"whitebox_samples": 1.0}}, "attacks.whitebox_samples: expected an integer, found 1.0"),
        ({"blackbox": {"enabled": 1}}, "blackbox.enabled: expected true or false, found 1"),
        ({"blackbox": {"epsilons": ["1"]}}, "blackbox.epsilons[0]: expected a number, found '1'"),
        ({"budgets": {"max_p99_latency_ms": True}}, "budgets.max_p99_latency_ms: expected a number, found true"),
        (
            {"candidates": ["base", {"name": "x", "prune": {"ratio": "0.5"}}]},
            "candidates[1].prune.ratio: expected a number in [0, 1), found '0.5'",
        ),
        ({"candidates": [{"name": "x", "parent": 3}]}, "candidates[0].parent: expected a string, found 3"),
        ({"candidates": [{"name": 7}]}, "candidates[0].name: expected a string, found 7"),
        ({"search": {"keep": "half", "space": {"epochs": [0]}}}, "search.keep: expected a number, found 'half'"),
    ],
)
def test_a_wrong_type_names_field_expected_and_found(data: dict, message: str) -> None:
    """Strict: no silent coercion of '5' to 5, of true to 1, or of a string to a list."""
    with pytest.raises(EdgebenchError) as exc:
        study_from_dict(data, "study.yaml")
    assert str(exc.value) == f"study.yaml: {message}"


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"profile": {"batches": [1, 0]}},
            "profile.batches: expected a non-empty list of positive integers, found [1, 0]",
        ),
        ({"profile": {"modes": ["fast"]}}, "profile.modes[0]: expected 'end_to_end' or 'compute', found 'fast'"),
        ({"budgets": {"max_p99_latency_ms": "fast"}}, "budgets.max_p99_latency_ms: expected a number, found 'fast'"),
        ({"candidates": ["pruned-x"]}, "candidates[0]: unknown candidate shorthand 'pruned-x': expected base, int8"),
        ({"candidates": [{"name": "a b"}]}, "candidates[0].name: expected letters, digits and . _ + -, found 'a b'"),
        ({"candidates": [{"prune": {}}]}, "candidates[0].name: expected a value, found nothing"),
        ({"candidates": ["int8", "int8"]}, "candidates: names must be unique, found ['int8', 'int8']"),
        ({"candidates": [{"name": "x", "prune": 0.5}]}, "candidates[0].prune: expected a mapping, found 0.5"),
        ({"candidates": []}, "candidates: expected a non-empty list, found []"),
        ({"devices": []}, "devices: expected a list of device names, found []"),
        ({"attacks": {"samples": 0}}, "attacks.samples: expected a value >= 1, found 0"),
        (
            {"attacks": {"settings": ["transfer", "transfer"]}},
            "attacks.settings: expected a non-empty list of transfer and/or whitebox",
        ),
        (
            {"attacks": {"suite": [{"name": "pgd", "eps_255": [8], "steps": 0}]}},
            "attacks.suite[0]: attack pgd: steps must be an integer >= 1, found 0",
        ),
        ({"model": {"arch": 3}}, "model.arch: expected a string, found 3"),
        ({"model": {"python": "a.py:Net", "onnx": "b.onnx"}}, "model: expected one source"),
        ({"data": "mnist"}, "data: expected a mapping, found 'mnist'"),
        ({"data": {"eval_count": 0}}, "data.eval_count: expected an integer > 0, found 0"),
        ({"blackbox": {"name": "zzz"}}, "blackbox: unknown black-box attack 'zzz'"),
        ({"blackbox": {"square": {"norm": "l2", "eps_255": [8]}}}, "blackbox.square: eps_255 is for L-inf only"),
        (
            {"candidates": [{"name": "b", "parent": "a", "prune": {}}, {"name": "a", "prune": {}}]},
            "candidates: candidate 'b': parent 'a' must be a candidate listed before it",
        ),
        (
            {"candidates": ["int8", {"name": "c", "parent": "int8", "prune": {}}]},
            "candidates: candidate 'c': parent 'int8' is quantized",
        ),
        (
            {"candidates": [{"name": "c", "parent": "base"}]},
            "candidates[0]: 'parent' names where pruning starts; it needs a 'prune' recipe too",
        ),
        (
            {"candidates": [{"name": "q", "quantize": {"calib_samples": 64}}], "data": {"calib_count": 32}},
            "candidate 'q': quantize.calib_samples=64 but data.calib_count=32",
        ),
        (
            {"blackbox": {"enabled": True, "samples": 8, "pool": 64}, "data": {"eval_count": 50}},
            "blackbox: samples + pool = 72 must not exceed data.eval_count = 50",
        ),
        ({"search": {"trials": 0, "space": {"epochs": [0]}}}, "search.trials: expected a value >= 1, found 0"),
    ],
)
def test_invalid_configs(data: dict, message: str) -> None:
    with pytest.raises(EdgebenchError) as exc:
        study_from_dict(data, "study.yaml")
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"study.yaml: {message}"), text


def test_a_bad_prune_recipe_fails_when_the_study_is_read(tmp_path: Path) -> None:
    """Not when the candidate is built: loading the file is enough, and the line names file and path."""
    study = tmp_path / "study.yaml"
    study.write_text("candidates:\n  - base\n  - int8\n  - {name: p, prune: {ratio: 1.5}}\n")
    with pytest.raises(EdgebenchError) as exc:
        load_study(study)
    assert str(exc.value) == f"{study}: candidates[2].prune.ratio: expected a number in [0, 1), found 1.5"


def test_replace_and_direct_construction_validate() -> None:
    cfg = load_study(None)
    assert cfg.replace(devices=("jetson",)).devices == ("jetson",)
    assert cfg.replace(devices=("jetson",)).candidates == cfg.candidates
    with pytest.raises(EdgebenchError, match=r"^<defaults>: devices: expected a list of device names, found \(\)$"):
        cfg.replace(devices=())
    # a section built directly (the CLI, a search trial) fails in one line too
    with pytest.raises(EdgebenchError, match=r"^prune.ratio: expected a number in \[0, 1\), found 2$"):
        CandidateConfig(name="x", prune={"ratio": 2})
    with pytest.raises(EdgebenchError, match=r"^data.eval_count: expected an integer, found '5'$"):
        DataConfig(eval_count="5")


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgebenchError, match="study config not found"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(EdgebenchError, match="not valid YAML"):
        load_study(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(EdgebenchError, match="expected a mapping at the top level, found list"):
        load_study(lst)


@pytest.mark.parametrize("name", ["merkle", "merkle-transfer", "gap", "cifar10", "jetson-tensorrt"])
def test_shipped_reproduction_studies_validate(name: str) -> None:
    """docs/REPRODUCE.md runs these; every spec in them must parse (prune, quantize, attacks)."""
    from edgebench.study.pipeline import Pipeline

    cfg = load_study(Path(__file__).resolve().parents[2] / "studies" / f"{name}.yaml")
    Pipeline(cfg, Path("unused")).validate()
    assert cfg.attacks.suite and len(cfg.candidates) >= 4
