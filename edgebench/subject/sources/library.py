"""``model.torchvision`` and ``model.timm``: a classifier from a model library by name (never downloaded)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgebench.errors import EdgebenchError, first_line
from edgebench.subject.sources.base import LoadContext, ModelConfig, Source, UserModel, apply_checkpoint, register

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@register
class TorchvisionSource(Source):
    key = "torchvision"

    def check(self, cfg: ModelConfig) -> None:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if cfg.spec not in names:
            import difflib

            close = difflib.get_close_matches(cfg.spec, names, n=5, cutoff=0.4) or names[:5]
            raise EdgebenchError(
                f"model.torchvision: unknown classifier '{cfg.spec}': expected a torchvision.models name like {close}"
            )

    def load(self, ctx: LoadContext) -> UserModel:
        import torchvision

        return _library_model(
            ctx,
            f"torchvision {torchvision.__version__}",
            lambda name, kw: torchvision.models.get_model(name, weights=None, **kw),  # never downloads
            "no pretrained weights",
        )


@register
class TimmSource(Source):
    key = "timm"

    def check(self, cfg: ModelConfig) -> None:
        try:
            import timm
        except ImportError:
            raise EdgebenchError(
                "model.timm: needs the timm package; expected it installed (pip install 'edgebench[timm]'), found none"
            ) from None
        if not timm.is_model(cfg.spec):
            import difflib

            close = difflib.get_close_matches(cfg.spec, timm.list_models(), n=5, cutoff=0.5)
            raise EdgebenchError(f"model.timm: unknown model '{cfg.spec}': expected a timm model name like {close}")

    def load(self, ctx: LoadContext) -> UserModel:
        import timm

        return _library_model(
            ctx,
            f"timm {timm.__version__}",
            lambda name, kw: timm.create_model(name, pretrained=False, **kw),  # never downloads
            "pretrained=False",
        )


def _library_model(ctx: LoadContext, library: str, build: Any, no_weights: str) -> UserModel:
    """A classifier from a model library by name (torchvision, timm): built with the study's
    ``kwargs`` and ``num_classes``, seeded, the user's checkpoint applied when given."""
    import torch

    cfg = ctx.model
    kwargs = dict(cfg.kwargs or {})
    if cfg.num_classes is not None:
        kwargs["num_classes"] = cfg.num_classes
    torch.manual_seed(ctx.seed)
    key = library.split()[0]
    try:
        module = build(cfg.spec, kwargs)
    except Exception as exc:  # noqa: BLE001
        raise EdgebenchError(f"model.{key}: {cfg.spec}(**kwargs) failed: {first_line(exc, 160)}") from None
    source: dict = {"files": [], "library": library}
    apply_checkpoint(module, cfg, source)
    if source["random_weights"]:
        source["weights"] = f"random ({key} {cfg.spec}, {no_weights}, seed {ctx.seed})"
    return UserModel(module.eval(), source)
