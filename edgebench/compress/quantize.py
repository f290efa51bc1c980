"""Static INT8 quantization with ONNX Runtime: QDQ format, per-channel weights, calibrated
activations, from a preset that matches the runtime that will execute the model.

Presets:

- ``ort-cpu``: U8 activations (asymmetric) + S8 weights (symmetric, per-channel): the
  combination ONNX Runtime's x86 CPU kernels are fastest at.
- ``tensorrt``: S8 activations and S8 weights, both symmetric (zero point 0): what TensorRT's
  explicit-quantization path accepts.

Calibration images are exactly the ones the caller passes (hold them out from evaluation);
the first ``calib_samples`` are used. Every result is checked: it loads in ONNX Runtime, runs on
a calibration image, and contains QuantizeLinear/DequantizeLinear nodes.

A recipe with ``max_accuracy_drop`` asks for INT8 with accuracy control: nodes whose
quantization hurts most go back to float until the clean accuracy drop fits
(:mod:`edgebench.compress.accuracy_control`); :func:`quantize_static` itself is the one-shot
quantizer it calls, with ``nodes_to_exclude``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.errors import EdgebenchError, check_keys, expect, first_line
from edgebench.util import onnx_file
from edgebench.util.checks import is_int, is_number

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    "ort-cpu": {"activation_type": "u8", "weight_type": "s8", "symmetric_activations": False},
    "tensorrt": {"activation_type": "s8", "weight_type": "s8", "symmetric_activations": True},
}
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_TYPES = ("u8", "s8")

DEFAULT_MAX_FLOAT_GROUPS = 8

__all__ = [
    "ArrayCalibrationReader",
    "QuantSpec",
    "parse_quant_spec",
    "preprocess",
    "quantize_static",
    "count_qdq_nodes",
]


@dataclass(frozen=True)
class QuantSpec:
    """A static INT8 recipe. Invalid combinations raise :class:`EdgebenchError` at construction.

    activation_type / weight_type / symmetric_activations: ``None`` takes the preset's value (the
    spec stores it resolved); an explicit value is checked against the preset (TensorRT needs symmetric S8 throughout).
    reduce_range: 7-bit weights for x86 CPUs without VNNI (ort-cpu only).
    percentile: the percentile calibration keeps this share of the activation histogram.
    calib_batch_size: images per calibration forward pass (memory vs speed; same ranges).
    max_accuracy_drop: INT8 with accuracy control when set: the largest clean top-1 accuracy
    drop (fp32 minus INT8, a fraction in (0, 1): 0.01 = one percentage point) on the evaluation
    images; the nodes whose quantization hurts most go back to float one group per step until
    the drop fits (:func:`edgebench.compress.accuracy_control.quantize_with_accuracy_control`).
    ``None`` (the default): plain INT8, and :meth:`to_dict` has neither key.
    max_float_groups: with max_accuracy_drop, at most this many groups (steps) go back to float
    (a group: a node and the nodes that quantize its inputs); the budget not met by then is
    reported, not raised.
    """

    preset: str = "ort-cpu"
    calibration: str = "minmax"
    calib_samples: int = 128
    per_channel: bool = True
    activation_type: str | None = None
    weight_type: str | None = None
    symmetric_activations: bool | None = None
    reduce_range: bool = False
    percentile: float = 99.999
    calib_batch_size: int = 16
    max_accuracy_drop: float | None = None
    max_float_groups: int = DEFAULT_MAX_FLOAT_GROUPS

    def __post_init__(self) -> None:
        expect(self.preset in PRESETS, f"quantize.preset: expected one of {', '.join(PRESETS)}, found {self.preset!r}")
        expect(
            self.calibration in CALIBRATION_METHODS,
            f"quantize.calibration: expected one of {', '.join(CALIBRATION_METHODS)}, found {self.calibration!r}",
        )
        expect(
            is_int(self.calib_samples) and self.calib_samples >= 1,
            f"quantize.calib_samples: expected an integer >= 1, found {self.calib_samples!r}",
        )
        expect(
            isinstance(self.per_channel, bool),
            f"quantize.per_channel: expected true or false, found {self.per_channel!r}",
        )
        expect(
            isinstance(self.reduce_range, bool),
            f"quantize.reduce_range: expected true or false, found {self.reduce_range!r}",
        )
        for name in ("activation_type", "weight_type"):
            v = getattr(self, name)
            expect(
                v is None or v in INT8_TYPES,
                f"quantize.{name}: expected one of {', '.join(INT8_TYPES)} (or null for the preset's), found {v!r}",
            )
        expect(
            self.symmetric_activations is None or isinstance(self.symmetric_activations, bool),
            f"quantize.symmetric_activations: expected true, false or null, found {self.symmetric_activations!r}",
        )
        expect(
            is_number(self.percentile) and 90 <= self.percentile <= 100,
            f"quantize.percentile: expected a number in [90, 100], found {self.percentile!r}",
        )
        expect(
            self.percentile == 99.999 or self.calibration == "percentile",
            f"quantize.percentile applies to calibration=percentile only; found percentile={self.percentile} with calibration={self.calibration}",
        )
        expect(
            is_int(self.calib_batch_size) and self.calib_batch_size >= 1,
            f"quantize.calib_batch_size: expected an integer >= 1, found {self.calib_batch_size!r}",
        )
        expect(
            self.max_accuracy_drop is None or (is_number(self.max_accuracy_drop) and 0 < self.max_accuracy_drop < 1),
            "quantize.max_accuracy_drop: expected a number in (0, 1) (a fraction of top-1 accuracy: 0.01 is one "
            f"percentage point) or null, found {self.max_accuracy_drop!r}",
        )
        expect(
            is_int(self.max_float_groups) and self.max_float_groups >= 1,
            f"quantize.max_float_groups: expected an integer >= 1, found {self.max_float_groups!r}",
        )
        expect(
            self.max_float_groups == DEFAULT_MAX_FLOAT_GROUPS or self.max_accuracy_drop is not None,
            f"quantize.max_float_groups applies with max_accuracy_drop only; found max_float_groups={self.max_float_groups} without it",
        )
        # stored resolved: a preset's value written out or left to it is one recipe, and
        # to_dict() reads back to an equal spec
        object.__setattr__(self, "percentile", float(self.percentile))
        if self.max_accuracy_drop is not None:
            object.__setattr__(self, "max_accuracy_drop", float(self.max_accuracy_drop))
        object.__setattr__(self, "activation_type", self.act_type)
        object.__setattr__(self, "weight_type", self.w_type)
        object.__setattr__(self, "symmetric_activations", self.act_symmetric)
        if self.preset == "tensorrt":
            expect(
                self.act_type == "s8",
                f"quantize: preset tensorrt needs S8 activations (TensorRT takes symmetric INT8 with zero point 0), found activation_type={self.act_type}",
            )
            expect(
                self.act_symmetric,
                "quantize: preset tensorrt needs symmetric activations (zero point 0), found symmetric_activations=false",
            )
            expect(self.w_type == "s8", f"quantize: preset tensorrt needs S8 weights, found weight_type={self.w_type}")
            expect(
                not self.reduce_range,
                "quantize: reduce_range (7-bit weights for x86 CPUs without VNNI) applies to preset ort-cpu only, found it with preset tensorrt",
            )

    @property
    def act_type(self) -> str:
        """Resolved activation type (``u8`` or ``s8``)."""
        return self.activation_type or PRESETS[self.preset]["activation_type"]

    @property
    def w_type(self) -> str:
        """Resolved weight type (``u8`` or ``s8``)."""
        return self.weight_type or PRESETS[self.preset]["weight_type"]

    @property
    def act_symmetric(self) -> bool:
        """Resolved activation symmetry."""
        if self.symmetric_activations is None:
            return bool(PRESETS[self.preset]["symmetric_activations"])
        return self.symmetric_activations

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the resolved types (for recipes in results.json); :func:`parse_quant_spec`
        reads it back. Without accuracy control the accuracy-control keys are left out, so a
        plain INT8 recipe (and a run folder built from it) reads as it always has."""
        out = dataclasses.asdict(self)
        if self.max_accuracy_drop is None:
            del out["max_accuracy_drop"], out["max_float_groups"]
        return out


def parse_quant_spec(d: dict) -> QuantSpec:
    """Build a :class:`QuantSpec` from a study-config mapping (or :meth:`QuantSpec.to_dict`
    output); unknown keys are refused by name. The one parser of quantization recipes."""
    expect(isinstance(d, dict), f"quantize: expected a mapping, found {d!r}")
    check_keys(d, QuantSpec, "quantize")
    return QuantSpec(**d)


def _model_input(path: Path) -> tuple[str, list[Any]]:
    """(name, shape with None for symbolic dims) of the model's one graph input."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    expect(len(inputs) == 1, f"quantize: expected an ONNX model with one input, found {len(inputs)} in {path}")
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [d.dim_value if d.HasField("dim_value") else None for d in dims]


class ArrayCalibrationReader:
    """Calibration batches from a numpy array, fed under the model's own input name.

    Implements ONNX Runtime's ``CalibrationDataReader`` protocol (``get_next``; ORT's
    ``__subclasshook__`` makes ``isinstance(reader, CalibrationDataReader)`` true) without
    importing onnxruntime at module import. ``rewind()`` starts over (entropy and percentile
    calibration read the data once per pass).
    """

    def __init__(self, model_path: str | Path, data: np.ndarray, batch_size: int = 16) -> None:
        expect(
            isinstance(data, np.ndarray) and data.ndim >= 2 and len(data) > 0,
            f"calibration data: expected a non-empty numpy array (N, ...), found {getattr(data, 'shape', type(data).__name__)}",
        )
        expect(
            is_int(batch_size) and batch_size >= 1,
            f"calibration batch_size: expected an integer >= 1, found {batch_size!r}",
        )
        self.input_name, shape = _model_input(Path(model_path))
        fixed_batch = shape[0] if shape and shape[0] else None
        self.batch_size = int(fixed_batch or batch_size)
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self._pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._pos >= len(self.data):
            return None
        batch = self.data[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._pos = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self.rewind()
        while (item := self.get_next()) is not None:
            yield item

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)


def _node_names(path: Path) -> set[str]:
    import onnx

    return {n.name for n in onnx.load(str(path), load_external_data=False).graph.node}


def count_qdq_nodes(path: str | Path) -> dict[str, int]:
    """How many QuantizeLinear and DequantizeLinear nodes the ONNX model at *path* has."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}


def preprocess(src: Path, dst: Path, external_data: bool = False) -> Path:
    """ONNX Runtime's ``quant_pre_process`` (shape inference + graph optimization) of *src* into
    *dst*; returns *dst*, or *src*, logging why, where that fails (it is an optimization:
    quantization works without it). Node names in :func:`quantize_static`'s
    ``nodes_to_exclude`` are this model's. ``external_data``: *dst* keeps its weights in
    ``NAME.onnx.data`` (a model past protobuf's 2 GB)."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        kwargs: dict[str, Any] = {}
        if external_data:
            kwargs = {
                "save_as_external_data": True,
                "all_tensors_to_one_file": True,
                "external_data_location": dst.name + ".data",
            }
        quant_pre_process(str(src), str(dst), **kwargs)
        return dst
    except Exception as exc:
        log.warning(
            "quant_pre_process failed on %s (%s: %s); quantizing the model as exported",
            src,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        return src


def quantize_static(
    fp32_onnx: Path,
    out_path: Path,
    calibration_data: np.ndarray,
    spec: QuantSpec,
    nodes_to_exclude: Sequence[str] = (),
) -> Path:
    """Quantize *fp32_onnx* to a QDQ INT8 model at *out_path* (written atomically); return it.

    Runs :func:`preprocess` first. Uses the first ``spec.calib_samples`` images of
    *calibration_data* (float32, the model's input shape, values in [0, 1]). Nodes named in
    *nodes_to_exclude* (names in the preprocessed model, as ONNX Runtime's ``nodes_to_exclude``)
    stay in float; a tensor is still quantized where another node quantizes it. One shot:
    ``spec.max_accuracy_drop`` is read by :mod:`edgebench.compress.accuracy_control`, not here.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    expect(isinstance(spec, QuantSpec), f"quantize: expected a QuantSpec, found {type(spec).__name__}")
    expect(
        not isinstance(nodes_to_exclude, str) and all(isinstance(n, str) for n in nodes_to_exclude),
        f"quantize: expected nodes_to_exclude as a list of node names, found {nodes_to_exclude!r}",
    )
    src = Path(fp32_onnx)
    out = Path(out_path)
    expect(src.is_file(), f"quantize: expected an fp32 ONNX model at {src}, found no file")
    expect(
        isinstance(calibration_data, np.ndarray),
        f"quantize: expected calibration data as a numpy array, found {type(calibration_data).__name__}",
    )
    expect(
        calibration_data.dtype == np.float32,
        f"quantize: expected float32 calibration images, found {calibration_data.dtype}",
    )
    expect(
        len(calibration_data) >= spec.calib_samples,
        f"quantize: calib_samples={spec.calib_samples} but only {len(calibration_data)} calibration images were passed",
    )
    _, shape = _model_input(src)
    expect(
        calibration_data.ndim == len(shape)
        and all(s is None or s == c for s, c in zip(shape[1:], calibration_data.shape[1:])),
        f"quantize: expected calibration images of shape {tuple('N' if s is None else s for s in shape)}, found {calibration_data.shape}",
    )
    calib = calibration_data[: spec.calib_samples]
    lo, hi = float(calib.min()), float(calib.max())
    expect(
        lo >= -1e-6 and hi <= 1 + 1e-6,
        f"quantize: expected calibration pixel values in [0, 1] (normalization lives inside the model), found [{lo:.3g}, {hi:.3g}]",
    )
    expect(np.isfinite(calib).all(), "quantize: expected finite calibration images, found NaN or inf")

    qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[spec.calibration]
    extra: dict[str, Any] = {"ActivationSymmetric": spec.act_symmetric, "WeightSymmetric": True}
    if spec.calibration == "percentile":
        extra["CalibPercentile"] = float(spec.percentile)

    out.parent.mkdir(parents=True, exist_ok=True)
    external = bool(onnx_file.data_files(src))  # past 2 GB: every model on the way keeps external data
    with tempfile.TemporaryDirectory(prefix="edgebench-quant-") as tmp:
        model_in = preprocess(src, Path(tmp) / "preprocessed.onnx", external)
        if nodes_to_exclude:  # ONNX Runtime ignores a name it does not know: the node would be quantized
            unknown = sorted(set(nodes_to_exclude) - _node_names(model_in))
            expect(not unknown, f"quantize: nodes_to_exclude names nodes the model lacks: {', '.join(unknown)}")
        tmp_out = Path(tmp) / "quantized.onnx"
        reader = ArrayCalibrationReader(model_in, calib, spec.calib_batch_size)
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):  # ORT prints calibration progress
                ort_quantize_static(
                    str(model_in),
                    str(tmp_out),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=spec.per_channel,
                    reduce_range=spec.reduce_range,
                    activation_type=qtype[spec.act_type],
                    weight_type=qtype[spec.w_type],
                    calibrate_method=method,
                    nodes_to_exclude=list(nodes_to_exclude),
                    extra_options=extra,
                    use_external_data_format=external,
                )
        except EdgebenchError:
            raise
        except Exception as exc:
            first = first_line(exc)
            raise EdgebenchError(f"quantize: onnxruntime could not quantize {src}: {first}") from None
        finally:
            if chatter.getvalue().strip():
                log.debug("onnxruntime calibration: %s", chatter.getvalue().strip())
        _check_quantized(tmp_out, calib[:1], reader.input_name)
        onnx_file.copy(tmp_out, out)  # one file again where the INT8 model fits in one
    log.info(
        "quantized %s -> %s (%s, %s calibration on %d images%s)",
        src,
        out,
        spec.preset,
        spec.calibration,
        len(calib),
        f", {len(nodes_to_exclude)} nodes kept in float" if nodes_to_exclude else "",
    )
    return out


def _check_quantized(path: Path, sample: np.ndarray, input_name: str) -> None:
    """The quantized model loads in ORT (CPU), runs on a real image, and has Q/DQ nodes."""
    import onnxruntime as ort

    counts = count_qdq_nodes(path)
    if not counts["QuantizeLinear"] or not counts["DequantizeLinear"]:
        raise EdgebenchError(
            f"quantize: expected QuantizeLinear/DequantizeLinear nodes in the result, found {counts} (nothing quantizable?)"
        )
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, {input_name: np.ascontiguousarray(sample)})
    except Exception as exc:
        first = first_line(exc)
        raise EdgebenchError(f"quantize: the quantized model does not run in onnxruntime: {first}") from None
    if not all(np.isfinite(o).all() for o in outs):
        raise EdgebenchError("quantize: the quantized model returns NaN or inf on a calibration image")
