"""Pruning on tiny real models trained on sklearn digits, plus shape-only checks on resnet18."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from compress_models import TinyResNet, tiny_cnn

from edgebench.compress.finetune import FinetuneSpec, accuracy
from edgebench.compress.prune import CRITERIA, PruneSpec, find_classifier, parse_prune_spec, prune, prune_series
from edgebench.compress.stats import count_nonzero_params, count_params, layer_widths
from edgebench.errors import EdgebenchError

NO_FT = FinetuneSpec(epochs=0)
FT = FinetuneSpec(epochs=3, lr=3e-3, batch_size=32, seed=0)


def _train(d: dict) -> tuple[np.ndarray, np.ndarray]:
    return d["x_train"], d["y_train"]


def _kept_rows(orig: torch.Tensor, pruned: torch.Tensor) -> set[int]:
    """Indices of the original filters that survived (weights identical when not fine-tuned)."""
    o = orig.detach().flatten(1)
    p = pruned.detach().flatten(1)
    kept = set()
    for row in p:
        match = torch.nonzero(torch.all(o[:, : row.numel()] == row, dim=1)).flatten()
        assert len(match) == 1, "every pruned filter is one original filter"
        kept.add(int(match[0]))
    return kept


def test_pruned50_with_finetune_keeps_accuracy(trained_cnn, digits, example):
    base_acc = accuracy(trained_cnn, digits["x_eval"], digits["y_eval"])
    before = copy.deepcopy(trained_cnn.state_dict())
    pruned = prune(trained_cnn, PruneSpec(ratio=0.5, criterion="l1", finetune=FT), example, _train(digits))
    acc = accuracy(pruned, digits["x_eval"], digits["y_eval"])
    assert base_acc > 0.9
    assert acc >= base_acc - 0.04, (base_acc, acc)
    assert not pruned.training
    # channels halved everywhere but the classifier; the input model is untouched
    assert layer_widths(pruned) == {"1": 8, "4": 16, "8": 16, "13": 10}
    assert count_params(pruned) < 0.35 * count_params(trained_cnn)
    assert all(torch.equal(before[k], v) for k, v in trained_cnn.state_dict().items())
    assert layer_widths(trained_cnn) == {"1": 16, "4": 32, "8": 32, "13": 10}


@pytest.mark.parametrize("criterion", CRITERIA)
def test_each_criterion_prunes_and_runs(criterion, trained_cnn, digits, example):
    spec = PruneSpec(ratio=0.5, criterion=criterion, finetune=NO_FT, gap_samples=64, taylor_samples=64)
    pruned = prune(trained_cnn, spec, example, _train(digits))
    assert layer_widths(pruned) == {"1": 8, "4": 16, "8": 16, "13": 10}
    out = pruned(torch.from_numpy(digits["x_eval"][:5]))
    assert out.shape == (5, 10) and torch.isfinite(out).all()


def test_gap_cuts_other_channels_than_magnitude(trained_cnn, digits, example):
    conv = trained_cnn[1]
    kept = {}
    for c in ("l1", "gap"):
        p = prune(
            trained_cnn, PruneSpec(ratio=0.5, criterion=c, finetune=NO_FT, gap_samples=128), example, _train(digits)
        )
        kept[c] = _kept_rows(conv.weight, p[1].weight)
        assert len(kept[c]) == 8
    assert kept["l1"] != kept["gap"]
    # magnitude keeps the largest-L1 filters of conv1 (its group also holds bn1 and conv2's
    # input slice, so only check it beats random on the conv1 norms)
    norms = conv.weight.detach().abs().flatten(1).sum(1)
    assert norms[sorted(kept["l1"])].mean() > norms.mean()


def test_gap_removes_largest_signed_adversarial_gradient(trained_cnn, digits, example):
    """Independent check of the direction: score the first group (conv1 out, bn1, conv2 in) from
    the adversarial gradients by hand; GAP must remove the channels with the largest scores."""
    from edgebench.compress.importance import accumulate_gradients

    spec = PruneSpec(ratio=0.5, criterion="gap", finetune=NO_FT, gap_samples=128)
    m = copy.deepcopy(trained_cnn)
    accumulate_gradients(m, _train(digits), spec)
    conv1, bn1, conv2 = m[1], m[2], m[4]
    parts = [
        conv1.weight.grad.flatten(1).sum(1) + conv1.bias.grad,
        bn1.weight.grad + bn1.bias.grad,
        conv2.weight.grad.transpose(0, 1).flatten(1).sum(1),
    ]
    score = torch.stack(parts).mean(0)
    expected_removed = set(torch.topk(score, 8).indices.tolist())
    pruned = prune(trained_cnn, spec, example, _train(digits))
    removed = set(range(16)) - _kept_rows(trained_cnn[1].weight, pruned[1].weight)
    assert removed == expected_removed


def test_pgd_fools_the_model_within_the_ball(trained_cnn, digits):
    from edgebench.compress.importance import pgd_linf

    x = torch.from_numpy(digits["x_eval"][:200])
    y = torch.from_numpy(digits["y_eval"][:200])
    adv = pgd_linf(trained_cnn, x, y, eps=0.25, steps=10, rel_stepsize=0.25, generator=torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 0.25 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        clean = (trained_cnn(x).argmax(1) == y).float().mean()
        robust = (trained_cnn(adv).argmax(1) == y).float().mean()
    assert clean > 0.9 and robust < 0.3, (clean, robust)


def test_round_to_keeps_multiples(trained_cnn, digits, example):
    pruned = prune(trained_cnn, PruneSpec(ratio=0.3, round_to=8, finetune=NO_FT), example)
    widths = layer_widths(pruned)
    # int(16 * 0.7) = 11 -> 8, int(32 * 0.7) = 22 -> 16: rounded down to multiples of 8
    assert widths == {"1": 8, "4": 16, "8": 16, "13": 10}
    plain = layer_widths(prune(trained_cnn, PruneSpec(ratio=0.3, finetune=NO_FT), example))
    assert plain == {"1": 11, "4": 22, "8": 22, "13": 10}  # without round_to: 11 is not a multiple of 8


def test_residual_blocks_stay_coupled(trained_resnet, digits, example):
    pruned = prune(trained_resnet, PruneSpec(ratio=0.5, finetune=FT), example, _train(digits))
    w = layer_widths(pruned)
    # the residual adds tie stem, layer1.conv2; and layer2.conv2, layer2.shortcut, layer3.conv2
    assert w["stem.0"] == w["layer1.conv2"] == w["layer1.conv1"] == 8
    assert w["layer2.conv2"] == w["layer2.shortcut.0"] == w["layer3.conv2"] == 16
    assert w["fc"] == 10 and pruned.fc.in_features == 16
    assert accuracy(pruned, digits["x_eval"], digits["y_eval"]) > 0.85


def test_resnet18_shape_only():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    example = torch.rand(1, 3, 64, 64)
    pruned = prune(model, PruneSpec(ratio=0.5, round_to=8, finetune=NO_FT), example)
    before, after = layer_widths(model), layer_widths(pruned)
    assert after["fc"] == 1000 and pruned.fc.out_features == 1000
    convs = [n for n in before if n != "fc"]
    assert all(after[n] % 8 == 0 and after[n] == before[n] // 2 for n in convs), {
        n: (before[n], after[n]) for n in convs
    }
    assert pruned(example).shape == (1, 1000)
    assert count_params(pruned) < 0.3 * count_params(model)


def test_unstructured_zeroes_the_right_share(trained_cnn, digits, example):
    pruned = prune(trained_cnn, PruneSpec(ratio=0.5, structured=False, finetune=NO_FT), example)
    assert layer_widths(pruned) == layer_widths(trained_cnn)  # shapes unchanged: no speed-up
    for i in (1, 4, 8):
        w = pruned[i].weight.detach()
        assert abs(int((w == 0).sum()) - w.numel() // 2) <= 1
        # magnitude: every zeroed weight was no larger than every kept one
        orig = trained_cnn[i].weight.detach().abs()
        assert orig[w == 0].max() <= orig[w != 0].min()
    assert torch.equal(pruned[13].weight, trained_cnn[13].weight)  # classifier untouched
    zeros = count_params(pruned) - count_nonzero_params(pruned)
    prunable = sum(pruned[i].weight.numel() for i in (1, 4, 8))
    assert abs(zeros - prunable / 2) <= 3


def test_unstructured_global_iterative_keeps_masks_through_finetune(trained_cnn, digits, example):
    spec = PruneSpec(
        ratio=0.75,
        structured=False,
        global_pruning=True,
        iterative_steps=2,
        finetune=FinetuneSpec(epochs=1, lr=3e-3, batch_size=32),
    )
    pruned = prune(trained_cnn, spec, example, _train(digits))
    ws = [pruned[i].weight.detach() for i in (1, 4, 8)]
    total = sum(w.numel() for w in ws)
    zeros = sum(int((w == 0).sum()) for w in ws)
    assert abs(zeros - round(0.75 * total)) <= 1
    assert len({round(float((w == 0).float().mean()), 2) for w in ws}) > 1  # global: layers differ
    assert accuracy(pruned, digits["x_eval"], digits["y_eval"]) > 0.8


def test_unstructured_gap_removes_largest_gradients(trained_cnn, digits, example):
    from edgebench.compress.importance import accumulate_gradients

    spec = PruneSpec(ratio=0.5, structured=False, criterion="gap", finetune=NO_FT, gap_samples=128)
    m = copy.deepcopy(trained_cnn)
    accumulate_gradients(m, _train(digits), spec)
    pruned = prune(trained_cnn, spec, example, _train(digits))
    g = m[4].weight.grad.flatten()
    zeroed = set(torch.nonzero(pruned[4].weight.detach().flatten() == 0).flatten().tolist())
    expected = set(torch.topk(g, g.numel() // 2).indices.tolist())
    assert len(zeroed & expected) >= 0.99 * len(expected)


def test_chained_grid_and_series(trained_cnn, digits, example):
    m50 = prune(trained_cnn, PruneSpec(ratio=0.5, finetune=NO_FT), example)
    m75 = prune(m50, PruneSpec(ratio=0.5, finetune=NO_FT), example)
    assert layer_widths(m75)["4"] == 8
    series = prune_series(trained_cnn, [0.5, 0.75, 0.875], PruneSpec(finetune=NO_FT), example)
    assert [layer_widths(s)["4"] for s in series] == [16, 8, 4]
    sparse = prune_series(trained_cnn, [0.5, 0.75], PruneSpec(structured=False, finetune=NO_FT), example)
    w = sparse[-1][4].weight
    assert abs(float((w == 0).float().mean()) - 0.75) < 0.01


def test_iterative_structured_reaches_the_same_widths(trained_cnn, digits, example):
    seen: list[str] = []
    spec = PruneSpec(ratio=0.5, iterative_steps=2, finetune=FinetuneSpec(epochs=1, lr=3e-3, batch_size=32))
    pruned = prune(trained_cnn, spec, example, _train(digits), on_progress=seen.append)
    assert layer_widths(pruned) == {"1": 8, "4": 16, "8": 16, "13": 10}
    assert sum("step" in s for s in seen) == 2 and sum("fine-tune" in s for s in seen) == 2


def test_ratio_zero_is_an_untouched_copy(trained_cnn, example):
    p = prune(trained_cnn, PruneSpec(ratio=0.0), example)
    assert p is not trained_cnn and layer_widths(p) == layer_widths(trained_cnn)


def test_classifier_found_by_output_width():
    m = TinyResNet(classes=7)
    assert find_classifier(m, torch.rand(1, 1, 8, 8)) is m.fc
    assert find_classifier(tiny_cnn(), torch.rand(2, 1, 8, 8)) is not None


def test_parse_prune_spec_roundtrip():
    spec = parse_prune_spec({"ratio": 0.75, "criterion": "gap", "round_to": 8, "finetune": {"epochs": 2, "lr": 0.01}})
    assert spec.ratio == 0.75 and spec.finetune.epochs == 2 and spec.finetune.lr == 0.01
    assert parse_prune_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"ratio": 1.0}, "ratio"),
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": "half"}, "ratio"),
        ({"criterion": "l3"}, "criterion"),
        ({"round_to": 0}, "round_to"),
        ({"round_to": 8, "structured": False}, "structured pruning only"),
        ({"iterative_steps": 0}, "iterative_steps"),
        ({"gap_eps": 0}, "gap_eps"),
        ({"finetune": {"epochs": -1}}, "finetune.epochs"),
        ({"finetune": {"optimizer": "lion"}}, "finetune.optimizer"),
        ({"finetune": {"epoch": 1}}, "'epoch'"),
        ({"ratios": 0.5}, "'ratios'"),
        ({"structured": "yes"}, "structured"),
    ],
)
def test_bad_prune_specs_are_user_errors(bad, words):
    with pytest.raises(EdgebenchError, match=words):
        parse_prune_spec(bad)


def test_bad_prune_calls_are_user_errors(trained_cnn, digits, example):
    with pytest.raises(EdgebenchError, match="needs training data"):
        prune(trained_cnn, PruneSpec(criterion="taylor"), example)
    with pytest.raises(EdgebenchError, match="shape"):
        prune(trained_cnn, PruneSpec(), example, (digits["x_train"][:, :, :4], digits["y_train"]))
    with pytest.raises(EdgebenchError, match=r"\[0, 1\]"):
        prune(trained_cnn, PruneSpec(), example, (digits["x_train"] * 255, digits["y_train"]))
    with pytest.raises(EdgebenchError, match="int64"):
        prune(trained_cnn, PruneSpec(), example, (digits["x_train"], digits["y_train"].astype(np.int32)))
    with pytest.raises(EdgebenchError, match="example_input"):
        prune(trained_cnn, PruneSpec(), example.numpy())


@pytest.mark.parametrize("criterion", ["l2", "gap"])
def test_global_structured_removes_the_share_overall(criterion, trained_resnet, digits, example):
    spec = PruneSpec(ratio=0.4, criterion=criterion, global_pruning=True, finetune=NO_FT, gap_samples=64)
    pruned = prune(trained_resnet, spec, example, _train(digits))
    before, after = layer_widths(trained_resnet), layer_widths(pruned)
    convs = [n for n in before if n != "fc"]
    kept = sum(after[n] for n in convs) / sum(before[n] for n in convs)
    assert 0.45 <= kept <= 0.75, kept
    assert after["fc"] == 10 and pruned(example).shape == (1, 10)


def test_criteria_registry_matches_the_names_recipes_accept():
    """prune.CRITERIA validates recipes without torch; importance.CRITERIA implements them."""
    from edgebench.compress import importance
    from edgebench.compress.prune import CRITERIA, GRADIENT_CRITERIA

    assert set(importance.CRITERIA) == set(CRITERIA)
    assert {k for k, c in importance.CRITERIA.items() if c.gradients} == set(GRADIENT_CRITERIA)
