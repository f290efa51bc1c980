"""PyTorch -> ONNX, then two checks users rely on before they trust an artifact:
``onnx.checker`` on the file, and ONNX Runtime against PyTorch on real inputs (fp32: max
absolute difference of the outputs; int8: top-1 agreement)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import EdgebenchError, first_line
from edgebench.util import onnx_file

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
_NAMES: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}  # both exporters


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Export *model* (eval mode, CPU) with one input ``input`` and one output ``logits``.

    Uses the TorchScript exporter (``dynamo=False``): it handles most models (pruned ones
    included) and gives plain opset-17 graphs ORT quantizes well; a module it refuses is exported
    by torch's default (dynamo) exporter at opset 18+ instead.
    """
    import torch

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.rand(*input_shape, generator=torch.Generator().manual_seed(0))
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        # a folder of its own: past 2 GB torch writes the weights as files beside the graph
        tmp = Path(staging) / out.name
        with warnings.catch_warnings(), _onnx2torch_opset_shim(opset):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model, (example,), str(tmp), **_NAMES, dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False
                )
            except Exception as exc:  # noqa: BLE001 - the legacy exporter refusing the module: try torch's default one
                tmp.unlink(missing_ok=True)
                legacy = f"{type(exc).__name__}: {first_line(exc, 160)}"
                _export_dynamo(model, example, tmp, dynamic_batch, legacy)
        _place(tmp, out)
    log.info("exported %s (%d bytes)", out, onnx_file.size_bytes(out))
    return out


def _place(tmp: Path, out: Path) -> None:
    """The exported model at *out*: moved as it is when it is one file within
    :data:`~edgebench.util.onnx_file.SINGLE_FILE_LIMIT`; otherwise written by
    :func:`~edgebench.util.onnx_file.save`, its weights in one ``NAME.onnx.data`` (torch writes a
    model past 2 GB as one file per weight, its dynamo exporter always as external data)."""
    if onnx_file.data_files(tmp) or tmp.stat().st_size > onnx_file.SINGLE_FILE_LIMIT:
        import onnx

        onnx_file.save(onnx.load(str(tmp)), out)
    else:
        tmp.replace(out)
        onnx_file.remove_stale_data(out)


def _export_dynamo(model: torch.nn.Module, example: torch.Tensor, tmp: Path, dynamic_batch: bool, legacy: str) -> None:
    """torch's default (dynamo) exporter, opset 18+, for a module the TorchScript exporter refuses
    (e.g. adaptive pooling to a size that does not divide the input); one line naming both
    exporters' reasons when it refuses too."""
    import io

    import torch

    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines are not ours to print
            torch.onnx.export(model, (example,), str(tmp), **_NAMES, dynamic_shapes=shapes, dynamo=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 - both exporters refuse: one line, the candidate degrades
        tmp.unlink(missing_ok=True)
        raise EdgebenchError(
            f"torch.onnx.export could not export {type(model).__name__}: the TorchScript exporter: {legacy}; "
            f"the dynamo exporter: {type(exc).__name__}: {first_line(exc, 160)}"
        ) from None
    log.info("exported %s with the dynamo exporter (the TorchScript exporter refused it: %s)", tmp.name, legacy)


@contextlib.contextmanager
def _onnx2torch_opset_shim(opset: int) -> Iterator[None]:
    """onnx2torch's modules (a converted user graph, pruned or not) ask
    ``torch.onnx.symbolic_helper._export_onnx_opset_version`` for the opset while they are exported;
    torch no longer has that attribute. Provide it, set to the opset being exported, for the export."""
    from torch.onnx import symbolic_helper

    missing = not hasattr(symbolic_helper, "_export_onnx_opset_version")
    if missing:
        symbolic_helper._export_onnx_opset_version = opset  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if missing:
            del symbolic_helper._export_onnx_opset_version  # type: ignore[attr-defined]


def check_onnx(path: str | Path) -> None:
    """Run ``onnx.checker`` on *path*; a corrupt or invalid file becomes a user error."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise EdgebenchError(f"ONNX model not found: expected a file at {p}")
    try:
        onnx.checker.check_model(str(p), full_check=True)
    except Exception as exc:  # onnx raises ValidationError, DecodeError, ...
        first = first_line(exc)
        raise EdgebenchError(f"{p} is not a valid ONNX model: {first}") from None


def ort_logits(
    path: str | Path, x: np.ndarray, batch: int = 256, threads: int | None = None, reference: bool = False
) -> np.ndarray:
    """Logits of the ONNX model at *path* on *x*, through an ONNX Runtime CPU session.

    ``reference=True`` runs every node as written (no graph optimization): for a QDQ model the
    exact quantize/dequantize arithmetic, free of this host's int8 kernels (see
    :func:`verify_against_torch`).
    """
    from edgebench.backends.onnxruntime import OnnxRuntimeBackend
    from edgebench.backends.options import BackendOptions

    options = BackendOptions(threads=threads, graph_optimization="none" if reference else "all")
    with OnnxRuntimeBackend(str(path), options) as be:
        name = be.input_specs()[0].name
        return np.concatenate(
            [be.infer({name: np.ascontiguousarray(x[i : i + batch])})[0] for i in range(0, len(x), batch)]
        )


def torch_logits(model: torch.nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    model = model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))).float().numpy())
    return np.concatenate(outs)


def verify_against_torch(path: str | Path, model: torch.nn.Module, x: np.ndarray, quantized: bool) -> dict:
    """Check the artifact, then compare ONNX Runtime with the PyTorch *model* on real inputs *x*
    (see :func:`verify_against_reference`)."""
    return verify_against_reference(path, lambda xs: torch_logits(model, xs), x, quantized)


def verify_against_reference(
    path: str | Path, reference: Callable[[np.ndarray], np.ndarray], x: np.ndarray, quantized: bool, strict: bool = True
) -> dict:
    """Check the artifact, then compare ORT with *reference* (PyTorch, or ONNX Runtime on the
    user's own graph) on real inputs *x*. With ``strict=False`` (the user's graph deployed as
    it is) a graph ``onnx.checker`` refuses is recorded, not refused: ONNX Runtime runs it.

    fp32: the max absolute logit difference (and top-1 agreement); int8: the top-1 agreement
    (the int8 graph is expected to differ numerically, not in its decisions), twice:

    * ``top1_agreement``: this host's ONNX Runtime with its fused int8 kernels, what the
      ``ort-cpu`` artifact runs as. On x86 CPUs without VNNI these kernels multiply u8 x s8
      pairs into saturating int16 sums (ONNX Runtime's quantization docs), so they can disagree
      with the QDQ arithmetic itself;
    * ``qdq_reference_top1_agreement``: the QDQ graph run node by node, the exact arithmetic that
      an engine with int32 accumulation (TensorRT, VNNI CPUs, ARM) computes. A gap between the
      two is the host's kernels, not the quantization.
    """
    checker = "passed"
    try:
        check_onnx(path)
    except EdgebenchError as exc:
        if strict:
            raise
        checker = f"failed (ONNX Runtime runs it): {first_line(exc, 160)}"
    ref = reference(x)
    got = ort_logits(path, x)
    agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
    out: dict = {
        "onnx_checker": checker,
        "max_abs_diff": None if quantized else float(np.max(np.abs(ref - got))),
        "top1_agreement": agree,
        "count": int(len(x)),
    }
    if quantized:
        exact = ort_logits(path, x, reference=True)
        out["qdq_reference_top1_agreement"] = float(np.mean(ref.argmax(1) == exact.argmax(1)))
    return out
