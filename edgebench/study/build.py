"""The build stage: a candidate's artifact, compressed, exported and checked (or found on disk).

:func:`build` applies the candidate's compression steps (:data:`edgebench.compress.steps.STEPS`)
where each acts: ``module`` steps (pruning) on the fp32 PyTorch module, built once per distinct
chain of recipes and shared through ``parent``; then the module is exported to ONNX, or, for an
ONNX source with no module step, the user's own graph is taken as it is; then ``graph`` steps
(INT8) rewrite that ONNX file. The artifact is checked against PyTorch or the user's graph and
described in a manifest (``artifacts/<name>.json``). A candidate that cannot be built (no PyTorch
model, a model Torch-Pruning cannot cut) is recorded with its reason and is UNMEASURED; only a
failing base stops the run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgebench.compress.steps import GraphInputs, ModuleInputs, steps_of
from edgebench.errors import EdgebenchError, first_line
from edgebench.study.config import CandidateConfig
from edgebench.study.context import Built, NeedsTorch, RunContext
from edgebench.subject.zoo import Subject
from edgebench.util import onnx_file

log = logging.getLogger(__name__)


def build_all(run: RunContext, subject: Subject, stems: dict[str, Any] | None = None) -> list[Built]:
    """Every candidate of the study, in order (progress as the ``compress`` task)."""
    cands = run.config.candidates
    stems = {} if stems is None else stems
    run.ui("task", {"id": "compress", "text": "compress + export", "total": len(cands)})
    built = []
    for cand in cands:
        built.append(build(run, cand, subject, stems))
        run.ui("advance", {"id": "compress"})
    run.ui("done", {"id": "compress"})
    return built


def build(run: RunContext, cand: CandidateConfig, subject: Subject, stems: dict[str, Any]) -> Built:
    """Candidate *cand*'s artifact and manifest (found on disk when its recipe and artifact are
    unchanged). *stems* caches fp32 modules by chain of module steps, across candidates."""
    store = run.store
    art = store.artifact_path(cand.name)
    man_path = store.manifest_path(cand.name)
    recipe = cand.recipe()
    if man_path.is_file():
        manifest = json.loads(man_path.read_text())
        found = art.is_file() and (manifest.get("artifact") or {}).get("sha256") == _sha_or_none(art)
        if manifest.get("recipe") == recipe and (found or manifest.get("skipped")) and not _retry(run, manifest):
            run.ui("status", {"text": f"{cand.name}: artifact found, skipping build"})
            return Built(cand, manifest)
    try:
        manifest = _build(run, cand, subject, stems)
    except Exception as exc:  # noqa: BLE001 - a candidate that cannot be built must not stop the others
        if not isinstance(exc, NeedsTorch) and not steps_of(cand):
            raise  # no base, nothing to compare: the run stops with the reason
        # degrade: this candidate is UNMEASURED with the reason, every other one goes on
        if isinstance(exc, NeedsTorch):
            reason = f"candidate '{cand.name}' {exc}"
        elif isinstance(exc, EdgebenchError):
            reason = f"candidate '{cand.name}': {exc}"
        else:  # a library failing inside a step: its own words, and the traceback in the log
            log.debug("building %s", cand.name, exc_info=True)
            reason = f"candidate '{cand.name}': {type(exc).__name__}: {first_line(exc, 200)}"
        manifest = {"name": cand.name, "recipe": recipe, "recipe_resolved": recipe, "artifact": None, "skipped": reason}
        manifest["needs_torch"] = isinstance(exc, NeedsTorch)  # resume: retried once there is a PyTorch model
        run.ui("status", {"text": f"{cand.name}: UNMEASURED: {reason}"})
    else:
        from edgebench import __version__
        from edgebench.report import format as fmt

        manifest.update({"name": cand.name, "recipe": recipe, "recipe_resolved": recipe, "edgebench": __version__})
        a = manifest["artifact"]
        check = fmt.export_check(manifest["export_check"])
        run.ui("status", {"text": f"{cand.name}: {a['precision']} artifact, {fmt.size(a['size_bytes'])}; {check}"})
    store.write_json(str(man_path.relative_to(run.run_dir)), manifest)
    return Built(cand, manifest)


def _retry(run: RunContext, manifest: dict) -> bool:
    """A candidate that could not be built is tried again on the next run (the model may
    convert now, or edgebench may cut it now), except one skipped for want of a PyTorch
    model while there still is none."""
    return bool(manifest.get("skipped")) and (run.torch_ok or not manifest.get("needs_torch"))


def _chain(run: RunContext, cand: CandidateConfig) -> list:
    """The module-step recipes from base to *cand*'s fp32 module, in order."""
    head = _chain(run, run.candidate(cand.parent)) if cand.parent else []
    return head + [{s.key: getattr(cand, s.key).to_dict()} for s in steps_of(cand, "module")]


def stem(run: RunContext, cand: CandidateConfig, subject: Subject, stems: dict[str, Any]) -> Any:
    """The fp32 PyTorch module a candidate's graph steps start from: base, or base (or its
    ``parent``'s module) through its module steps. Built once per distinct chain (*stems* holds
    ``(module, step records)`` by chain); a parent found on disk is rebuilt here (deterministic:
    fixed seeds) when a child needs it."""
    import torch

    key = json.dumps(_chain(run, cand), sort_keys=True)
    if key in stems:
        return stems[key][0]
    if subject.model is None:
        raise NeedsTorch(f"needs the model in PyTorch, and {subject.torch_reason}")
    module = subject.model
    if cand.parent is not None:
        module = stem(run, run.candidate(cand.parent), subject, stems)
    split = subject.split
    # no training images (a user's trained model with finetune epochs 0): nothing to pass
    inputs = ModuleInputs(
        example=torch.from_numpy(split.x_eval[:1]),
        train=(split.x_train, split.y_train) if len(split.x_train) else None,
        on_status=lambda t: run.ui("status", {"text": f"{cand.name}: {t}"}),
        device=run.host_device,
    )
    origin = f"{cand.parent}'s model" if cand.parent else "base"
    records: dict[str, Any] = {}
    for step in steps_of(cand, "module"):
        spec = getattr(cand, step.key)
        run.ui("status", {"text": f"{cand.name}: {step.describe(spec)} of {origin}"})
        assert step.apply_module is not None
        module, records[step.key] = step.apply_module(module, spec, inputs)
    note = _short_finetune_note(cand, module, subject) if records.get("prune") is not None else None
    if note is not None:  # in the manifest's and results' ``pruning``, the report's "Pruning reached" line
        records["prune"]["finetune_note"] = note
        run.ui("status", {"text": f"{cand.name}: {note}"})
    stems[key] = (module, records)
    return module


def _short_finetune_note(cand: CandidateConfig, module: Any, subject: Subject) -> str | None:
    """Why a pruned module's accuracy is low, when fine-tuning was short (its accuracy on the
    evaluation images is measured only then)."""
    from edgebench.compress.finetune import finetune_was_short, short_finetune_note
    from edgebench.subject.train import accuracy

    assert cand.prune is not None
    split, base = subject.split, subject.info.get("base_accuracy_torch")
    epochs = cand.prune.finetune.epochs * cand.prune.iterative_steps
    if base is None or not finetune_was_short(epochs, len(split.x_train)):
        return None
    return short_finetune_note(epochs, len(split.x_train), base, accuracy(module, split.x_eval, split.y_eval))


def stem_records(run: RunContext, cand: CandidateConfig, stems: dict[str, Any]) -> dict[str, Any]:
    """What *cand*'s own module steps reported when its stem was built (e.g. ``prune``: the
    ratio reached and the layers left whole); empty for a stem built before this run."""
    entry = stems.get(json.dumps(_chain(run, cand), sort_keys=True))
    return dict(entry[1]) if entry is not None else {}


def _sha_or_none(art: Path) -> str | None:
    """The artifact's hash; None where its external data is missing (it is built again)."""
    try:
        return onnx_file.sha256(art)
    except EdgebenchError:
        return None


def _build(run: RunContext, cand: CandidateConfig, subject: Subject, stems: dict[str, Any]) -> dict:
    """Module steps, export (or the user's graph), graph steps, checks: the manifest's fields."""
    from edgebench.export.graph import for_quantization
    from edgebench.export.onnx import export_onnx, verify_against_reference, verify_against_torch

    art = run.store.artifact_path(cand.name)
    split = subject.split
    shape = tuple(split.input_shape)
    x_check = split.x_eval[: min(256, len(split.x_eval))]
    graph_steps = steps_of(cand, "graph")
    src = art if not graph_steps else art.with_name(art.stem + ".fp32.onnx")  # kept: INT8 error localisation
    from_graph = subject.graph is not None and not steps_of(cand, "module")  # the user's ONNX graph, as it is
    module = None
    if from_graph:
        onnx_file.save(for_quantization(subject.graph)[0] if graph_steps else subject.graph, src)  # no copy held
        output = subject.output_kind
    else:
        module = stem(run, cand, subject, stems)
        export_onnx(module, src, shape)
        output = "log-probabilities" if subject.output_kind == "probabilities" else "logits"
    records: dict[str, Any] = {}
    precision = "fp32"
    current = src
    inputs = GraphInputs(
        split.x_calib, split.x_eval, split.y_eval, on_status=lambda t: run.ui("status", {"text": f"{cand.name}: {t}"})
    )
    for i, step in enumerate(graph_steps):
        spec = getattr(cand, step.key)
        out = art if i == len(graph_steps) - 1 else art.with_name(f"{art.stem}.{step.key}.onnx")
        run.ui("status", {"text": f"{cand.name}: {step.describe(spec)}"})
        assert step.apply_graph is not None
        records[step.key] = step.apply_graph(current, out, spec, inputs)
        precision, current = step.precision or precision, out
    quantized = precision != "fp32"
    if module is not None:
        check = verify_against_torch(art, module, x_check, quantized=quantized)
    else:
        assert subject.reference is not None  # an ONNX source always has its graph run by ONNX Runtime
        check = verify_against_reference(art, subject.reference, x_check, quantized=quantized, strict=quantized)
    manifest: dict[str, Any] = {
        "artifact": _artifact_record(run, art, precision, output),
        "export_check": check,
        "accuracy_control": records.get("quantize"),
        "pruning": stem_records(run, cand, stems).get("prune") if module is not None else None,
    }
    manifest.update(_size(module, src if module is None else None, shape))
    return manifest


def _size(module: Any, graph_file: Path | None, shape: tuple[int, ...]) -> dict:
    """Params, non-zero params and MACs: of the PyTorch module, or of the user's ONNX graph."""
    if module is not None:
        from edgebench.compress.stats import count_macs, count_nonzero_params, count_params

        return {
            "params": count_params(module),
            "nonzero_params": count_nonzero_params(module),
            "macs": count_macs(module, shape),
        }
    from edgebench.measure.onnx_stats import onnx_stats

    assert graph_file is not None
    stats = onnx_stats(graph_file, tuple(shape[1:]))
    return {"params": stats.params, "nonzero_params": stats.params, "macs": stats.macs}


def _artifact_record(run: RunContext, art: Path, precision: str, output: str) -> dict:
    """The manifest's ``artifact``: file, hash, precision, opset, input, what it outputs."""
    from edgebench.export.graph import dims, opset_of, real_inputs

    proto = onnx_file.load(art, external_data=False)  # inputs and opset: the graph alone
    vin = real_inputs(proto)[0]
    shape = dims(vin)
    return {
        "path": str(art.relative_to(run.run_dir)),
        "sha256": onnx_file.sha256(art),
        "size_bytes": onnx_file.size_bytes(art),
        "format": "onnx",
        "precision": precision,
        "opset": opset_of(proto),
        "input": {
            "name": vin.name,
            "shape": ["batch" if isinstance(shape[0], str) else shape[0], *shape[1:]],
            "dtype": "float32",
        },
        "output": output,
    }


__all__ = ["build", "build_all", "stem", "stem_records"]
