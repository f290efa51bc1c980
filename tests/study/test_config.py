"""Study config validation: every mistake is one line saying what was expected and found."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.errors import EdgebenchError
from edgebench.study.config import load_study, study_from_dict


def test_defaults_are_the_demo_study() -> None:
    cfg = load_study(None)
    assert [c.name for c in cfg.candidates] == ["base", "pruned-50", "int8", "pruned-50+int8"]
    assert (
        cfg.model.kind == "arch"
        and cfg.model.spec == "resnet8-wide"
        and cfg.data.name == "mnist"
        and cfg.devices == ("local",)
    )
    assert cfg.candidates[3].prune == {"ratio": 0.5, "finetune": {"epochs": 2, "lr": 2e-3}}
    assert cfg.candidates[3].quantize == {"preset": "ort-cpu", "reduce_range": True}
    # a study file without a model section still gets the LeNet-5 default
    assert study_from_dict({}).model.spec == "lenet5"


def test_shorthands_and_base_is_always_present() -> None:
    cfg = study_from_dict({"candidates": ["pruned-75+int8", "int8"]})
    assert [c.name for c in cfg.candidates] == ["base", "pruned-75+int8", "int8"]
    assert cfg.candidates[1].prune == {"ratio": 0.75}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"foo": 1}, r"unknown key\(s\) \['foo'\]"),
        ({"profile": {"batches": [1, 0]}}, "expected a non-empty list of positive integers, found \\[1, 0\\]"),
        ({"profile": {"modes": ["fast"]}}, r"unknown \['fast'\]"),
        ({"budgets": {"max_p99_latency_ms": "fast"}}, "expected a number, found 'fast'"),
        ({"candidates": ["pruned-x"]}, "unknown candidate shorthand 'pruned-x'"),
        ({"candidates": [{"name": "a b"}]}, "expected a 'name' of letters"),
        ({"candidates": ["int8", "int8"]}, "names must be unique"),
        ({"candidates": [{"name": "x", "prune": 0.5}]}, r"candidates\[0\].prune: expected a mapping"),
        ({"devices": []}, "devices: expected a list of device names"),
        ({"attacks": {"samples": 0}}, "attacks.samples: expected a positive number"),
        ({"model": {"arch": 3}}, "model.arch: expected a non-empty string, found 3"),
        ({"data": "mnist"}, "data: expected a mapping"),
        (
            {"candidates": [{"name": "b", "parent": "a", "prune": {}}, {"name": "a", "prune": {}}]},
            "parent 'a' must be a candidate listed before it",
        ),
        ({"candidates": ["int8", {"name": "c", "parent": "int8", "prune": {}}]}, "parent 'int8' is quantized"),
        ({"candidates": [{"name": "c", "parent": "base"}]}, "it needs a 'prune' recipe too"),
    ],
)
def test_invalid_configs(data: dict, message: str) -> None:
    with pytest.raises(EdgebenchError, match=message):
        study_from_dict(data)


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
