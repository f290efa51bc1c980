"""Attack specs and crafting on a real trained digits CNN."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgebench.errors import EdgebenchError
from edgebench.robustness.attacks import (
    AttackSpec,
    craft,
    default_attack_specs,
    distances,
    parse_attack_specs,
    set_id,
    spec_from_dict,
)

LINF = tuple(e / 255 for e in (4, 16, 48))


# ---- distances on hand-computed vectors ----------------------------------------------------
def test_distances_on_hand_computed_perturbations():
    """Perturbations (3, -4, 0, 0) and (0.5, 0.5, 0.5, -0.5) on a grey image, norms by hand."""
    x = np.full((3, 1, 2, 2), 0.25, dtype=np.float32)
    d = np.array([[3.0, -4.0, 0.0, 0.0], [0.5, 0.5, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0]]).reshape(3, 1, 2, 2)
    x_adv = (x + d).astype(np.float32)
    expected = {
        "l0": [2.0, 4.0, 0.0],  # non-zero entries
        "l1": [7.0, 2.0, 0.0],  # 3 + 4; 4 * 0.5
        "l2": [5.0, 1.0, 0.0],  # sqrt(9 + 16); sqrt(4 * 0.25)
        "linf": [4.0, 0.5, 0.0],  # largest |entry|
    }
    for norm, want in expected.items():
        got = distances(x, x_adv, norm)
        assert got.dtype == np.float64 and got.shape == (3,)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=norm)
    with pytest.raises(ValueError):
        distances(x, x_adv, "l3")


# ---- spec validation ------------------------------------------------------------------------
def test_unknown_attack_lists_allowed_names():
    with pytest.raises(EdgebenchError, match=r"unknown attack 'jsma'.*'brendel-bethge'.*'pgd'"):
        AttackSpec("jsma", "linf", (0.1,))


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5, float("nan")])
def test_linf_epsilon_outside_unit_interval(eps):
    with pytest.raises(EdgebenchError, match=r"outside \(0, 1\]"):
        AttackSpec("pgd", "linf", (eps,))


def test_norm_not_supported_lists_allowed_norms():
    with pytest.raises(EdgebenchError, match=r"fgsm: norm 'l2' is not supported; expected one of \['linf'\]"):
        AttackSpec("fgsm", "l2", (0.5,))
    with pytest.raises(EdgebenchError, match=r"cw: norm 'linf'.*\['l2'\]"):
        AttackSpec("cw", "linf")


def test_parameter_that_does_not_apply_and_bad_values():
    with pytest.raises(EdgebenchError, match="fgsm: parameter 'steps' does not apply"):
        AttackSpec("fgsm", "linf", (0.1,), steps=5)
    with pytest.raises(EdgebenchError, match="steps must be an integer >= 1"):
        AttackSpec("pgd", "linf", (0.1,), steps=0)
    with pytest.raises(EdgebenchError, match="random_start must be true or false"):
        AttackSpec("pgd", "linf", (0.1,), random_start="yes")  # type: ignore[arg-type]
    with pytest.raises(EdgebenchError, match="expected at least one epsilon"):
        AttackSpec("pgd", "linf", ())


def test_l2_epsilon_may_exceed_one_but_not_the_input_diameter(digits_model, eval_batch):
    x, y = eval_batch
    AttackSpec("pgd", "l2", (2.0,))  # fine: sqrt(64) = 8 for 8x8 inputs
    with pytest.raises(
        EdgebenchError, match=r"exceeds the largest l2 distance possible for inputs of 64 values.*\(8\)"
    ):
        craft(digits_model, x[:4], y[:4], AttackSpec("pgd", "l2", (9.0,), steps=1))


def test_parse_eps_255_defaults_and_errors():
    specs = parse_attack_specs(
        [
            {"name": "pgd", "norm": "linf", "eps_255": [2, 8], "steps": 10, "rel_stepsize": 0.25, "random_start": True},
            {"name": "pgd", "norm": "l2", "epsilons": [0.5, 1.0]},
            {"name": "cw", "norm": "l2"},
        ]
    )
    assert specs[0].epsilons == (2 / 255, 8 / 255)
    assert [s for sp in specs for s in sp.set_ids()] == [
        "pgd-linf-2",
        "pgd-linf-8",
        "pgd-l2-0.5",
        "pgd-l2-1",
        "cw-l2-min",
    ]
    assert specs[2].params() == {"steps": 100, "binary_search_steps": 5}
    assert parse_attack_specs(None) == parse_attack_specs([]) == default_attack_specs()
    with pytest.raises(EdgebenchError, match="eps_255 is for Linf attacks only"):
        parse_attack_specs([{"name": "pgd", "norm": "l2", "eps_255": [8]}])
    with pytest.raises(EdgebenchError, match=r"unknown key\(s\) \['epsilon'\]"):
        parse_attack_specs([{"name": "pgd", "epsilon": [0.1]}])
    with pytest.raises(EdgebenchError, match="'pgd-linf-8' is already produced by attacks\\[0\\]"):
        parse_attack_specs([{"name": "pgd", "eps_255": [8]}, {"name": "pgd", "epsilons": [8 / 255]}])
    with pytest.raises(EdgebenchError, match="expected a list of attack mappings"):
        parse_attack_specs({"name": "pgd"})  # type: ignore[arg-type]


def test_default_suite_and_ids():
    specs = default_attack_specs()
    assert [(s.name, s.norm) for s in specs] == [("fgsm", "linf"), ("pgd", "linf"), ("pgd", "l2")]
    assert specs[1].set_ids() == ["pgd-linf-2", "pgd-linf-4", "pgd-linf-8", "pgd-linf-16", "pgd-linf-32"]
    assert specs[1].params() == {"steps": 10, "rel_stepsize": 0.25, "random_start": True}
    assert set_id("pgd", "linf", 0.5 / 255) == "pgd-linf-0.5"
    assert spec_from_dict(specs[2].to_dict()) == specs[2].resolved()


def test_brendel_bethge_without_numba_names_numba(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail, as when it is not installed
    with pytest.raises(EdgebenchError, match="brendel-bethge needs numba"):
        AttackSpec("brendel-bethge", "l0")


def test_bad_inputs(digits_model, eval_batch):
    x, y = eval_batch
    spec = AttackSpec("fgsm", "linf", (0.1,))
    with pytest.raises(EdgebenchError, match=r"values in \[0, 1\].*normalization belongs inside the model"):
        craft(digits_model, (x * 16).astype(np.float32), y, spec)
    with pytest.raises(EdgebenchError, match="expected a float32 numpy array, found float64"):
        craft(digits_model, x.astype(np.float64), y, spec)
    with pytest.raises(EdgebenchError, match="expected 64 labels"):
        craft(digits_model, x, y[:10], spec)


# ---- crafting on a real model ---------------------------------------------------------------
def test_clean_model_is_accurate(digits_model, eval_batch):
    # the premise of the other tests: a real classifier, not a random one
    s = craft(digits_model, *eval_batch, AttackSpec("fgsm", "linf", (1 / 255,)))[0]
    assert s.base_clean_accuracy > 0.9


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec("fgsm", "linf", LINF),
        AttackSpec("pgd", "linf", LINF, steps=5),
        AttackSpec("pgd", "l2", (0.25, 1.0, 2.0), steps=5),
    ],
    ids=lambda s: f"{s.name}-{s.norm}",
)
def test_fixed_epsilon_accuracy_falls_with_epsilon(digits_model, eval_batch, spec):
    x, y = eval_batch
    sets = craft(digits_model, x, y, spec, batch_size=32)
    assert [s.id for s in sets] == spec.set_ids()
    acc = [s.base_accuracy for s in sets]
    assert acc == sorted(acc, reverse=True), acc
    assert acc[0] <= sets[0].base_clean_accuracy
    assert acc[-1] < 0.5 * sets[0].base_clean_accuracy  # the largest epsilon really breaks the model
    for s, eps in zip(sets, spec.epsilons):
        assert s.x_adv.dtype == np.float32 and s.x_adv.shape == x.shape
        assert 0.0 <= s.x_adv.min() and s.x_adv.max() <= 1.0
        assert distances(x, s.x_adv, spec.norm).max() <= eps * (1 + 1e-5) + 1e-6
        # stored predictions are the model's real predictions on the stored inputs
        import torch

        with torch.no_grad():
            pred = digits_model(torch.from_numpy(s.x_adv)).argmax(1).numpy()
        np.testing.assert_array_equal(pred, s.base_predictions)


def test_pgd_beats_fgsm_and_is_deterministic(digits_model, eval_batch):
    x, y = eval_batch
    eps = (16 / 255,)
    fgsm = craft(digits_model, x, y, AttackSpec("fgsm", "linf", eps))[0]
    pgd_a = craft(digits_model, x, y, AttackSpec("pgd", "linf", eps, steps=10), seed=3)[0]
    pgd_b = craft(digits_model, x, y, AttackSpec("pgd", "linf", eps, steps=10), seed=3, batch_size=16)[0]
    pgd_c = craft(digits_model, x, y, AttackSpec("pgd", "linf", eps, steps=10), seed=4)[0]
    assert pgd_a.base_accuracy <= fgsm.base_accuracy
    np.testing.assert_array_equal(pgd_a.x_adv, pgd_b.x_adv)  # same seed: same set (batching aside)
    assert not np.array_equal(pgd_a.x_adv, pgd_c.x_adv)  # the random start follows the seed


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec("cw", "l2", (0.5, 1.0), steps=30, binary_search_steps=3),
        AttackSpec("fmn", "l2", (0.5, 1.0), steps=20),
        AttackSpec("fmn", "linf", (0.1,), steps=20),
        AttackSpec("deepfool", "l2", (0.5, 1.0), steps=20),
        AttackSpec("deepfool", "linf", (0.1,), steps=20),
    ],
    ids=lambda s: f"{s.name}-{s.norm}",
)
def test_minimal_attacks_produce_distances(digits_model, eval_batch, spec):
    x, y = eval_batch
    x, y = x[:24], y[:24]
    sets = craft(digits_model, x, y, spec, batch_size=32)
    assert [s.id for s in sets] == spec.set_ids()
    mn = sets[0]
    assert mn.eps is None and mn.distances is not None and mn.distances.dtype == np.float32
    fooled = mn.base_predictions != mn.labels
    assert fooled.mean() > 0.8  # minimal attacks find an adversarial for nearly every digit
    ok = fooled & (mn.base_clean_predictions == mn.labels)
    # the recorded distances are the real distances of the stored adversarials
    np.testing.assert_allclose(mn.distances[ok], distances(x, mn.x_adv, spec.norm)[ok], rtol=1e-4, atol=1e-6)
    assert np.all(mn.distances[ok] > 0) and np.all(np.isinf(mn.distances[~fooled]))
    med = mn.median_distance()
    assert med is not None and 0 < med < {"l2": 8.0, "linf": 1.0}[spec.norm]
    for s, eps in zip(sets[1:], spec.epsilons):
        # thresholded: adversarial where the minimal distance fits in eps, within the ball everywhere
        within = (mn.distances <= eps) & ok
        assert np.all(s.base_predictions[within] != s.labels[within])
        assert distances(x, s.x_adv, spec.norm).max() <= eps * (1 + 1e-4) + 1e-6
    accs = [s.base_accuracy for s in sets[1:]]
    assert accs == sorted(accs, reverse=True)


@pytest.mark.slow
def test_brendel_bethge_l0(digits_model, eval_batch):
    # numba compiles the solver on first use (20-60 s), hence slow
    x, y = eval_batch
    spec = AttackSpec("brendel-bethge", "l0", (4.0,), steps=10)
    mn, th = craft(digits_model, x[:6], y[:6], spec)
    fooled = mn.base_predictions != mn.labels
    assert fooled.all()
    np.testing.assert_array_equal(mn.distances, distances(x[:6], mn.x_adv, "l0").astype(np.float32))
    assert 1 <= mn.median_distance() <= 64
    # L0 cannot be shrunk: beyond eps the sample stays clean
    beyond = mn.distances > 4.0
    np.testing.assert_array_equal(th.x_adv[beyond], x[:6][beyond])
