"""``edgebench run``: the stages composed, with resume.

subject -> candidates (compress + export + check) -> attacks (on the base model) ->
per device: profile and replay every candidate through the agent -> results.json -> report.
Each finished measurement is written at once (see :mod:`edgebench.study.store`); a re-run
skips everything already on disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent.protocol import InputSet, PredictJob, ProfileJob, SessionJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError
from edgebench.study.assemble import RecordFn, assemble_results
from edgebench.study.config import CandidateConfig, StudyConfig
from edgebench.study.engines import PREDICT_BATCH, apply_engine, clear_skips, record_skips, skip_reason
from edgebench.study.store import RunStore
from edgebench.util.io import sha256_file

log = logging.getLogger(__name__)

# ui(event, payload): "status" {text}; "task" {id, text, total}; "advance" {id, done?}; "done" {id}
UiFn = Callable[[str, dict], None]


def log_only(event: str, payload: dict) -> None:
    """The UI of a run without a terminal: status lines go to the log, progress nowhere."""
    if event == "status":
        log.info(payload.get("text", ""))


class NeedsTorch(Exception):
    """A candidate that needs the base model in PyTorch, which could not be made (its reason)."""


@dataclass
class Built:
    """A candidate's artifact as built (or found) in this run folder."""

    config: CandidateConfig
    manifest: dict


@dataclass
class Pipeline:
    config: StudyConfig
    run_dir: Path
    ui: UiFn = log_only
    # results.json records the command running the pipeline adds to every assembly (edgebench
    # search: "search"), so the study package needs no import of the commands built on it
    records: dict[str, RecordFn] = field(default_factory=dict)
    store: RunStore = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.store = RunStore(self.run_dir)
        self._lock = threading.Lock()
        self._array_cache: dict[str, dict[str, np.ndarray]] = {}
        # per device: the measurement loop's wall time and the part spent inside agent jobs
        self.timing: dict[str, dict[str, float]] = {}
        self._sets: list | None = None
        self._torch_ok = False  # the subject has a PyTorch module (set when it is loaded)

    # ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Every stage; returns the final results (also in results.json)."""
        from edgebench.devices.inventory import get_device

        t0 = time.perf_counter()
        devices = [get_device(name) for name in self.config.devices]  # unknown device: fail before any work
        subject = self.prepare()
        built = self._build_candidates(subject)
        attack_sets = self._attacks(subject)
        self._write_results()
        self._measure(devices, built, attack_sets)
        results = self._write_results(final=True)
        self.ui("status", {"text": f"done in {time.perf_counter() - t0:.1f} s"})
        return results

    def validate(self) -> None:
        """Refuse, before any work, recipes this model or data cannot support, so a mistake in
        the study costs a second, not a half-finished run (every spec was parsed with the study)."""
        from edgebench.subject.sources import check_recipes

        cfg = self.config
        check_recipes(cfg.model, cfg.data, cfg.candidates)  # e.g. pruning a TorchScript model

    def prepare(self) -> Any:
        """Bind the run folder to this study and load the subject (model + data)."""
        self.validate()
        self.store.bind_study(self.config.to_dict())
        self.ui("status", {"text": f"run folder {self.run_dir}"})
        return self._subject()

    def compress_stage(self) -> list[Built]:
        """``edgebench compress``: candidates built, exported and checked; nothing measured."""
        built = self._build_candidates(self.prepare())
        self._write_results()
        return built

    def attack_stage(self) -> list[dict]:
        """``edgebench attack``: adversarial sets crafted on the base model."""
        sets = self._attacks(self.prepare())
        self._write_results()
        return sets

    # ---- subject ---------------------------------------------------------------------------------
    def _subject(self) -> Any:
        from edgebench.subject.zoo import load_subject

        cfg = self.config
        self.ui("status", {"text": f"subject: {cfg.model.kind} {cfg.model.spec} on {cfg.data.label}"})
        batches = tuple(sorted({1, PREDICT_BATCH, *cfg.profile.batches}))
        subject = load_subject(
            cfg.model, cfg.data, cfg.seed, on_status=lambda t: self.ui("status", {"text": t}), batches=batches
        )
        split = subject.split
        self._torch_ok = subject.model is not None
        if subject.torch_reason is not None:
            self.ui(
                "status",
                {
                    "text": f"no PyTorch module ({subject.torch_reason}): pruned candidates, transfer and white-box "
                    "attacks are UNMEASURED; base, INT8 of base, profiles, clean accuracy and black-box attacks run"
                },
            )
        if self.store.load_arrays("eval") is None:
            self.store.save_arrays("eval", x=split.x_eval, y=split.y_eval)
        if self.store.load_arrays("base_logits") is None:  # log-probabilities for a probability model
            self.store.save_arrays("base_logits", logits=subject.logits(split.x_eval))
        n_attack = min(cfg.attacks.samples, len(split.x_eval))
        info = dict(subject.info, attack_count=n_attack)
        self.store.write_json("subject.json", info)
        return subject

    # ---- candidates ------------------------------------------------------------------------------
    def _build_candidates(self, subject: Any) -> list[Built]:
        cands = self.config.candidates
        self.ui("task", {"id": "compress", "text": "compress + export", "total": len(cands)})
        stems: dict[str, Any] = {}
        built = []
        for cand in cands:
            built.append(self._build_one(cand, subject, stems))
            self.ui("advance", {"id": "compress"})
        self.ui("done", {"id": "compress"})
        return built

    def _stem(self, cand: CandidateConfig, subject: Any, stems: dict[str, Any]) -> Any:
        """The fp32 PyTorch module a candidate starts from: base, or base (or its ``parent``'s
        pruned model) pruned by its recipe. Built once per distinct chain of recipes; a parent
        found on disk is rebuilt here (deterministic: fixed seeds) when a child needs it."""
        key = json.dumps(self._chain(cand), sort_keys=True)
        if key not in stems:
            if subject.model is None:
                raise NeedsTorch(f"needs the model in PyTorch, and {subject.torch_reason}")
            if cand.prune is None:
                stems[key] = subject.model
            else:
                import torch

                from edgebench.compress.prune import prune

                start = subject.model
                if cand.parent is not None:
                    start = self._stem(self._candidate(cand.parent), subject, stems)
                spec = cand.prune
                origin = f"{cand.parent}'s model" if cand.parent else "base"
                self.ui("status", {"text": f"{cand.name}: pruning {origin} ({spec.criterion}, ratio {spec.ratio})"})
                split = subject.split
                example = torch.from_numpy(split.x_eval[:1])
                # no training images (a user's trained model with finetune epochs 0): nothing to pass
                train = (split.x_train, split.y_train) if len(split.x_train) else None
                stems[key] = prune(start, spec, example, train=train).eval()
        return stems[key]

    def _candidate(self, name: str) -> CandidateConfig:
        return next(c for c in self.config.candidates if c.name == name)

    def _chain(self, cand: CandidateConfig) -> list:
        """The prune recipes from base to *cand*'s fp32 model, in order."""
        head = self._chain(self._candidate(cand.parent)) if cand.parent else []
        return head + ([cand.prune.to_dict()] if cand.prune is not None else [])

    def _build_one(self, cand: CandidateConfig, subject: Any, stems: dict[str, Any]) -> Built:
        store = self.store
        art = store.artifact_path(cand.name)
        man_path = store.manifest_path(cand.name)
        recipe = cand.recipe()
        if man_path.is_file():
            manifest = json.loads(man_path.read_text())
            found = art.is_file() and manifest.get("artifact", {}).get("sha256") == sha256_file(art)
            if manifest.get("recipe") == recipe and (found or manifest.get("skipped")) and not self._retry(manifest):
                self.ui("status", {"text": f"{cand.name}: artifact found, skipping build"})
                return Built(cand, manifest)
        from_graph = subject.graph is not None and cand.prune is None  # the user's ONNX graph, as it is
        try:
            manifest = (
                self._build_from_graph(cand, subject) if from_graph else self._build_from_module(cand, subject, stems)
            )
        except (NeedsTorch, EdgebenchError) as exc:
            if isinstance(exc, EdgebenchError) and cand.prune is None and cand.quantize is None:
                raise  # no base, nothing to compare: the run stops with the reason
            # degrade: this candidate is UNMEASURED with the reason, every other one goes on
            sep = " " if isinstance(exc, NeedsTorch) else ": "
            reason = f"candidate '{cand.name}'{sep}{exc}"
            manifest = {
                "name": cand.name,
                "recipe": recipe,
                "recipe_resolved": recipe,
                "artifact": None,
                "skipped": reason,
            }
            self.ui("status", {"text": f"{cand.name}: UNMEASURED: {reason}"})
        else:
            from edgebench import __version__

            manifest.update({"name": cand.name, "recipe": recipe, "recipe_resolved": recipe, "edgebench": __version__})
            a = manifest["artifact"]
            self.ui(
                "status",
                {
                    "text": f"{cand.name}: {a['precision']} artifact {a['size_bytes']} bytes, check {manifest['export_check']}"
                },
            )
        store.write_json(str(man_path.relative_to(self.run_dir)), manifest)
        return Built(cand, manifest)

    def _retry(self, manifest: dict) -> bool:
        """A candidate that could not be built is tried again on the next run (the model may
        convert now, or edgebench may cut it now), except one skipped for want of a PyTorch
        model while there still is none."""
        skipped = str(manifest.get("skipped") or "")
        return bool(skipped) and (self._torch_ok or "needs the model in PyTorch" not in skipped)

    def _artifact_record(self, art: Path, precision: str, output: str) -> dict:
        """The manifest's ``artifact``: file, hash, precision, opset, input, what it outputs."""
        from edgebench.export.graph import dims, opset_of, real_inputs
        from edgebench.measure.onnx_stats import load_onnx

        proto = load_onnx(art)
        vin = real_inputs(proto)[0]
        shape = dims(vin)
        return {
            "path": str(art.relative_to(self.run_dir)),
            "sha256": sha256_file(art),
            "size_bytes": art.stat().st_size,
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

    def _build_from_module(self, cand: CandidateConfig, subject: Any, stems: dict[str, Any]) -> dict:
        """Export the candidate's PyTorch module (quantizing it for INT8) and check it against PyTorch."""
        from edgebench.compress.stats import count_macs, count_nonzero_params, count_params
        from edgebench.export.onnx import export_onnx, verify_against_torch

        art = self.store.artifact_path(cand.name)
        split = subject.split
        control = None
        module = self._stem(cand, subject, stems)
        shape = tuple(split.input_shape)
        x_check = split.x_eval[: min(256, len(split.x_eval))]
        if cand.quantize is None:
            export_onnx(module, art, shape)
            check = verify_against_torch(art, module, x_check, quantized=False)
            precision = "fp32"
        else:
            fp32 = art.with_name(art.stem + ".fp32.onnx")
            export_onnx(module, fp32, shape)
            control = self._quantize(cand, fp32, art, split)  # fp32 kept: INT8 error localisation
            check = verify_against_torch(art, module, x_check, quantized=True)
            precision = "int8"
        output = "log-probabilities" if subject.output_kind == "probabilities" else "logits"
        return {
            "artifact": self._artifact_record(art, precision, output),
            "params": count_params(module),
            "nonzero_params": count_nonzero_params(module),
            "macs": count_macs(module, shape),
            "export_check": check,
            "accuracy_control": control,
        }

    def _build_from_graph(self, cand: CandidateConfig, subject: Any) -> dict:
        """The user's ONNX graph as the artifact (base), or quantized by ONNX Runtime (INT8 of
        base); checked against ONNX Runtime on the user's graph, no PyTorch needed."""
        from edgebench.export.graph import for_quantization
        from edgebench.export.onnx import verify_against_reference
        from edgebench.measure.onnx_stats import onnx_stats
        from edgebench.util.io import atomic_write_bytes

        art = self.store.artifact_path(cand.name)
        split = subject.split
        x_check = split.x_eval[: min(256, len(split.x_eval))]
        control = None
        if cand.quantize is None:
            atomic_write_bytes(art, subject.graph.SerializeToString())
            check = verify_against_reference(art, subject.reference, x_check, quantized=False, strict=False)
            precision, stats_of = "fp32", art
        else:
            fp32 = art.with_name(art.stem + ".fp32.onnx")  # the graph as ORT's quantizer takes it
            atomic_write_bytes(fp32, for_quantization(subject.graph)[0].SerializeToString())
            control = self._quantize(cand, fp32, art, split)
            check = verify_against_reference(art, subject.reference, x_check, quantized=True)
            precision, stats_of = "int8", fp32
        stats = onnx_stats(stats_of, tuple(split.input_shape[1:]))
        return {
            "artifact": self._artifact_record(art, precision, subject.output_kind),
            "params": stats.params,
            "nonzero_params": stats.params,
            "macs": stats.macs,
            "export_check": check,
            "accuracy_control": control,
        }

    def _quantize(self, cand: CandidateConfig, fp32: Path, art: Path, split: Any) -> dict | None:
        """INT8 of *fp32* at *art*; with ``max_accuracy_drop``, the nodes whose quantization hurts
        most go back to float until the clean accuracy drop on the evaluation images fits
        (returns that record for the manifest)."""
        from edgebench.compress.quantize import quantize_static

        spec = cand.quantize
        assert spec is not None
        n_cal = spec.calib_samples
        self.ui("status", {"text": f"{cand.name}: int8 calibration on {n_cal} held-out images ({spec.calibration})"})
        if spec.max_accuracy_drop is None:
            quantize_static(fp32, art, split.x_calib[:n_cal], spec)
            return None
        from edgebench.compress.accuracy_control import quantize_with_accuracy_control

        result = quantize_with_accuracy_control(fp32, art, split.x_calib, spec, split.x_eval, split.y_eval)
        record = result.to_dict()
        kept = ", ".join(n["name"] for n in record.get("kept_float") or []) or "none"
        self.ui(
            "status",
            {
                "text": f"{cand.name}: accuracy control: drop {record['accuracy_drop']:.4f} "
                f"({'met' if record['met'] else 'NOT met'}); kept in float: {kept}"
            },
        )
        return record

    # ---- attacks ------------------------------------------------------------------------------------
    def _attacks(self, subject: Any) -> list[dict]:
        from edgebench.robustness.store import craft_and_store

        cfg = self.config.attacks
        specs = list(cfg.suite)
        split = subject.split
        if subject.model is None:  # transfer sets are crafted on the base in PyTorch
            self.ui(
                "status",
                {
                    "text": f"transfer attacks: UNMEASURED: crafting needs the model in PyTorch, and {subject.torch_reason}"
                },
            )
            return []
        n = min(cfg.samples, len(split.x_eval))
        # one unit per image per spec; craft_and_store reports (spec label, images done, images total)
        self.ui("task", {"id": "attack", "text": f"attacks on base ({n} images)", "total": len(specs) * n})
        seen: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            step = done - seen.get(label, 0)
            seen[label] = done
            if step > 0:
                self.ui("advance", {"id": "attack", "by": step * n / max(total, 1)})

        self._sets = None  # crafted or re-used below: verified once more, then cached
        report = craft_and_store(
            subject.model,
            split.x_eval[:n],
            split.y_eval[:n],
            specs,
            self.store.attacks_dir,
            indices=np.arange(n),
            batch_size=cfg.batch_size,
            seed=self.config.seed,
            on_progress=progress,
        )
        self.ui("done", {"id": "attack"})
        if report.crafted:
            self.ui("status", {"text": f"crafted {len(report.crafted)} sets, reused {len(report.skipped)}"})
        return [dict(s, path=str((self.store.attacks_dir / s["path"]).relative_to(self.run_dir))) for s in report.sets]

    # ---- measurements -----------------------------------------------------------------------------
    def _measure(self, devices: list, built: list[Built], attack_sets: list[dict]) -> None:
        from edgebench.devices.registry import open_device

        errors: list[BaseException] = []

        self._whitebox(built)

        def work(spec: Any) -> None:
            started = time.perf_counter()
            device = None
            try:
                with open_device(spec) as device:
                    for b in built:
                        self._measure_one(device, spec, b, attack_sets)
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)
            finally:
                # results.json once per device pass (measurement files are already on disk)
                with self._lock:
                    self._write_results()
                    loop_s = time.perf_counter() - started
                    agent_s = device.job_seconds if device is not None else 0.0
                    self.timing[spec.name] = {"loop_s": loop_s, "agent_jobs_s": agent_s}
                log.info("%s: measurement loop %.2f s, %.2f s of it in agent jobs", spec.name, loop_s, agent_s)

        per = 2 + int(self.config.blackbox.enabled) + int("whitebox" in self.config.attacks.settings)
        total = len(devices) * len(built) * per
        self.ui("task", {"id": "measure", "text": f"measure on {', '.join(d.name for d in devices)}", "total": total})
        limit = max(1, self.config.profile.max_parallel_devices)
        if len(devices) == 1 or limit == 1:
            for spec in devices:
                work(spec)
        else:
            sem = threading.Semaphore(limit)

            def guarded(spec: Any) -> None:
                with sem:
                    work(spec)

            threads = [threading.Thread(target=guarded, args=(s,), name=f"device-{s.name}") for s in devices]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.ui("done", {"id": "measure"})
        if errors:
            raise errors[0]

    def _measure_one(self, device: Any, spec: Any, b: Built, attack_sets: list[dict]) -> None:
        """Every measurement of candidate *b* on the open *device* (each skipped if on disk)."""
        reason = b.manifest.get("skipped") or skip_reason(b.config, spec)  # not built; tensorrt without it
        if reason is not None:
            self._skip(device, b, reason)
            return
        clear_skips(self.store, b.config.name, device.name)
        self._profile(device, b)
        self._replay(device, b, attack_sets)
        if "whitebox" in self.config.attacks.settings:
            self._replay_whitebox(device, b)
        if self.config.blackbox.enabled:
            self._blackbox(device, b)

    def _job_common(self, b: Built) -> SessionJob:
        """What every job on candidate *b* shares: its artifact in the engine that runs it (and, as
        is, the query session of the black-box attacks)."""
        p = self.config.profile
        options = BackendOptions(threads=p.threads, device="cpu", precision=b.manifest["artifact"]["precision"])
        job = SessionJob(artifact=str(self.run_dir / b.manifest["artifact"]["path"]), options=options)
        return apply_engine(job, b.config, p.batches)

    def _predict_job(self, b: Built, sets: list[InputSet], logits_path: Path) -> PredictJob:
        """Every set in *sets* through candidate *b*; logits to *logits_path*."""
        common = self._job_common(b)
        return PredictJob(
            artifact=common.artifact,
            backend=common.backend,
            options=common.options,
            sets=tuple(sets),
            batch=_fixed_batch(b) or PREDICT_BATCH,
            logits=str(logits_path),
        )

    def _skip(self, device: Any, b: Built, reason: str) -> None:
        """Record every measurement of *b* on *device* as skipped (its verdict: UNMEASURED)."""
        kinds = ["profile", "replay"] + (["blackbox"] if self.config.blackbox.enabled else [])
        self.ui("status", {"text": f"{device.name}: skipping {b.config.name}: {reason}"})
        sha = (b.manifest.get("artifact") or {}).get("sha256")
        record_skips(self.store, b.config.name, device.name, kinds, reason, sha)
        for _ in kinds:
            self.ui("advance", {"id": "measure"})

    def _profile(self, device: Any, b: Built) -> None:
        name = b.config.name
        if self.store.has(name, device.name, "profile"):
            self.ui("advance", {"id": "measure"})
            return
        p = self.config.profile
        common = self._job_common(b)
        job = ProfileJob(
            artifact=common.artifact,
            backend=common.backend,
            options=dataclasses.replace(common.options, profile_ops=p.profile_ops),
            inputs=str(self.store.data_path("eval")),
            batches=_job_batches(b, p.batches),
            modes=tuple(p.modes),
            budget=TimingBudget(**p.budget()),
            telemetry=p.telemetry,
        )
        self.ui("status", {"text": f"{device.name}: profiling {name}"})
        result = device.run_job(job)
        result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
        self.store.save(name, device.name, "profile", result)
        self.ui("advance", {"id": "measure"})

    def _replay(self, device: Any, b: Built, attack_sets: list[dict]) -> None:
        name = b.config.name
        if self.store.has(name, device.name, "replay"):
            self.ui("advance", {"id": "measure"})
            return
        sets = [InputSet("clean", str(self.store.data_path("eval")))]
        is_base = b.config.prune is None and b.config.quantize is None  # base sets are white-box for base
        if "transfer" in self.config.attacks.settings or is_base:
            sets += [InputSet(s["id"], str(self.run_dir / s["path"])) for s in attack_sets]
        logits_path = self.store.measurement_path(name, device.name, "replay").with_name("logits.npz")
        job = self._predict_job(b, sets, logits_path)
        self.ui("status", {"text": f"{device.name}: replaying {len(sets) - 1} adversarial sets through {name}"})
        result = device.run_job(job)
        from edgebench.robustness.metrics import fidelity

        with np.load(logits_path, allow_pickle=False) as d:
            clean_logits = d["clean"]
        if _returns_probabilities(b):  # base logits are log-probabilities for such a model
            clean_logits = np.log(np.clip(clean_logits, 1e-30, None))
        result["fidelity"] = fidelity(self._arrays("base_logits")["logits"], clean_logits)
        result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
        self.store.save(name, device.name, "replay", result)
        self.ui("advance", {"id": "measure"})

    def _whitebox(self, built: list[Built]) -> None:
        """White-box sets crafted on each candidate's own model (see edgebench.study.whitebox),
        before any of them is measured; resumable, so a set already crafted is kept. Every engine
        calls this (through :meth:`_measure` or directly) so no candidate is measured without them."""
        from edgebench.study.whitebox import craft_all

        if "whitebox" not in self.config.attacks.settings or not built:
            return
        data = self._arrays("eval")

        cands = [
            (
                b.config.name,
                self.run_dir / b.manifest["artifact"]["path"],
                b.config.prune is None and b.config.quantize is None,
            )
            for b in built
            if b.manifest.get("artifact")  # a candidate that could not be built has nothing to attack
        ]
        craft_all(
            self.store,
            cands,
            data["x"],
            data["y"],
            self.config.attacks,
            self.config.seed,
            self.ui,
        )

    def _replay_whitebox(self, device: Any, b: Built) -> None:
        from edgebench.study.whitebox import REPLAY_KIND, replay_sets

        name = b.config.name
        if self.store.has(name, device.name, REPLAY_KIND):
            self.ui("advance", {"id": "measure"})
            return
        logits_path = self.store.measurement_path(name, device.name, REPLAY_KIND).with_name("logits-whitebox.npz")
        sets = replay_sets(self.store, name)
        if not sets:  # no surrogate could be made (its reason is in the white-box record)
            self.ui("advance", {"id": "measure"})
            return
        job = self._predict_job(b, sets, logits_path)
        self.ui("status", {"text": f"{device.name}: replaying {len(sets)} white-box sets through {name}"})
        result = device.run_job(job)
        result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
        self.store.save(name, device.name, REPLAY_KIND, result)
        self.ui("advance", {"id": "measure"})

    def _blackbox(self, device: Any, b: Built) -> None:
        """HopSkipJump/Boundary (and Square, if configured) against the deployed artifact
        itself, queries through the agent."""
        cfg = self.config.blackbox
        self._blackbox_one(device, b, "blackbox", cfg.spec())
        if cfg.square is not None:
            self._blackbox_one(device, b, "blackbox-square", cfg.square, advance=False)

    def _blackbox_one(self, device: Any, b: Built, kind: str, spec: Any, advance: bool = True) -> None:
        from edgebench.robustness.blackbox import run_blackbox

        name = b.config.name
        if self.store.has(name, device.name, kind):
            if advance:
                self.ui("advance", {"id": "measure"})
            return
        cfg = self.config.blackbox
        data = self._arrays("eval")
        x, y = data["x"], data["y"]
        n, pool = cfg.samples, cfg.pool
        self.ui(
            "status",
            {
                "text": f"{device.name}: {spec.name} black-box attack on {name} ({n} images, "
                f"{spec.max_queries} queries each, through the agent)"
            },
        )
        job = self._job_common(b)
        t0 = time.perf_counter()
        with device.open_session(job) as session:
            query = session.query
            if _returns_probabilities(b):  # score-based attacks take log-probabilities

                def query(xs: np.ndarray, _q: Any = session.query) -> np.ndarray:
                    return np.log(np.clip(_q(xs), 1e-30, None))

            res = run_blackbox(
                query,
                x[:n],
                y[:n],
                spec,
                pool_x=x[n : n + pool],
                pool_y=y[n : n + pool],
                indices=np.arange(n),
                seed=self.config.seed,
            )
            runtime = session.runtime
        out = res.summary()
        out.update(
            {
                "distances": [None if not np.isfinite(d) else float(d) for d in res.distances],
                "queries": res.queries.tolist(),
                "wall_s": time.perf_counter() - t0,
                "runtime": runtime,
                "artifact_sha256": b.manifest["artifact"]["sha256"],
            }
        )
        self.store.save(name, device.name, kind, out)
        if advance:
            self.ui("advance", {"id": "measure"})

    # ---- results ------------------------------------------------------------------------------------
    def _arrays(self, name: str) -> dict[str, np.ndarray]:
        """A run-folder array file (eval, base_logits), read once per run."""
        if name not in self._array_cache:
            arrays = self.store.load_arrays(name)
            if arrays is None:
                raise EdgebenchError(f"{self.store.data_path(name)}: expected it from the subject stage, found none")
            self._array_cache[name] = arrays
        return self._array_cache[name]

    def _attack_sets(self) -> list | None:
        """The adversarial sets' metadata, loaded and sha256-verified once per run (after crafting)."""
        if self._sets is None and (self.store.attacks_dir / "attacks.json").is_file():
            from edgebench.robustness.store import load_folder

            self._sets = load_folder(self.store.attacks_dir, inputs=False)
        return self._sets

    def _write_results(self, final: bool = False) -> dict:
        """Assemble results.json in memory from the measurement files; on the final call, render
        the report from those same results. Called per stage and device pass, not per measurement."""
        results = assemble_results(self.run_dir, sets=self._attack_sets(), records=self.records)
        if final:
            from edgebench.report.render import render_results

            render_results(results, self.run_dir)
        return results


def _fixed_batch(b: Built) -> int | None:
    """The batch size a user's graph is fixed at (None: dynamic): its jobs run at that batch only."""
    shape = ((b.manifest.get("artifact") or {}).get("input") or {}).get("shape") or ["batch"]
    return shape[0] if isinstance(shape[0], int) else None


def _job_batches(b: Built, batches: Any) -> tuple[int, ...]:
    fixed = _fixed_batch(b)
    return (fixed,) if fixed else tuple(batches)


def _returns_probabilities(b: Built) -> bool:
    return (b.manifest.get("artifact") or {}).get("output") == "probabilities"


def default_run_dir(cfg: StudyConfig, base: Path = Path("reports")) -> Path:
    return base / f"{cfg.name}-{cfg.model.label}-{cfg.data.label}"
