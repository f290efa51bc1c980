"""The attack registry: every attack defined once, and everything else reading it."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.robustness.attacks import AttackSpec, CraftPlan, craft, distances, parse_attack_specs
from edgebench.robustness.blackbox import BlackBoxSpec
from edgebench.robustness.registry import (
    ATTACKS,
    BLACKBOX_ATTACKS,
    NORM_ALIASES,
    PARAMETERS,
    AttackDef,
    describe_attacks,
)

PAIRS = [(a.name, norm) for a in ATTACKS.values() for norm in a.norms]
P_OF_NORM = {"l0": 0, "l1": 1, "l2": 2, "linf": math.inf}


def _eps(norm: str) -> float:
    return 8 / 255 if norm == "linf" else 1.0


def _one_line_error(call) -> str:
    with pytest.raises(EdgebenchError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("name", "norm"), PAIRS, ids=[f"{n}-{m}" for n, m in PAIRS])
def test_every_registered_attack_parses_with_its_defaults_and_builds(name, norm):
    (spec,) = parse_attack_specs([{"name": name, "norm": norm, "epsilons": [_eps(norm)]}])
    definition = ATTACKS[name]
    assert spec.params() == dict(definition.defaults)
    assert spec.set_ids()[0] == (
        f"{name}-{norm}-min" if definition.minimal else f"{name}-{norm}-{8 if norm == 'linf' else 1}"
    )
    attack = definition.build(spec.norm, spec.params())
    # the foolbox attack measures the spec's norm and got the spec's parameters
    assert attack.distance.p == P_OF_NORM[norm]
    for key, value in spec.params().items():
        assert getattr(attack, key) == value, key


def test_registry_is_consistent_with_the_spec_fields():
    spec_params = {f.name for f in fields(AttackSpec)} - {"name", "norm", "epsilons"}
    assert set(PARAMETERS) == spec_params
    names = set(ATTACKS)
    for attack in ATTACKS.values():
        assert set(attack.norms) <= set(NORM_ALIASES.values()), attack.name
        assert set(attack.defaults) <= set(PARAMETERS), attack.name
        for key, value in attack.defaults.items():
            assert PARAMETERS[key].check(value), (attack.name, key)
        assert not set(attack.aliases) & names, attack.name


def test_unknown_attack_names_the_registered_ones():
    message = _one_line_error(lambda: parse_attack_specs([{"name": "jsma", "eps_255": [8]}]))
    assert message == f"attacks[0]: unknown attack 'jsma'; expected one of {sorted(ATTACKS)}"
    missing = _one_line_error(lambda: parse_attack_specs([{"norm": "linf"}]))
    assert str(sorted(ATTACKS)) in missing


@pytest.mark.parametrize("name", list(ATTACKS))
def test_unsupported_norm_names_the_attacks_norms(name):
    norms = ATTACKS[name].norms
    other = next((n for n in ("linf", "l2", "l1", "l0") if n not in norms), "l3")
    message = _one_line_error(lambda: parse_attack_specs([{"name": name, "norm": other, "epsilons": [0.5]}]))
    assert message == f"attacks[0]: attack {name}: norm {other!r} is not supported; expected one of {list(norms)}"


def test_unknown_or_inapplicable_parameter_names_what_is_accepted():
    message = _one_line_error(lambda: parse_attack_specs([{"name": "pgd", "eps_255": [8], "stepz": 3}]))
    assert "'stepz'" in message and "'steps'" in message
    message = _one_line_error(lambda: parse_attack_specs([{"name": "cw", "norm": "l2", "random_start": True}]))
    assert message == (
        f"attacks[0]: attack cw: parameter 'random_start' does not apply; it accepts {sorted(ATTACKS['cw'].defaults)}"
    )
    message = _one_line_error(lambda: parse_attack_specs([{"name": "pgd", "eps_255": [8], "rel_stepsize": 11}]))
    assert message == f"attacks[0]: attack pgd: rel_stepsize must be {PARAMETERS['rel_stepsize'].expected}, found 11"


def test_an_attack_is_one_registry_entry(monkeypatch, digits_model, eval_batch):
    """A new entry parses, is listed, and crafts sets: nothing else needs to change."""
    fgm = AttackDef("fgm", "FGM", minimal=False, foolbox={"l2": "L2FastGradientAttack"}, fixed={"random_start": False})
    monkeypatch.setitem(ATTACKS, "fgm", fgm)
    assert "fgm (FGM; l2)" in describe_attacks()
    assert "'fgm'" in _one_line_error(lambda: parse_attack_specs([{"name": "nope"}]))
    (spec,) = parse_attack_specs([{"name": "fgm", "norm": "l2", "epsilons": [0.5, 2.0]}])
    x, y = eval_batch
    small, large = craft(digits_model, x[:32], y[:32], spec)
    assert (small.id, large.id) == ("fgm-l2-0.5", "fgm-l2-2")
    assert distances(x[:32], large.x_adv, "l2").max() <= 2.0 * (1 + 1e-5)
    assert large.base_accuracy < small.base_clean_accuracy


def test_craft_plan_crafts_only_the_sets_asked_for_and_identically(digits_model, eval_batch):
    x, y = eval_batch
    x, y = x[:16], y[:16]
    spec = AttackSpec("deepfool", "l2", (0.5, 1.0), steps=5)
    full = craft(digits_model, x, y, spec, seed=2)
    (part,) = craft(digits_model, x, y, spec, seed=2, plan=CraftPlan((1.0,), include_min=False))
    assert part.id == full[2].id == "deepfool-l2-1"
    np.testing.assert_array_equal(part.x_adv, full[2].x_adv)
    np.testing.assert_array_equal(part.distances, full[2].distances)
    message = _one_line_error(lambda: craft(digits_model, x, y, spec, plan=CraftPlan((2.0,), include_min=True)))
    assert "deepfool-l2-min" in message


BLACKBOX_PAIRS = [(a.name, norm) for a in BLACKBOX_ATTACKS.values() for norm in a.norms]


@pytest.mark.parametrize(("name", "norm"), BLACKBOX_PAIRS, ids=[f"{n}-{m}" for n, m in BLACKBOX_PAIRS])
def test_every_registered_blackbox_attack_specs_and_builds(name, norm):
    spec = BlackBoxSpec(name, norm=norm, epsilons=(0.25,), gradient_queries=7)
    definition = BLACKBOX_ATTACKS[name]
    assert spec.definition is definition and spec.score_based == (definition.decision is None)
    if definition.decision is None:
        return  # score-based (Square): run_square drives torchattacks itself
    assert spec.resolved_steps() == definition.default_steps
    assert BlackBoxSpec(name, norm=norm, epsilons=(0.25,), steps=3).resolved_steps() == 3
    attack = definition.decision(spec.norm, spec.resolved_steps(), spec.gradient_queries)
    assert attack.steps == definition.default_steps
    if hasattr(attack, "constraint"):  # HopSkipJump: the norm it minimizes, and its gradient queries
        assert (attack.constraint, attack.initial_num_evals) == (norm, 7)


def test_blackbox_names_and_norms_come_from_the_registry():
    assert BlackBoxSpec("HopSkipJump").name == "hsj"
    message = _one_line_error(lambda: BlackBoxSpec("nes"))
    assert message == f"unknown black-box attack 'nes'; expected one of {sorted(BLACKBOX_ATTACKS)}"
    for attack in BLACKBOX_ATTACKS.values():
        other = next(n for n in ("linf", "l2", "l1") if n not in attack.norms)
        message = _one_line_error(lambda a=attack, o=other: BlackBoxSpec(a.name, norm=o))
        assert message.endswith(f"norm {other!r} is not supported; expected one of {list(attack.norms)}")


def test_readme_lists_the_registered_attacks():
    readme = Path(__file__).parents[2] / "README.md"
    assert describe_attacks() in readme.read_text()
