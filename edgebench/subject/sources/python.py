"""``model.python``: ``file.py:Name`` or ``package.module:Name``, a class or function returning a module."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.subject.sources.base import LoadContext, ModelConfig, Source, UserModel, apply_checkpoint, register
from edgebench.subject.weights import file_record

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def _import_target(spec: str) -> Any:
    """``file.py:Name`` or ``package.module:Name`` -> the object named."""
    target, _, name = spec.rpartition(":")
    expect(
        bool(target) and bool(name) and name.isidentifier(),
        f"model.python: expected 'path/to/file.py:Name' or 'package.module:Name', found {spec!r}",
    )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        expect(path.is_file(), f"model.python: file not found: expected a .py file at {path}")
        from edgebench.util.io import sha256_file

        mod_name = f"edgebench_user_{path.stem}_{sha256_file(path)[:12]}"
        if mod_name in sys.modules:
            module = sys.modules[mod_name]
        else:
            spec_obj = importlib.util.spec_from_file_location(mod_name, path)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[mod_name] = module
            sys.path.insert(0, str(path.parent))  # the file may import its neighbours
            try:
                spec_obj.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - the user's code: any error is theirs
                sys.modules.pop(mod_name, None)
                raise EdgebenchError(
                    f"model.python: could not import {path}: {type(exc).__name__}: {first_line(exc, 160)}"
                ) from None
            finally:
                sys.path.remove(str(path.parent))
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise EdgebenchError(
                f"model.python: could not import module {target}: {type(exc).__name__}: {first_line(exc, 160)}"
            ) from None
    if not hasattr(module, name):
        import inspect

        found = sorted(
            n for n, v in vars(module).items() if not n.startswith("_") and callable(v) and not inspect.ismodule(v)
        )
        raise EdgebenchError(
            f"model.python: {target} has no '{name}'; expected a class or function, found {found[:12]}"
        )
    return getattr(module, name)


@register
class PythonSource(Source):
    key = "python"

    def check(self, cfg: ModelConfig) -> None:
        target, _, name = cfg.spec.rpartition(":")
        expect(
            bool(target) and name.isidentifier(),
            f"model.python: expected 'path/to/file.py:Name' or 'package.module:Name', found {cfg.spec!r}",
        )
        if target.endswith(".py"):
            path = Path(target).expanduser()
            expect(path.is_file(), f"model.python: file not found: expected a .py file at {path}")

    def load(self, ctx: LoadContext) -> UserModel:
        import torch

        cfg = ctx.model
        obj = _import_target(cfg.spec)
        source: dict = {"files": []}
        target = cfg.spec.rpartition(":")[0]
        if target.endswith(".py"):
            source["files"].append(file_record(Path(target).expanduser(), "python"))
        torch.manual_seed(ctx.seed)
        if isinstance(obj, torch.nn.Module):
            module = obj
        else:
            expect(callable(obj), f"model.python: {cfg.spec} is a {type(obj).__name__}; expected a class or function")
            try:
                module = obj(**(cfg.kwargs or {}))
            except Exception as exc:  # noqa: BLE001 - the user's code
                raise EdgebenchError(
                    f"model.python: {cfg.spec}(**kwargs) failed: {type(exc).__name__}: {first_line(exc, 160)}"
                ) from None
        if not isinstance(module, torch.nn.Module):
            raise EdgebenchError(
                f"model.python: {cfg.spec} returned {type(module).__name__}; expected a torch.nn.Module"
            )
        apply_checkpoint(module, cfg, source)
        return UserModel(module.eval(), source)
