"""Torch-Pruning, guarded: a time limit, and groups it cannot trace or cut left whole.

Torch-Pruning follows channels through every op of a traced forward pass. Where it cannot (a
channel shuffle whose reshape it cannot map, a window attention whose permutes make the mapping
run forever, an importance or cut that indexes past a tensor), one *group* of coupled layers
fails, and, unguarded, the whole call fails with a traceback or never returns. This module keeps
those failures local:

- :func:`guarded` patches Torch-Pruning while a prune runs (restored afterwards): an index mapping that raises marks its op *broken* and every
  group through it is skipped; a group that grows past twice the graph's dependencies (a mapping
  that never terminates) raises and its root is skipped; ``get_all_groups`` skips a root whose
  group cannot be built instead of ending the whole generator. Each skipped layer gets one
  reason in :class:`GuardState`. A lock makes concurrent prunes in threads take turns.
- :class:`GuardedPruner`: an importance that raises skips its group.
- :class:`TimeBudget`: SIGALRM-based time limit over all the Torch-Pruning work of one call
  (main thread only; elsewhere no limit applies).
- :func:`failing_module`: which module a failing forward pass of the pruned model died in.
- :func:`attention_heads` / :func:`fix_attention`: timm-style attention (``qkv`` Linear,
  ``num_heads``) is pruned per head dimension and its ``head_dim``/``attn_dim`` updated after.

Imports torch and torch_pruning; :mod:`edgebench.compress.prune` imports it lazily.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency import graph as tp_graph
from torch_pruning.dependency import group as tp_group
from torch_pruning.dependency import index_mapping as tp_index

log = logging.getLogger(__name__)

_INDEX_MAPPERS = (
    "update_concat_index_mapping",
    "update_split_index_mapping",
    "update_reshape_index_mapping",
    "update_unbind_index_mapping",
    "update_expand_index_mapping",
    "update_slice_index_mapping",
    "update_flatten_index_mapping",
)


_MAX_REPEATS = 32  # times one dependency may join one group before it counts as a runaway


class TimeLimitExceeded(BaseException):
    """The time budget ran out. A BaseException, so Torch-Pruning's and our own per-group
    ``except Exception`` handlers never swallow it."""


class _Runaway(Exception):
    """A group kept growing: Torch-Pruning's channel mapping does not terminate."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: message`` on one line, cut to *limit* characters."""
    msg = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class GuardState:
    """What the guards saw during one attempt: broken ops, skipped layers and why, and which
    group was being built or cut last (blamed when a pruning step dies)."""

    cap: int = 1 << 62  # most dependencies one group may hold
    idx_cap: int = 1 << 62  # most indices one dependency of a group may carry
    broken: dict[Any, str] = field(default_factory=dict)  # TP node -> reason
    left: dict[nn.Module, str] = field(default_factory=dict)  # layer -> reason (first one wins)
    current: list[Any] = field(default_factory=list)  # layers of the group built last
    misfit_params: int = 0  # free parameters left out of channel groups (see _without_misfit_parameters)

    def leave(self, module: Any, reason: str) -> None:
        if isinstance(module, nn.Module):
            self.left.setdefault(module, reason)


def out_modules(dg: Any, group: Any) -> list[nn.Module]:
    """The layers whose output channels *group* cuts."""
    return [
        dep.target.module
        for dep, _ in group
        if isinstance(dep.target.module, nn.Module) and dg.is_out_channel_pruning_fn(dep.handler)
    ]


def group_modules(group: Any) -> list[nn.Module]:
    """Every layer *group* touches (outputs or inputs)."""
    return [dep.target.module for dep, _ in group if isinstance(dep.target.module, nn.Module)]


_PATCH_LOCK = threading.RLock()  # the patches are process-wide: one guarded section at a time


@contextlib.contextmanager
def guarded(state: GuardState) -> Iterator[None]:
    """Patch Torch-Pruning for the duration (see the module docstring); always restored.
    Sections in other threads wait for this one (the patches are process-wide)."""
    with _PATCH_LOCK, _patched(state):
        yield


@contextlib.contextmanager
def _patched(state: GuardState) -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def guard_mapper(fn: Any) -> Any:
        def mapper(graph: Any, node: Any) -> Any:
            try:
                return fn(graph, node)
            except Exception as exc:  # noqa: BLE001 - the op is marked broken, its groups skipped
                state.broken.setdefault(
                    node, f"Torch-Pruning cannot map channels through {_op_name(node)} ({one_line(exc, 80)})"
                )
                return None

        return mapper

    for name in _INDEX_MAPPERS:
        if hasattr(tp_index, name):
            patch(tp_index, name, guard_mapper(getattr(tp_index, name)))

    orig_add = tp_group.Group.add_dep

    def add_dep(self: Any, dep: Any, idxs: Any) -> None:
        # a mapping that never terminates adds the same dependency over and over with new
        # indices; a real group holds each one a few times at most (once per concat branch)
        counts = self.__dict__.setdefault("_edgebench_counts", {})
        counts[id(dep)] = counts.get(id(dep), 0) + 1
        if len(self._group) >= state.cap or counts[id(dep)] > _MAX_REPEATS or len(idxs) > state.idx_cap:
            raise _Runaway(f"group grew past {len(self._group)} dependencies")
        orig_add(self, dep, idxs)

    patch(tp_group.Group, "add_dep", add_dep)

    orig_get_group = tp_graph.DependencyGraph.get_pruning_group

    def get_pruning_group(self: Any, module: Any, pruning_fn: Any, idxs: Any) -> Any:
        state.current = [module]  # blamed if building this group kills the step
        return orig_get_group(self, module, pruning_fn, idxs)

    patch(tp_graph.DependencyGraph, "get_pruning_group", get_pruning_group)

    def get_all_groups(
        self: Any, ignored_layers: Any = (), root_module_types: Any = (nn.Conv2d, nn.Linear)
    ) -> Iterator[Any]:
        # Torch-Pruning 1.6's DependencyGraph.get_all_groups, with each root guarded.
        state.cap = 2 * sum(len(n.dependencies) for n in self.module2node.values()) + 64
        # no real index set outgrows the widest dimension of any tensor (a flatten included)
        state.idx_cap = 4 * max((max(p.shape, default=1) for p in self.model.parameters()), default=1) + 64
        ignored = {id(m) for m in list(ignored_layers) + list(self.IGNORED_LAYERS_IN_TRACING)}
        names = {id(m): n for n, m in self.model.named_modules()}
        visited: set[int] = set()
        for m in list(self.module2node.keys()):
            if id(m) in ignored or id(m) in visited or not isinstance(m, tuple(root_module_types)):
                continue
            pruner = self.get_pruner_of_module(m)
            if pruner is None or pruner.get_out_channels(m) is None:
                continue
            state.current = [m]
            try:
                group = self.get_pruning_group(m, pruner.prune_out_channels, list(range(pruner.get_out_channels(m))))
                group = _without_misfit_parameters(self, group, state)
            except _Runaway:
                visited.add(id(m))
                state.leave(
                    m, "Torch-Pruning's channel mapping does not terminate here (reshapes/permutes it cannot follow)"
                )
                continue
            except Exception as exc:  # noqa: BLE001 - this root is left whole, the rest goes on
                visited.add(id(m))
                state.leave(m, f"Torch-Pruning could not group its channels ({one_line(exc, 80)})")
                continue
            outs = out_modules(self, group)
            visited.update(id(x) for x in outs)
            state.current = outs
            blocked = next((x for x in outs if id(x) in ignored), None)
            if blocked is not None:
                for x in outs:
                    if id(x) not in ignored:
                        state.leave(
                            x, f"coupled to {names.get(id(blocked), type(blocked).__name__)}, which is left whole"
                        )
                continue
            broken = next((state.broken[d.target] for d, _ in group if d.target in state.broken), None)
            if broken is not None:
                for x in outs:
                    state.leave(x, broken)
                continue
            yield group

    patch(tp_graph.DependencyGraph, "get_all_groups", get_all_groups)
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _without_misfit_parameters(dg: Any, group: Any, state: GuardState) -> Any:
    """Torch-Pruning couples every free ``nn.Parameter`` (one outside a layer it knows) on its
    last non-singleton dimension; an attention bias table of shape (positions, heads) then joins
    the channel group of the residual stream, and the group is dropped whole (too few elements)
    or its importance indexes past the table. Such a parameter, whose dimension is shorter than
    the group's indices, is left out (Torch-Pruning's ``ignored_params``) and the group rebuilt."""
    for _ in range(8):
        misfits = []
        for dep, idxs in group:
            node = dep.target
            if isinstance(node.module, nn.Parameter) and len(idxs) > 0:
                dim = node.pruning_dim if node.pruning_dim is not None else -1
                if max(int(i) for i in idxs) >= node.module.shape[dim]:
                    misfits.append(node.module)
        if not misfits:
            return group
        dg.ignored_params.extend(misfits)
        state.misfit_params += len(misfits)
        root = group[0].dep
        group = dg.get_pruning_group(root.target.module, root.handler, list(range(len(group[0].idxs))))
    return group


def _op_name(node: Any) -> str:
    grad_fn = getattr(node, "grad_fn", None)
    name = grad_fn.name() if grad_fn is not None and hasattr(grad_fn, "name") else type(node.module).__name__
    return name.replace("Backward0", "").replace("Backward1", "").lower() or "an op"


class GuardedPruner(tp.pruner.BasePruner):
    """BasePruner whose importance estimate, when it raises, skips that group (noted in
    *guard_state*) instead of ending the step."""

    def __init__(self, *args: Any, guard_state: GuardState, **kwargs: Any) -> None:
        self._guard = guard_state
        super().__init__(*args, **kwargs)

    def estimate_importance(self, group: Any) -> torch.Tensor | None:
        try:
            return super().estimate_importance(group)
        except Exception as exc:  # noqa: BLE001 - the group is skipped, the rest is pruned
            for m in out_modules(self.DG, group):
                self._guard.leave(m, f"importance failed ({one_line(exc, 80)})")
            return None


class TimeBudget:
    """One time limit over several sections (tracing, each pruning step): :meth:`section` arms
    SIGALRM for what is left and raises :class:`TimeLimitExceeded` when it runs out. Only on the
    main thread (signals); elsewhere sections run without a limit."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.used = 0.0
        self.enforced = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        left = self.seconds - self.used
        if left <= 0:
            raise TimeLimitExceeded()
        start = time.perf_counter()
        if not self.enforced:
            try:
                yield
            finally:
                self.used += time.perf_counter() - start
            return

        deadline = start + left
        old_handler = signal.getsignal(signal.SIGALRM)
        old_timer = signal.getitimer(signal.ITIMER_REAL)  # an outer timer (pytest-timeout, a caller's) is kept

        outer_fired = [False]

        def on_alarm(signum: int, frame: Any) -> None:
            now = time.perf_counter()
            if now >= deadline - 1e-3:
                raise TimeLimitExceeded()
            if not outer_fired[0]:  # the outer timer's turn came first: its handler, once
                outer_fired[0] = True
                signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-3), 0.5)
                if callable(old_handler):
                    old_handler(signum, frame)

        signal.signal(signal.SIGALRM, on_alarm)
        first = min(left, old_timer[0]) if old_timer[0] > 0 else left
        # fires again every 0.5 s should a bare `except:` in the traced code swallow one
        signal.setitimer(signal.ITIMER_REAL, first, 0.5)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            if old_timer[0] > 0 and not outer_fired[0]:  # the outer timer runs on, less the time spent here
                spent = time.perf_counter() - start
                signal.setitimer(signal.ITIMER_REAL, max(old_timer[0] - spent, 1e-3), old_timer[1])
            self.used += time.perf_counter() - start


@dataclass
class ForwardFailure:
    """Where a forward pass died: the innermost module whose forward raised (``""`` for the
    root), the exception, the shape of that module's first input, and the module whose output
    that input was (None when it came from functional code)."""

    path: str
    error: BaseException
    input_shape: tuple[int, ...] | None
    producer: str | None


def input_profile(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[tuple[int, ...], str | None]]:
    """Per module, in one forward pass of *model*: the shape of its first tensor input and the
    module whose output that input was (None when functional code made it)."""
    seen: dict[str, tuple[tuple[int, ...], str | None]] = {}
    made_by: dict[int, tuple[str, torch.Tensor]] = {}

    def enter(name: str) -> Any:
        def hook(_m: Any, inputs: Any) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor) and name not in seen:
                producer = made_by.get(id(inputs[0]))
                seen[name] = (tuple(inputs[0].shape), producer[0] if producer else None)

        return hook

    def leave(name: str) -> Any:
        def hook(_m: Any, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                made_by[id(out)] = (name, out)

        return hook

    handles = []
    for n, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(enter(n)))
        handles.append(m.register_forward_hook(leave(n)))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    return seen


def failing_module(model: nn.Module, example_input: torch.Tensor) -> ForwardFailure | None:
    """Run *model* once; None when it works, else where it failed (:class:`ForwardFailure`)."""
    stack: list[tuple[str, tuple[int, ...] | None, str | None]] = []
    made_by: dict[int, tuple[str, torch.Tensor]] = {}  # id(output tensor) -> (module, tensor kept alive)

    def enter(name: str) -> Any:
        def hook(_m: Any, inputs: Any) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            producer = made_by.get(id(first)) if first is not None else None
            stack.append((name, None if first is None else tuple(first.shape), producer[0] if producer else None))

        return hook

    def leave(name: str) -> Any:
        def hook(_m: Any, _i: Any, out: Any) -> None:
            if stack:
                stack.pop()
            if isinstance(out, torch.Tensor):
                made_by[id(out)] = (name, out)

        return hook

    handles = []
    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(enter(name)))
        handles.append(m.register_forward_hook(leave(name)))
    try:
        with torch.no_grad():
            model(example_input)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, who leaves that part whole
        path, shape, producer = stack[-1] if stack else ("", None, None)
        return ForwardFailure(path, exc, shape, producer)
    finally:
        for h in handles:
            h.remove()
    return None


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """``{qkv Linear: num_heads}`` for timm-style attention (a ``qkv`` Linear of 3 x heads x
    head_dim outputs and an int ``num_heads``), so Torch-Pruning cuts head dimensions evenly."""
    heads: dict[nn.Module, int] = {}
    for m in model.modules():
        qkv, n = getattr(m, "qkv", None), getattr(m, "num_heads", None)
        if isinstance(qkv, nn.Linear) and isinstance(n, int) and n > 0 and qkv.out_features % (3 * n) == 0:
            heads[qkv] = n
    return heads


def fix_attention(model: nn.Module) -> None:
    """After a cut, the widths that forward code reads from attributes rather than from its
    layers: timm-style attention's ``head_dim``/``attn_dim``, torchvision ViT's ``hidden_dim``
    (as in Torch-Pruning's own torchvision example)."""
    for m in model.modules():
        proj = getattr(m, "conv_proj", None)
        if isinstance(getattr(m, "hidden_dim", None), int) and isinstance(proj, nn.Conv2d):
            setattr(m, "hidden_dim", proj.out_channels)  # noqa: B010 - torchvision VisionTransformer
        qkv, n = getattr(m, "qkv", None), getattr(m, "num_heads", None)
        if not (isinstance(qkv, nn.Linear) and isinstance(n, int) and n > 0 and qkv.out_features % (3 * n) == 0):
            continue
        if isinstance(getattr(m, "head_dim", None), int):
            head_dim = qkv.out_features // (3 * n)
            setattr(m, "head_dim", head_dim)  # noqa: B010 - a plain int attribute of the module
            if isinstance(getattr(m, "attn_dim", None), int):
                setattr(m, "attn_dim", n * head_dim)  # noqa: B010
