"""``model.onnx``: an ONNX file as the user has it (torch's legacy or dynamo exporter, tf2onnx,
Paddle, a vendor).

The graph itself is the deployed ``base`` artifact (:func:`edgebench.export.graph.deployable`:
normalization and an NHWC transpose prepended as nodes when the study asks for them, otherwise
untouched), run by ONNX Runtime for the reference outputs. For what needs PyTorch (pruning,
fine-tuning, transfer and white-box crafting) the graph is converted with onnx2torch after
:func:`edgebench.export.graph.for_conversion` and held to ONNX Runtime at every batch size the
study uses. When that fails, the model still loads: ``module`` is None and ``torch_reason`` says
why, and the pipeline runs everything ONNX-native (base, int8 of base, profiles, clean
accuracy, black-box attacks) and marks the rest UNMEASURED with that reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, expect, first_line
from edgebench.subject.sources.base import (
    CHECK_IMAGES,
    LoadContext,
    Source,
    UserModel,
    check_labels,
    normalization,
    register,
)
from edgebench.subject.weights import file_record

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)


def _read(path: Path) -> onnx.ModelProto:
    from edgebench.util import onnx_file

    try:
        return onnx_file.load(path)
    except EdgebenchError as exc:
        raise EdgebenchError(f"model.onnx: {exc}") from None


def _save_cached(model: onnx.ModelProto) -> Path:
    """The deployed graph as a file ONNX Runtime can open, cached by content: ``HASH.onnx``, or
    ``HASH/model.onnx`` with its external data beside it for a model past protobuf's 2 GB."""
    import hashlib
    import shutil
    import tempfile

    from edgebench.settings import cache_dir
    from edgebench.util import onnx_file
    from edgebench.util.io import atomic_write_bytes

    folder = cache_dir() / "onnx-sources"
    if onnx_file.fits_one_file(model):
        blob = model.SerializeToString()
        path = folder / f"{hashlib.sha256(blob).hexdigest()[:24]}.onnx"
        if not path.is_file():
            atomic_write_bytes(path, blob)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    onnx_file.save(model, staging / "model.onnx")
    final = folder / onnx_file.sha256(staging / "model.onnx")[:24]
    if (final / "model.onnx").is_file():  # the same model cached before
        shutil.rmtree(staging)
    else:
        shutil.rmtree(final, ignore_errors=True)  # a partial folder left by a crash
        staging.replace(final)
    return final / "model.onnx"


def _ort(path: Path, x: np.ndarray, batch: int) -> np.ndarray:
    from edgebench.export.onnx import ort_logits

    try:
        return ort_logits(path, x, batch=batch)
    except EdgebenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime rejecting the graph or the data
        raise EdgebenchError(
            f"model.onnx: ONNX Runtime cannot run the graph on the data's images: {first_line(exc, 160)}"
        ) from None


def _check_declared(declared: list[int | str], data: tuple[int, ...], layout: str, name: str) -> None:
    """The graph's fixed dimensions must match the data's images (in the graph's layout)."""
    if len(declared) != 4:
        raise EdgebenchError(f"model.onnx: {name} expects a {len(declared)}-D input {declared}; expected 4-D images")
    c, h, w = data
    want = (c, h, w) if layout == "nchw" else (h, w, c)
    if any(isinstance(d, int) and d != v for d, v in zip(declared[1:], want)):
        raise EdgebenchError(
            f"model.onnx: {name} expects input {'x'.join(str(d) for d in declared[1:])} ({layout}); "
            f"found data images {'x'.join(map(str, want))} (check data.image_size, the data's channels and model.layout)"
        )


@register
class OnnxSource(Source):
    key = "onnx"
    is_file = True

    def load(self, ctx: LoadContext) -> UserModel:
        from edgebench.export import graph as g
        from edgebench.export.to_torch import check_conversion, is_probabilities, log_probabilities, onnx_to_torch
        from edgebench.util import onnx_file

        cfg = ctx.model
        path = Path(cfg.spec).expanduser()
        proto = _read(path)
        inputs = g.real_inputs(proto)
        expect(len(inputs) == 1, f"model.onnx: expected a model with one input, found {[i.name for i in inputs]}")
        layout = g.detect_layout(proto) if cfg.layout == "auto" else cfg.layout
        declared = g.dims(inputs[0])
        _check_declared(declared, tuple(int(d) for d in ctx.split.x_eval.shape[1:]), layout, path.name)
        norm = normalization(cfg.normalize) if cfg.normalize is not None else None
        if norm is not None:
            channels = int(ctx.split.x_eval.shape[1])
            expect(
                len(norm[0]) == channels,
                f"model.normalize: expected one mean/std per image channel ({channels}), found {len(norm[0])}",
            )
        deployed, edits = g.deployable(
            proto,
            mean=norm[0] if norm else None,
            std=norm[1] if norm else None,
            layout=layout,
            output=None if cfg.output is None else str(cfg.output),
        )
        opset, producer = g.opset_of(proto), f"{proto.producer_name} {proto.producer_version}".strip() or None
        del proto  # the deployed graph is what is kept (a model past 2 GB is not held twice)
        x = ctx.split.x_eval[:CHECK_IMAGES]
        batch_fixed = declared[0] if isinstance(declared[0], int) else None
        deployed_path = _save_cached(deployed)
        if batch_fixed is not None:
            deployed, deployed_path, batch_fixed = _free_batch(deployed, deployed_path, x, batch_fixed, edits)
        ref_batch = batch_fixed or 256

        def reference(xs: np.ndarray) -> np.ndarray:
            return _ort(deployed_path, xs, ref_batch)

        ref = reference(x)
        what = f"model.onnx {path.name}"
        expect(
            ref.ndim == 2 and ref.shape[0] == len(x),
            f"{what}: expected output (batch, classes) = ({len(x)}, K), found {ref.shape}"
            + ("; name the logits output with model.output" if ref.ndim != 2 else ""),
        )
        k = check_labels(ref, ctx.split, what)
        softmax = g.final_softmax(deployed) is not None
        probabilities = softmax or is_probabilities(ref)
        external = onnx_file.data_files(path)
        source: dict[str, Any] = {
            "files": [file_record(path, "onnx")] + [file_record(f, "onnx external data") for f in external],
            "weights": f"in {', '.join(f.name for f in external)} (external data)" if external else "inside the file",
            "graph": {
                "opset": opset,
                "producer": producer,
                "layout": layout,
                "layout_detected": cfg.layout == "auto",
                "batch": batch_fixed or "dynamic",
                "edits": edits or ["none: the user's graph is deployed as it is"],
            },
        }
        if probabilities:
            source["output"] = {
                "kind": "probabilities",
                "detected_by": "final Softmax node" if softmax else "rows non-negative and summing to 1 on real images",
                "attacked": "log-probabilities",
            }
        if norm is not None:
            source["normalize"] = {"mean": list(norm[0]), "std": list(norm[1])}
        module: Any = None
        torch_reason = None
        try:
            conv = onnx_to_torch(deployed, what)
            module = conv.module
            if probabilities and not conv.log_softmax:
                module = log_probabilities(module)
            batches = (1,) if batch_fixed == 1 else ctx.batches
            check = check_conversion(module, reference, x, batches, what, log_softmax=probabilities)
            check["graph_edits"] = conv.edits
            source["conversion_check"] = check
        except EdgebenchError as exc:
            module, torch_reason = None, str(exc)
            source["conversion_check"] = {"converter": "onnx2torch", "failed": torch_reason}
            log.warning("%s; the stages that need PyTorch are skipped", torch_reason)
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
        return UserModel(
            module,
            source,
            reference=reference,
            num_classes=k,
            graph=deployed,
            torch_reason=torch_reason,
            output_kind="probabilities" if probabilities else "logits",
        )


def _free_batch(
    deployed: onnx.ModelProto, path: Path, x: np.ndarray, fixed: int, edits: list[str]
) -> tuple[onnx.ModelProto, Path, int | None]:
    """A graph declared with a fixed batch made dynamic when it computes the same at batch 1 and
    batch 4 (nothing inside bakes the batch in); else kept as it is (its batch stays *fixed*)."""
    from edgebench.export import graph as g

    freed = g.free_batch(deployed)
    freed_path = _save_cached(freed)
    try:
        one = _ort(path, x[: min(4, len(x))], fixed) if fixed == 1 else None
        many = _ort(freed_path, x[: min(4, len(x))], min(4, len(x)))
        if one is not None and np.allclose(one, many, rtol=1e-3, atol=1e-4):
            edits.append(f"batch {fixed} declared; made dynamic (same outputs at batch 1 and {min(4, len(x))})")
            return freed, freed_path, None
    except EdgebenchError as exc:
        log.info("the graph's batch %d stays fixed: %s", fixed, exc)
    return deployed, path, fixed


__all__ = ["OnnxSource"]
