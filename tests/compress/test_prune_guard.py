"""Structured pruning never hangs or crashes: what Torch-Pruning cannot trace or cut is left whole
and reported, the rest is pruned, and the reached ratios are measured on the result."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch
from compress_models import ConvAttnNet, FusedQKV, ShuffleNet, TimmStyleAttention, tiny_cnn

from edgebench.compress.finetune import FinetuneSpec
from edgebench.compress.prune import PruneSpec, parse_prune_spec, prune, prune_with_report
from edgebench.compress.stats import count_macs, count_params, layer_widths
from edgebench.errors import EdgebenchError

NO_FT = FinetuneSpec(epochs=0)


def _x(size: int = 8) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _check_measured(outcome, model, shape=(1, 3, 8, 8)) -> None:  # noqa: ANN001
    """The outcome's numbers are the pruned module's, counted again here."""
    assert outcome.params_before == count_params(model)
    assert outcome.params_after == count_params(outcome.module)
    assert outcome.param_ratio == pytest.approx(1 - count_params(outcome.module) / count_params(model))
    assert outcome.macs_before == count_macs(model, shape)
    assert outcome.macs_after == count_macs(outcome.module, shape)
    assert outcome.mac_ratio == pytest.approx(1 - outcome.macs_after / outcome.macs_before)
    json.dumps(outcome.to_dict())  # goes into the candidate manifest as is


def test_fused_qkv_attention_is_left_whole_and_the_rest_pruned():
    torch.manual_seed(0)
    model = ConvAttnNet(FusedQKV).eval()
    x = _x()
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), x)
    w = layer_widths(outcome.module)
    # the convs before the attention lost half their channels; the attention and what feeds it did not
    assert (w["stem.0"], w["expand.0"]) == (8, 16)
    assert (w["reduce"], w["attn.qkv"], w["attn.proj"], w["fc"]) == (24, 72, 24, 10)
    left = dict(outcome.layers_left)
    assert set(left) == {"reduce", "attn.qkv", "attn.proj", "fc"}
    assert "FusedQKV.forward" in left["attn.qkv"] and "RuntimeError" in left["attn.qkv"]
    assert "classifier" in left["fc"]
    assert outcome.attempts == 2 and outcome.unpruned_reason is None
    assert outcome.module(x).shape == (1, 10)
    assert 0.1 < outcome.param_ratio < 0.5 and outcome.mac_ratio > 0.1
    _check_measured(outcome, model)
    assert layer_widths(model)["stem.0"] == 16  # the input model is untouched
    assert layer_widths(prune(model, PruneSpec(ratio=0.5, finetune=NO_FT), x)) == w


def test_timm_style_attention_is_pruned_per_head():
    torch.manual_seed(0)
    model = ConvAttnNet(TimmStyleAttention).eval()
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), _x())
    attn = outcome.module.attn
    assert attn.qkv.out_features < 72 and attn.qkv.out_features % 6 == 0  # both heads cut evenly
    assert attn.num_heads == 2 and attn.head_dim == attn.qkv.out_features // 6
    assert attn.proj.in_features == attn.qkv.out_features // 3
    assert outcome.attempts == 1 and "attn.qkv" not in dict(outcome.layers_left)
    assert outcome.module(_x()).shape == (1, 10)
    _check_measured(outcome, model)


def test_channel_shuffle_is_left_whole_and_the_branches_pruned():
    torch.manual_seed(0)
    model = ShuffleNet().eval()
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), _x())
    w = layer_widths(outcome.module)
    assert w["b1.branch.0"] == w["b2.branch.0"] == 4  # inside each branch: halved
    left = dict(outcome.layers_left)
    assert {"stem.0", "b1.branch.5", "b2.branch.5"} <= set(left)  # what the shuffle couples
    assert all("does not terminate" in left[n] for n in ("stem.0", "b1.branch.5", "b2.branch.5"))
    assert outcome.module(_x()).shape == (1, 10)
    assert outcome.param_ratio > 0.1
    _check_measured(outcome, model)


def test_a_group_whose_importance_fails_is_left_whole(monkeypatch):
    import torch_pruning as tp

    real = tp.importance.MagnitudeImportance.__call__

    def flaky(self, group):  # noqa: ANN001, ANN202
        root = group[0].dep.target.module
        if getattr(root, "in_channels", 0) == 16 and getattr(root, "out_channels", 0) == 32:  # layer "4"
            raise IndexError("boom")
        return real(self, group)

    monkeypatch.setattr(tp.importance.MagnitudeImportance, "__call__", flaky)
    torch.manual_seed(0)
    model = tiny_cnn().eval()
    x = torch.rand(1, 1, 8, 8)
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), x)
    assert layer_widths(outcome.module) == {"1": 8, "4": 32, "8": 16, "13": 10}
    assert dict(outcome.layers_left) == {
        "4": "importance failed (IndexError: boom)",
        "13": "the classifier (its outputs are the classes)",
    }
    _check_measured(outcome, model, (1, 1, 8, 8))


def test_a_model_with_nothing_to_cut_is_never_returned_silently():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10)).eval()
    outcome = prune_with_report(model, PruneSpec(ratio=0.3, finetune=NO_FT), _x())
    assert outcome.unpruned_reason and "could not cut any layer" in outcome.unpruned_reason
    assert outcome.param_ratio == 0 and layer_widths(outcome.module) == layer_widths(model)
    with pytest.raises(EdgebenchError, match="could not cut any layer of Sequential"):
        prune(model, PruneSpec(ratio=0.3, finetune=NO_FT), _x())


def test_slow_tracing_stops_at_the_limit_in_one_line(monkeypatch):
    import torch_pruning as tp

    def slow_build(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        time.sleep(30)

    monkeypatch.setattr(tp.dependency.DependencyGraph, "build_dependency", slow_build)
    handler, outer = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    start = time.perf_counter()
    with pytest.raises(EdgebenchError) as err:
        prune(tiny_cnn().eval(), PruneSpec(ratio=0.5, finetune=NO_FT, trace_timeout_s=0.3), torch.rand(1, 1, 8, 8))
    assert time.perf_counter() - start < 5
    msg = str(err.value)
    assert "\n" not in msg and "Sequential" in msg and "trace_timeout_s=0.3 s" in msg
    # SIGALRM is as it was: the handler, and an outer timer (pytest-timeout's) still counting down
    assert signal.getsignal(signal.SIGALRM) is handler
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert (left == 0) if outer[0] == 0 else (outer[0] - 5 < left < outer[0])


def test_recursion_in_torch_pruning_is_one_line(monkeypatch):
    import torch_pruning as tp

    def deep(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(tp.dependency.DependencyGraph, "build_dependency", deep)
    with pytest.raises(EdgebenchError, match=r"^prune: Torch-Pruning could not trace Sequential: RecursionError"):
        prune(tiny_cnn().eval(), PruneSpec(ratio=0.5, finetune=NO_FT), torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("bad", [0, -1, "soon", float("inf"), True])
def test_trace_timeout_is_validated(bad):
    with pytest.raises(EdgebenchError, match="prune.trace_timeout_s"):
        parse_prune_spec({"trace_timeout_s": bad})
    assert parse_prune_spec({"trace_timeout_s": 5}).trace_timeout_s == 5.0
    assert parse_prune_spec(PruneSpec(trace_timeout_s=7).to_dict()).trace_timeout_s == 7.0


@pytest.mark.slow
def test_swin_t_stops_at_a_short_limit():
    """torchvision's swin_t took Torch-Pruning minutes; with a 2 s budget it is one line in ~2 s."""
    from torchvision.models import swin_t

    torch.manual_seed(0)
    start = time.perf_counter()
    with pytest.raises(EdgebenchError, match=r"SwinTransformer within trace_timeout_s=2 s"):
        prune(swin_t(weights=None).eval(), PruneSpec(ratio=0.3, finetune=NO_FT, trace_timeout_s=2), _x(64))
    assert time.perf_counter() - start < 15


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, name, words",
    [
        ("torchvision", "shufflenet_v2_x0_5", "does not terminate"),
        ("timm", "efficientvit_b0", "importance failed"),
        ("timm", "mobilevit_xxs", None),
    ],
)
def test_zoo_models_that_used_to_crash_prune(source, name, words):
    """These raised ZeroDivisionError / IndexError / RuntimeError from inside Torch-Pruning."""
    torch.manual_seed(0)
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False).eval()
    else:
        import torchvision

        model = torchvision.models.get_model(name, weights=None).eval()
    x = _x(64)
    outcome = prune_with_report(model, PruneSpec(ratio=0.3, finetune=NO_FT), x)
    assert outcome.unpruned_reason is None and outcome.param_ratio > 0.2 and outcome.mac_ratio > 0.2
    assert outcome.module(x).shape == (1, 1000)
    if words:
        assert any(words in r for _, r in outcome.layers_left)
    _check_measured(outcome, model, (1, 3, 64, 64))


def test_an_outer_alarm_still_fires_inside_a_budget_section():
    """A caller's own SIGALRM timer (pytest-timeout's, say) is not swallowed by the budget."""
    from edgebench.compress.tp_guard import TimeBudget

    class OuterAlarm(Exception):
        pass

    def outer(signum, frame):  # noqa: ANN001, ANN202
        raise OuterAlarm()

    saved = signal.signal(signal.SIGALRM, outer), signal.getitimer(signal.ITIMER_REAL)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        start = time.perf_counter()
        with pytest.raises(OuterAlarm), TimeBudget(10).section():
            time.sleep(5)
        assert time.perf_counter() - start < 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved[0])
        if saved[1][0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *saved[1])


def test_torchvision_vit_is_pruned_in_whole_heads():
    """nn.MultiheadAttention needs embed_dim divisible by its heads (channels are rounded to
    them) and torchvision's ViT reshapes by its ``hidden_dim`` attribute (kept in step)."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=16, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=10
    ).eval()
    x = _x(16)
    outcome = prune_with_report(model, PruneSpec(ratio=0.3, finetune=NO_FT), x)
    vit = outcome.module
    assert vit.hidden_dim == vit.conv_proj.out_channels == 20  # 32 * 0.7 = 22.4, down to a multiple of 4
    assert all(b.self_attention.embed_dim == 20 for b in vit.encoder.layers)
    assert dict(outcome.layers_left) == {"heads.head": "the classifier (its outputs are the classes)"}
    assert outcome.attempts == 1 and outcome.module(x).shape == (1, 10)
    assert outcome.param_ratio > 0.3
    _check_measured(outcome, model, (1, 3, 16, 16))


def test_pruning_off_the_main_thread_runs_without_a_limit():
    import threading

    torch.manual_seed(0)
    model, got = tiny_cnn().eval(), {}
    t = threading.Thread(
        target=lambda: got.update(
            w=layer_widths(prune(model, PruneSpec(ratio=0.5, finetune=NO_FT), torch.rand(1, 1, 8, 8)))
        )
    )
    t.start()
    t.join(60)
    assert got["w"] == {"1": 8, "4": 16, "8": 16, "13": 10}


class _BiasTableNet(torch.nn.Module):
    """A free (positions, heads) table added to the features, as attention biases are: Torch-
    Pruning couples its last dimension (2) to the 16 channels and, unguarded, drops the group."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.table = torch.nn.Parameter(torch.randn(4, 2))
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x) + self.table.sum()
        return self.fc(self.conv2(x).mean((2, 3)))


def test_a_free_bias_table_does_not_stop_its_channels_from_being_cut():
    torch.manual_seed(0)
    model = _BiasTableNet().eval()
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), _x())
    assert layer_widths(outcome.module) == {"conv1": 8, "conv2": 8, "fc": 10}
    assert outcome.module.table.shape == (4, 2)
    assert outcome.module(_x()).shape == (1, 10)
    assert dict(outcome.layers_left) == {"fc": "the classifier (its outputs are the classes)"}


class _FunctionalLinear(torch.nn.Module):
    """Reads its child's weight in functional code (as swin's ShiftedWindowAttention does), so
    Torch-Pruning never sees the child and cannot narrow it with its input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.inner.weight, self.inner.bias)


class _StreamNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.norm = torch.nn.LayerNorm(16)
        self.mix = _FunctionalLinear(16)
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)
        t = t + self.mix(self.norm(t))
        t = t + self.fc2(torch.relu(self.fc1(t)))
        return self.head(t.mean(1))


def test_a_block_fed_a_narrower_input_blames_the_cut_that_narrowed_it():
    torch.manual_seed(0)
    model = _StreamNet().eval()
    outcome = prune_with_report(model, PruneSpec(ratio=0.5, finetune=NO_FT), _x())
    w = layer_widths(outcome.module)
    assert w["fc1"] == 16  # the MLP's hidden layer is still cut ...
    assert w["stem"] == w["fc2"] == w["mix.inner"] == 16  # ... the stream feeding `mix` is not
    left = dict(outcome.layers_left)
    assert "_FunctionalLinear.forward" in left["stem"] and "_FunctionalLinear.forward" in left["fc2"]
    assert "traced graph" in left["mix.inner"]
    assert outcome.attempts == 2 and outcome.module(_x()).shape == (1, 10)
    _check_measured(outcome, model)
