"""The typed ``results.json``: one pydantic model per object, the :data:`SCHEMA` tag, and the
one-line error a file that does not match gets.

``study/assemble.py`` writes results.json through :class:`Results`; ``report/render.py`` reads
it through the same models, so the writer, the reader and ``docs/results.md`` (whose field
reference is generated from these models: ``python -m edgebench.results --write``) cannot
drift apart.

Conventions: a value nobody measured is ``null``. A field whose default is ``None`` may be
absent: it is written only when it applies (or by newer versions); the others are always
written. Dumps use ``exclude_unset`` so an absent key stays absent and the file keeps its keys.
Objects whose shape edgebench defines forbid unknown keys; ``dict[str, Any]`` is left only where
the content is genuinely open (the echoed study config, environments, device profiles,
resolved recipes, runtime details).
"""

from __future__ import annotations

import json
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from edgebench.errors import EdgebenchError
from edgebench.util.schema import found, one_line

log = logging.getLogger(__name__)

SCHEMA = "edgebench.results/1"
"""The ``schema`` tag of every results.json this version writes and reads."""


def _number(value: Any) -> float | int:
    """A JSON number kept as it is (an int stays an int); booleans and strings are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, found {found(value)}")
    return value


Number = Annotated[float | int, PlainValidator(_number), WithJsonSchema({"type": "number"})]
"""A JSON number: int or float, never a boolean or a string."""

Interval = list[Number | None]
"""A 95 % interval ``[low, high]``; an end is null when too few samples bound it."""


class _Model(BaseModel):
    """Our shapes: unknown keys are errors, no coercion between JSON types."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- measurements


class LatencyStats(_Model):
    """Latency statistics of one timed run, in milliseconds (``measure/stats.py``)."""

    min: Number = Field(description="fastest iteration")
    mean: Number = Field(description="mean iteration")
    std: Number = Field(description="sample standard deviation")
    p50: Number = Field(description="median")
    p90: Number = Field(description="90th percentile")
    p95: Number = Field(description="95th percentile")
    p99: Number = Field(description="99th percentile")
    p50_ci: Interval | None = Field(None, description="95 % order-statistic interval of p50")
    p90_ci: Interval | None = Field(None, description="95 % order-statistic interval of p90")
    p99_ci: Interval | None = Field(None, description="95 % order-statistic interval of p99")
    p99_insufficient: bool | None = Field(None, description="true below 368 samples: p99 has no upper bound")
    max: Number = Field(description="slowest iteration")
    cv: Number = Field(description="coefficient of variation, std / mean")
    unstable: bool = Field(description="cv above 10 %")
    samples: int = Field(description="timed iterations")
    throughput_ips: Number | None = Field(description="items per second: batch / mean")
    warmup_iters: int | None = Field(None, description="iterations run before timing")


class Energy(_Model):
    """Energy of one timed window (``agent/telemetry/energy.py``): power sampled over exactly that
    window (warm-up excluded), the idle baseline measured just before the runs, and only the
    board's input rail, never a sum of rails. The numbers are null, with ``reason``, when the
    source has no input rail or the window holds fewer than 2 samples or 2 sampler intervals."""

    power_mean_mw: Number | None = Field(description="mean input-rail power over the window")
    idle_power_mw: Number | None = Field(description="idle baseline measured just before the runs")
    gross_mj_per_item: Number | None = Field(description="mean power x window / items")
    net_mj_per_item: Number | None = Field(description="(mean - idle power) x window / items")
    samples: int = Field(description="power samples inside the window")
    interval_ms: Number | None = Field(description="sampler interval")
    rail: str | None = Field(description="the input rail read (VDD_IN, POM_5V_IN), never a sum")
    window_s: Number | None = Field(None, description="length of the timed window")
    items: int | None = Field(None, description="items processed in the window")
    windows: int | None = Field(None, description="interleaved rounds: how many timed windows were pooled")
    reason: str | None = Field(None, description="why a number is null")


class Speedup(_Model):
    """Speed-up of a candidate over base timed in the same interleaved pass (``measure/speedup.py``):
    > 1 is faster. Rounds are paired: each round's base median over the candidate's."""

    ratio: Number = Field(description="geometric mean over rounds of base p50 / candidate p50")
    ci95: Interval = Field(description="95 % t interval on the per-round log ratios; null ends from one round")
    rounds: int = Field(description="paired rounds")
    round_ratios: list[Number] = Field(description="each round's base p50 / candidate p50")
    method: str = Field(description="how the ratio and its interval are computed")


class BatchRun(_Model):
    """One batch size x mode of the profile's sweep."""

    batch: int = Field(description="images per inference")
    mode: Literal["end_to_end", "compute"] = Field(description="host arrays in and out, or engine only")
    latency_ms: LatencyStats = Field(description="its latency")
    latency_device_ms: LatencyStats | None = Field(
        None, description="on a device clock (TensorRT: CUDA events on the engine's stream)"
    )
    energy: Energy | None = Field(None, description="energy over this run's timed window")
    round_p50_ms: list[Number] | None = Field(None, description="interleaved: the median of each round, in order")
    speedup: Speedup | None = Field(None, description="interleaved: over base's run of the same batch and mode")


class Drift(_Model):
    """Whether the device changed state during a timing pass: base's last rounds vs its first."""

    first_p50_ms: Number = Field(description="base's median over its first rounds")
    last_p50_ms: Number = Field(description="base's median over its last rounds")
    change: Number = Field(description="last / first - 1")
    drifted: bool = Field(description="|change| above the limit")
    limit: Number = Field(description="the limit on |change|")
    loadavg_first: Number | None = Field(None, description="1-minute load average after the first round")
    loadavg_last: Number | None = Field(None, description="after the last round")
    batch: int = Field(description="base's run the check read: its batch")
    mode: str = Field(description="and mode")


class TimingPass(_Model):
    """The interleaved timing pass that measured this candidate's latency (``profile.interleave``)."""

    rounds: int = Field(description="rotating rounds (A B C, B C A, ...)")
    models: list[str] = Field(description="the candidates timed together, base first")
    sessions: str | None = Field(description="shared: all open in one agent; alternating: one at a time")
    segment_budget: dict[str, Any] | None = Field(description="each model's share of the timing budget per round")
    round_meta: list[dict[str, Any]] | None = Field(description="per round: order, time span, load average")
    drift: Drift | None = Field(description="the drift check on base")
    finished: Number | None = Field(None, description="epoch seconds at the end of the pass")


class ColdStart(_Model):
    """The first inferences after load, before any warm-up (``backends/base.py``)."""

    load_time_s: Number | None = Field(description="artifact load time")
    first_inference_ms: Number = Field(description="the very first inference")
    first_n_ms: list[Number] = Field(description="each of the first inferences")
    first_n_mean_ms: Number = Field(description="their mean")
    iterations: int = Field(description="how many")
    batch: int = Field(description="their batch size")
    mode: Literal["end_to_end"] = Field(description="always end-to-end")
    steady_p50_ms: Number | None = Field(None, description="p50 of the same batch after warm-up")


class Memory(_Model):
    """Resident memory of the agent that measured, in MB."""

    rss_before_load: Number | None = Field(description="before the artifact was loaded")
    rss_after_load: Number | None = Field(description="after it was loaded")
    peak_rss: Number | None = Field(description="peak seen by the RSS sampler (the peak-memory gate)")
    ru_maxrss: Number | None = Field(
        description="the agent's own peak since exec (Linux: VmHWM; getrusage would inherit the forking host's peak)"
    )


class OpRow(_Model):
    """One operator type (or TensorRT layer) of the runtime's own profile."""

    op_type: str = Field(description="operator type (TensorRT: the layer name)")
    layer: str | None = Field(None, description="TensorRT: the layer name")
    node_count: int = Field(description="graph nodes of this type")
    calls: int = Field(description="executions in the profiled pass")
    total_ms: Number = Field(description="total time")
    mean_ms: Number = Field(description="time per call")
    share: Number | None = Field(description="share of the profiled time")


class Roofline(_Model):
    """Achieved vs peak operations per second (``measure/roofline.py``)."""

    achieved_gops: Number = Field(description="2 x MACs / p50 latency (compute run when there is one)")
    peak_gops: Number | None = Field(description="the device's peak at this precision")
    peak_kind: str | None = Field(
        None, description="`measured` (local: numpy sgemm, cached per machine) or `theoretical` (a datasheet figure)"
    )
    share_of_peak: Number | None = Field(description="achieved / peak")
    precision: str = Field(description="fp32, fp16 or int8")
    memory_bandwidth_gbs: Number | None = Field(None, description="the device's memory bandwidth")
    arithmetic_intensity: Number | None = Field(None, description="operations per byte moved")
    ridge_intensity: Number | None = Field(None, description="peak / bandwidth")
    attainable_gops: Number | None = Field(None, description="min(peak, intensity x bandwidth)")
    bound: Literal["memory", "compute"] | None = Field(None, description="which roof limits")


class Fidelity(_Model):
    """The candidate's logits against the base's PyTorch logits on the same clean inputs."""

    top1_agreement: Number | None = Field(description="share of equal top-1 predictions")
    max_abs_logit_diff: Number | None = Field(description="largest absolute logit difference")
    mean_abs_logit_diff: Number | None = Field(description="mean absolute logit difference")


class RobustnessRow(_Model):
    """Accuracy of the deployed artifact on one adversarial set; ``setting`` names the threat model."""

    setting: Literal["transfer", "whitebox", "divergence"] | None = Field(
        None,
        description="transfer: crafted on the base; whitebox: crafted on this candidate; divergence: crafted on "
        "this candidate paired with the base (diva)",
    )
    set: str | None = Field(None, description="the adversarial set's id")
    attack: str = Field(description="attack name")
    norm: str = Field(description="linf or l2")
    eps: Number | None = Field(description="perturbation budget (null: minimal-perturbation set)")
    id: str = Field(description="row id: the set id, `whitebox:<set>` / `divergence:<set>` for those rows")
    accuracy: Number | None = Field(description="accuracy on the adversarial inputs")
    accuracy_ci95: Interval | None = Field(description="95 % Wilson interval")
    transfer_success_rate: Number | None = Field(
        None, description="transfer rows: share of base-fooling examples that also fool this candidate"
    )
    agreement: Number | None = Field(None, description="transfer rows: share predicted as the base predicted")
    count: int = Field(description="adversarial examples")
    clean_accuracy: Number | None = Field(
        None, description="this artifact's accuracy on the clean versions of exactly this row's images"
    )
    transfer_accuracy: Number | None = Field(
        None, description="white-box rows: the transfer row's accuracy, same images"
    )
    base_whitebox_accuracy: Number | None = Field(
        None, description="white-box rows: the base under its own white-box set, same images"
    )
    surrogate_to_engine_rate: Number | None = Field(
        None, description="white-box rows: share of surrogate-fooling examples that fool the engine"
    )
    agreement_with_surrogate: Number | None = Field(None, description="white-box rows: agreement with the surrogate")
    surrogates: dict[str, Number] | None = Field(
        None,
        description="white-box rows: the engine's accuracy under each attacker's model's runs alone (INT8: "
        "`fake-quant-ste` and `fp32-parent`); `accuracy` is the per-image worst over all of them",
    )
    runs: int | None = Field(None, description="white-box rows: attack runs per image (restarts x attacker's models)")
    divergence_rate: Number | None = Field(
        None, description="divergence rows: share of images the deployed base gets right and this engine wrong"
    )
    divergence_rate_ci95: Interval | None = Field(None, description="divergence rows: its 95 % Wilson interval")
    divergence_count: int | None = Field(None, description="divergence rows: images base-right, candidate-wrong")
    base_accuracy: Number | None = Field(None, description="divergence rows: the deployed base's accuracy on them")
    median_distance: Number | None = Field(None, description="minimal-perturbation sets only")
    sanity_only: bool | None = Field(None, description="true for the unbounded sanity set (eps = 1)")
    same_as_transfer: bool | None = Field(None, description="base only: its transfer sets are white-box for it")


class Surrogate(_Model):
    """The white-box attacker's model of this artifact (``robustness/fakequant.py``)."""

    kind: str = Field(description="`fp32-graph`, or `fake-quant-ste` for INT8 (straight-through rounding)")
    qdq_points: int = Field(description="quantize-dequantize pairs modelled")
    count: int = Field(description="images compared")
    top1_agreement: Number | None = Field(description="vs ONNX Runtime on the host (the deployed arithmetic)")
    max_abs_logit_diff: Number | None = Field(description="largest absolute logit difference")
    mean_abs_logit_diff: Number | None = Field(description="mean absolute logit difference")
    qdq_reference_agreement: Number | None = Field(description="vs the QDQ graph run unfused")
    artifact_sha256: str = Field(description="the artifact it models")
    restarts: int | None = Field(None, description="runs per randomly started attack (attacks.whitebox_restarts)")
    also: list[str] | None = Field(
        None, description="further attacker's models whose examples count too (INT8: `fp32-parent`)"
    )
    variants: list[str] | None = Field(None, description="the further runs' folders (`r1`, `parent`, `parent-r1`)")
    divergence: bool | None = Field(None, description="divergence sets were crafted (diva in the suite)")


class Pairs(_Model):
    """Per-image outcomes of base and a candidate on the same images: the paired interval of an
    accuracy drop (``measure/proportions.py``) reads them."""

    both: int = Field(description="images both classify right")
    base_only: int = Field(description="base right, candidate wrong")
    cand_only: int = Field(description="candidate right, base wrong")
    neither: int = Field(description="both wrong")


class RobustAccuracy(_Model):
    """Robust accuracy at one epsilon: the share of images the engine still classifies right
    after every attack at that epsilon, over every setting (``robustness/worstcase.py``)."""

    id: str = Field(description="`worst-<norm>-<eps>` (L-inf eps in 1/255, as set ids)")
    norm: str = Field(description="linf or l2")
    eps: Number = Field(description="perturbation budget")
    robust_accuracy: Number | None = Field(description="right clean and under every attack (per image)")
    robust_accuracy_ci95: Interval | None = Field(description="95 % Wilson interval")
    count: int = Field(description="images every attack covered (the common subset)")
    images: str = Field(description="which evaluation images those are")
    clean_accuracy: Number | None = Field(description="clean accuracy on the same images")
    attacks: list[str] = Field(description="the rows (attacks) the worst case is taken over")
    by_setting: dict[str, Number | None] = Field(
        description="the worst case over each setting's attacks alone (transfer, whitebox, divergence, "
        "blackbox), same images"
    )
    note: str = Field(description="which images each setting covered")
    base_robust_accuracy: Number | None = Field(
        None, description="the base's worst case on the same images (its attacks at this eps)"
    )
    pairs: Pairs | None = Field(None, description="base vs this candidate, per image, on the same images")


class SanityCheck(_Model):
    """One gradient-masking check (Carlini et al. 2019, ``robustness/sanity.py``)."""

    check: str = Field(
        description="`iterative_vs_single_step`, `whitebox_vs_transfer`, `accuracy_decreases`, "
        "`unbounded_eps` or `surrogate_agreement`"
    )
    status: Literal["pass", "warn"] = Field(description="warn: possible gradient masking")
    label: str = Field(description="empty when it passes")
    numbers: Any = Field(description="the numbers it compared (per check)")
    detail: str = Field(description="one line with the numbers")


class BlackboxRow(_Model):
    """Black-box accuracy at one epsilon."""

    eps: Number = Field(description="perturbation budget")
    accuracy: Number | None = Field(description="accuracy within eps")
    success_rate: Number | None = Field(description="attack success within eps")


class Blackbox(_Model):
    """A query attack whose queries went to this artifact through the agent."""

    attack: str = Field(description="hsj, boundary or square")
    norm: str = Field(description="l2 or linf")
    count: int = Field(description="images attacked")
    attacked: int = Field(description="images classified right when clean (the ones attacked)")
    clean_accuracy: Number = Field(description="clean accuracy of those images")
    max_queries: int = Field(description="query budget per image")
    queries_total: int = Field(description="queries spent, pool included")
    queries_mean: Number = Field(description="queries per image")
    budget_exhausted: int = Field(description="images whose budget ran out")
    median_distance: Number | None = Field(description="over images classified right when clean")
    rows: list[BlackboxRow] = Field(description="accuracy per epsilon")
    history: list[list[Number | None]] = Field(
        description="[queries, median distance] pairs; the distance is null while fewer than half are fooled"
    )
    wall_s: Number | None = Field(None, description="wall time of the attack")
    artifact_sha256: str | None = Field(None, description="the artifact attacked")


class Gate(_Model):
    """One budget compared with its measured value (``report/gates.py``)."""

    name: str = Field(description="gate name (GATES)")
    value: Number | None = Field(description="measured value (null: unmeasured)")
    threshold: Number = Field(description="the budget's ceiling (`max_*`) or floor (`min_*`)")
    status: Literal["pass", "fail", "inconclusive", "unmeasured"] = Field(
        description="pass when value ≤ a ceiling (≥ a floor); for accuracies and drops judged with their 95 % "
        "interval: pass when the whole interval is within the budget, fail when it is all beyond, else "
        "inconclusive; unmeasured also when the value is only a bound, or passes on an unstable measurement "
        "whose slowest iteration does not"
    )
    ci95: Interval | None = Field(None, description="the value's 95 % interval, where the gate judges with one")
    images: int | None = Field(None, description="the images the value rests on")
    images_to_decide: int | None = Field(
        None, description="inconclusive: about how many images would make the interval clear the budget"
    )
    unstable: bool | None = Field(
        None, description="true when the value comes from an unstable measurement (latency CV above 10 %)"
    )
    detail: str | None = Field(None, description="one line for the reports")


class Caveat(_Model):
    """Something the verdict rests on that a user should see before trusting it (``report/gates.py`` CAVEATS)."""

    kind: Literal["unstable", "sanity", "chance"] = Field(
        description="unstable: the gated latency's CV is above 10 %; sanity: a robustness sanity check warns "
        "(possible gradient masking); chance: this candidate's or the base's clean accuracy is within its 95 % "
        "interval of chance (1 / classes)"
    )
    label: str = Field(description="a few words, shown beside the verdict")
    detail: str = Field(description="one line with the numbers")


class Verdict(_Model):
    """The verdict of one candidate on one device."""

    status: Literal["READY", "NOT READY", "INCONCLUSIVE", "UNMEASURED"] = Field(
        description="NOT READY if a gate fails, else UNMEASURED if one is unmeasured, else INCONCLUSIVE if one is "
        "inconclusive, else READY"
    )
    gates: list[Gate] = Field(description="one per budget that is set")
    reason: str | None = Field(None, description="only when the measurements were skipped on purpose")
    caveats: list[Caveat] | None = Field(
        None,
        description="what the verdict rests on that should give a user pause (empty: nothing); absent only in "
        "files assembled before caveats existed, whose verdicts the report judges again",
    )


class Adaptive(_Model):
    """Adaptive sampling (`attacks.adaptive`) on one candidate x device whose verdict was INCONCLUSIVE:
    evaluation images no stage had attacked, added in rounds to its worst case (`study/adaptive.py`)."""

    images_before: int = Field(description="images its robustness gate rested on before adaptive sampling")
    images: int = Field(description="images it rests on now (the worst case's common images)")
    added: int = Field(description="images adaptive sampling added")
    rounds: int = Field(description="rounds that added images to it")
    cap: int = Field(
        description="the most images it may rest on: attacks.adaptive_max_images, else every evaluation image"
    )
    outcome: Literal["decided", "cap", "accuracy", "stopped"] = Field(
        description="decided: the verdict is no longer INCONCLUSIVE; cap: it still is, on the most images it may "
        "rest on; accuracy: only an accuracy gate is undecided, and those rest on every evaluation image already; "
        "stopped: no image could be added (detail says why)"
    )
    detail: str = Field(description="one line for the reports")


class DeviceEntry(_Model):
    """One candidate on one device."""

    unmeasured_reason: str | None = Field(None, description="why the measurements were skipped, when they were")
    whitebox_unmeasured_reason: str | None = Field(
        None, description="why no white-box set could be crafted on this candidate (no PyTorch model of its artifact)"
    )
    latency_ms: LatencyStats | None = Field(description="batch 1, end-to-end (host arrays in and out)")
    latency_compute_ms: LatencyStats | None = Field(None, description="batch 1, engine only")
    throughput_ips: Number | None = Field(None, description="best items/s over the batch sweep")
    batch_sweep: list[BatchRun] | None = Field(None, description="every batch x mode run")
    memory_mb: Memory | None = Field(description="resident memory of the agent")
    telemetry: dict[str, Any] | None = Field(None, description="the sampler's summary of the whole session")
    op_profile: list[OpRow] | None = Field(None, description="top operators by time")
    roofline: Roofline | None = Field(None, description="achieved vs peak")
    load_time_s: Number | None = Field(None, description="artifact load time")
    cold_start: ColdStart | None = Field(None, description="the first inferences after load")
    energy: Energy | None = Field(None, description="batch 1 end-to-end energy")
    speedup: Speedup | None = Field(None, description="batch 1 end-to-end speed-up over base (interleaved timing)")
    timing_pass: TimingPass | None = Field(None, description="the interleaved pass its latency comes from")
    environment: dict[str, Any] | None = Field(None, description="the agent's environment and runtime")
    clean_accuracy: Number | None = Field(description="accuracy of the deployed artifact on the device")
    clean_accuracy_ci95: Interval | None = Field(None, description="95 % Wilson interval")
    eval_count: int | None = Field(None, description="evaluation images")
    clean_pairs: Pairs | None = Field(
        None, description="base (same device) vs this candidate, right or wrong per evaluation image"
    )
    fidelity: Fidelity | None = Field(None, description="logits vs the base's PyTorch logits")
    robustness: list[RobustnessRow] = Field(description="transfer rows, then white-box rows, then divergence rows")
    robust_accuracy: list[RobustAccuracy] | None = Field(
        None, description="per norm and epsilon, the per-image worst case over every attack (the ensemble)"
    )
    robustness_auc: dict[str, Number | None] | None = Field(
        None, description="normalized area under accuracy-vs-eps per `<attack>-<norm>`"
    )
    surrogate: Surrogate | None = Field(None, description="the white-box attacker's model of the artifact")
    sanity: list[SanityCheck] | None = Field(None, description="gradient-masking checks")
    blackbox: Blackbox | None = Field(None, description="decision-based attack (blackbox.enabled)")
    blackbox_square: Blackbox | None = Field(None, description="Square on the engine's logits (blackbox.square)")
    adaptive: Adaptive | None = Field(
        None, description="adaptive sampling's images for this verdict (attacks.adaptive; only where it was undecided)"
    )
    verdict: Verdict | None = Field(
        None,
        description="made once when results.json is assembled (report/gates.py with_verdicts); the report reads it",
    )

    def worst_case(self, set_id: str) -> RobustAccuracy | None:
        """The ``robust_accuracy`` row at the norm and epsilon of *set_id* (``pgd-linf-8`` ->
        ``worst-linf-8``): what a robustness gate budgeted on a set judges, over every attack."""
        parts = set_id.split(":")[-1].rsplit("-", 2)
        if len(parts) != 3:
            return None
        wanted = f"worst-{parts[1]}-{parts[2]}"
        return next((r for r in self.robust_accuracy or [] if r.id == wanted), None)


# --------------------------------------------------------------------------- candidates


class EngineRecipe(_Model):
    """The engine a candidate is deployed on, when it is not ONNX Runtime."""

    name: str = Field(description="engine name (tensorrt)")
    precision: str | None = Field(description="precision the engine builds")
    builder: str | None = Field(description="tensorrt: `api` (default) or `trtexec`")


class Recipe(_Model):
    """How a candidate was made: every option, defaults resolved (``null``: step not applied)."""

    prune: dict[str, Any] | None = Field(description="pruning options")
    quantize: dict[str, Any] | None = Field(description="quantization options")
    parent: str | None = Field(None, description="the candidate it was derived from")
    engine: EngineRecipe | None = Field(None, description="its engine, when not ONNX Runtime")


class ArtifactInput(_Model):
    """The artifact's input tensor."""

    name: str = Field(description="input name")
    shape: list[int | str] = Field(description="dimensions; 'batch' where dynamic")
    dtype: str = Field(description="element type")


class Artifact(_Model):
    """The deployed file."""

    path: str = Field(description="relative to the run folder")
    sha256: str = Field(description="content hash")
    size_bytes: int = Field(description="file size")
    format: str = Field(description="onnx")
    precision: str = Field(description="fp32 or int8")
    opset: int | None = Field(None, description="ONNX opset")
    input: ArtifactInput | None = Field(None, description="its input tensor")
    output: Literal["logits", "probabilities", "log-probabilities"] | None = Field(
        None,
        description="what the artifact returns: a model ending in Softmax returns probabilities (attacked as their "
        "log); candidates exported from its PyTorch module return log-probabilities (same ranking)",
    )


class ExportCheck(_Model):
    """The exported artifact checked against PyTorch (``export/onnx.py``)."""

    onnx_checker: str = Field(description="passed")
    max_abs_diff: Number | None = Field(description="fp32: largest logit difference (null for int8)")
    top1_agreement: Number | None = Field(description="on this host's ONNX Runtime kernels")
    count: int = Field(description="images compared")
    qdq_reference_top1_agreement: Number | None = Field(None, description="int8: on the exact QDQ arithmetic")
    against_source: dict[str, Any] | None = Field(None, description="base from a user ONNX file: vs that file")


class Int8TopLayer(_Model):
    """A layer whose INT8 error grows most under one adversarial set."""

    tensor: str = Field(description="tensor name")
    sqnr_clean_db: Number = Field(description="SQNR on clean inputs")
    sqnr_adv_db: Number = Field(description="SQNR on adversarial inputs")
    drop_db: Number = Field(description="clean minus adversarial")


class Int8Set(_Model):
    """INT8 error under one adversarial set."""

    count: int = Field(description="images")
    top_layers: list[Int8TopLayer] = Field(description="largest SQNR drops")


class Int8Error(_Model):
    """fp32 vs INT8 activations per layer, clean vs adversarial (``robustness/int8_error.py``)."""

    metric: str | None = Field(None, description="what the numbers are")
    count_clean: int | None = Field(None, description="clean images")
    layers: list[dict[str, str | Number | None]] = Field(
        description="per shared tensor: `tensor`, `sqnr_clean_db` and `sqnr_<set>_db` per set"
    )
    sets: dict[str, Int8Set] = Field(description="per set (`whitebox:<id>`, `transfer:<id>`)")
    note: str | None = Field(None, description="why there are no layers")
    artifact_sha256: str | None = Field(None, description="the INT8 artifact")
    set: str | None = Field(None, description="the adversarial set used")


class Candidate(_Model):
    """One candidate: how it was made, its artifact, and its results per device."""

    name: str = Field(description="candidate name")
    recipe: Recipe = Field(description="how it was made")
    artifact: Artifact | None = Field(description="null until built")
    skipped: str | None = Field(None, description="why it could not be built (its verdict: UNMEASURED)")
    params: int | None = Field(None, description="parameters of the PyTorch module")
    nonzero_params: int | None = Field(None, description="differs from params after unstructured pruning")
    macs: int | None = Field(None, description="multiply-accumulates per image")
    export_check: ExportCheck | None = Field(None, description="ONNX vs PyTorch")
    int8_error: Int8Error | None = Field(None, description="INT8 candidates: per-layer error")
    pruning: dict[str, Any] | None = Field(
        None,
        description="pruned candidates: params and MACs before/after, the ratio reached, the layers left whole and "
        "why (compress/prune.py PruneOutcome); `finetune_note` when accuracy fell 10 points or more with fewer "
        "fine-tuning epochs than the data size suggests",
    )
    accuracy_control: dict[str, Any] | None = Field(
        None,
        description="INT8 with max_accuracy_drop: nodes kept in float, accuracy and latency at each step "
        "(compress/accuracy_control.py AccuracyControlResult)",
    )
    devices: dict[str, DeviceEntry] = Field(description="results per device name")


# --------------------------------------------------------------------------- run-level records


class Attack(_Model):
    """An adversarial set crafted on the base (``robustness/store.py``)."""

    id: str = Field(description="`<attack>-<norm>-<eps*255>` or `<attack>-<norm>-min`")
    attack: str = Field(description="attack name")
    norm: str = Field(description="linf or l2")
    eps: Number | None = Field(description="perturbation budget (null: minimal perturbation)")
    count: int = Field(description="images")
    base_accuracy: Number | None = Field(description="the base's accuracy on the set")
    base_clean_accuracy: Number | None = Field(None, description="the base's accuracy on the same clean images")
    path: str = Field(description="the .npz, relative to the run folder")
    params: dict[str, Any] = Field(description="the attack's parameters")
    median_distance: Number | None = Field(None, description="minimal-perturbation sets only")
    success_rate: Number | None = Field(None, description="minimal-perturbation sets only")


class Device(_Model):
    """A device of the run."""

    name: str = Field(description="inventory name")
    kind: str | None = Field(description="local or ssh (null: not in the inventory)")
    profile: dict[str, Any] = Field(description="the device profile (peak, bandwidth, runtimes)")


class HostDevice(_Model):
    """Where the host's own PyTorch work ran (the study's ``host.device``, resolved on the host)."""

    requested: str = Field(description="the study's host.device: auto, cpu, cuda or cuda:N")
    device: str = Field(description="the torch device it resolved to: cpu or cuda:N")
    name: str | None = Field(None, description="the GPU's name (CUDA only)")
    cuda: str | None = Field(None, description="the CUDA version torch was built with (CUDA only)")
    earlier: list[str] | None = Field(
        None, description="devices earlier runs in this run folder used, when a resumed run used another"
    )


class Environment(_Model):
    """The host that compressed, exported and attacked."""

    host: dict[str, Any] = Field(description="hostname, os, cpu, python, ...")
    versions: dict[str, str | None] = Field(description="package versions")
    git_revision: str | None = Field(description="edgebench's git revision, when known")
    host_device: HostDevice | None = Field(
        None,
        description="where fine-tuning, importance gradients, attack crafting and white-box surrogates ran "
        "(absent: no host torch work in this run folder yet, or a run older than the field)",
    )


class Subject(_Model):
    """The base model and its data (``subject/zoo.py``)."""

    model: str = Field(description="model label")
    dataset: str = Field(description="dataset name")
    num_classes: int = Field(description="classes")
    input_shape: list[int] = Field(description="batch-1 input shape")
    eval_count: int = Field(description="evaluation images")
    calib_count: int = Field(description="calibration images")
    train_count: int | None = Field(None, description="training images")
    data_sources: dict[str, Any] | None = Field(None, description="how the splits were drawn")
    source: dict[str, Any] | None = Field(None, description="where the model came from, files with sha256")
    weights: str | None = Field(None, description="where the weights came from")
    base_accuracy_torch: Number | None = Field(None, description="the base in PyTorch on the host")
    base_accuracy_by: str | None = Field(None, description="what computed base_accuracy_torch when not PyTorch")
    torch_unavailable: str | None = Field(
        None, description="why no PyTorch module of the model exists: the stages that need one are UNMEASURED"
    )
    attack_count: int | None = Field(None, description="images each transfer set is crafted on")


class TrialScreen(_Model):
    """A search trial's host screen (ONNX Runtime)."""

    clean_accuracy: Number = Field(description="clean accuracy on the host")
    robust_accuracy: Number | None = Field(description="mean over the adversarial sets")
    macs: int | None = Field(description="multiply-accumulates per image")
    size_bytes: int = Field(description="artifact size")


class Trial(_Model):
    """One search trial."""

    number: int = Field(description="Optuna trial number")
    name: str = Field(description="its candidate name")
    params: dict[str, Any] = Field(description="the searched dimensions")
    screen: TrialScreen = Field(description="host screen")
    constraints: list[Number] = Field(description="each ≤ 0 when feasible")
    feasible: bool = Field(description="every constraint met")
    measured: bool = Field(description="measured on a device")


class ParetoPoint(_Model):
    """A candidate on a device's Pareto front."""

    candidate: str = Field(description="candidate name")
    p99_ms: Number = Field(description="p99 latency")
    clean_accuracy: Number = Field(description="clean accuracy")
    robust_accuracy: Number | None = Field(description="mean transfer accuracy")
    peak_memory_mb: Number | None = Field(description="peak memory")
    status: str | None = Field(description="its verdict")


class Recommended(_Model):
    """The fastest READY candidate on a device."""

    candidate: str = Field(description="candidate name")
    p99_ms: Number = Field(description="its p99 latency")
    margins: dict[str, Number] = Field(description="ceiling minus value per gate")


class Closest(_Model):
    """When no trial is READY: the measured candidate that misses the budgets least."""

    candidate: str = Field(description="candidate name")
    misses: list[str] = Field(description="gates that fail or are unmeasured")
    excess: Number = Field(description="summed relative excess")
    margins: dict[str, Number] = Field(description="ceiling minus value per gate")


class Search(_Model):
    """``edgebench search``: trials, Pareto front, recommendation (``search/record.py``)."""

    trials: list[Trial] = Field(description="every trial, screened on the host")
    survivors: list[str] = Field(description="the trials measured on the devices")
    base_screen: TrialScreen | None = Field(None, description="the base's host screen")
    pareto: dict[str, list[ParetoPoint]] = Field(description="per device")
    recommended: dict[str, Recommended | None] = Field(description="per device")
    closest: dict[str, Closest | None] = Field(
        description="per device, when no trial is READY: the measured candidate that misses the budgets by the least"
    )


class SeedStat(_Model):
    """One metric of one candidate over the study's seeds (``study/seeds.py``)."""

    candidate: str = Field(description="candidate name")
    key: str = Field(description="`clean`, `sparsity`, or `<setting>:<set id>:accuracy|median_distance|both_correct`")
    metric: str = Field(description="what it is, in words")
    values: list[Number | None] = Field(description="one per seed, in `seeds` order (null: not measured)")
    n: int = Field(description="seeds with a value")
    mean: Number | None = Field(description="mean of the values")
    std: Number | None = Field(description="sample standard deviation (n - 1); null below 2 values")
    min: Number | None = Field(description="smallest value")
    max: Number | None = Field(description="largest value")


class Seeds(_Model):
    """A study run once per seed: where each run is, and every metric's spread over them."""

    seeds: list[int] = Field(description="the seeds, in run order")
    runs: list[str] = Field(description="each seed's run folder, relative to this one")
    device: str = Field(description="the device the metrics are read on")
    stats: list[SeedStat] = Field(description="per candidate and metric")


class Results(_Model):
    """``results.json``: the one file every report is made from."""

    schema_: Literal["edgebench.results/1"] = Field(alias="schema", description=f"always {SCHEMA!r}")
    run_id: str = Field(description="folder name under reports/")
    created: str = Field(description="UTC time of assembly, ISO 8601")
    study: dict[str, Any] = Field(description="the validated study config, echoed")
    environment: Environment = Field(description="the host that compressed, exported, attacked")
    subject: Subject = Field(description="the base model and data")
    budgets: dict[str, Number | None] = Field(description="ceilings per gate (null: no gate)")
    attacks: list[Attack] = Field(description="adversarial sets crafted on the base")
    devices: dict[str, Device] = Field(description="the run's devices by name")
    candidates: list[Candidate] = Field(description="in study order")
    search: Search | None = Field(None, description="edgebench search only")
    seeds: Seeds | None = Field(None, description="studies with `seeds:` only: the spread over the seeds' runs")

    model_config = ConfigDict(populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """The JSON object, with exactly the keys that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --------------------------------------------------------------------------- validation


def validate_results(data: Any, source: str = "results.json") -> Results:
    """*data* (a parsed results.json) as :class:`Results`.

    Raises :class:`EdgebenchError` with one line ``<source>: <path>: expected ..., found ...``
    for a file this version cannot read."""
    if not isinstance(data, dict):
        raise EdgebenchError(f"{source}: expected a JSON object, found {found(data)}")
    if data.get("schema") != SCHEMA:
        raise EdgebenchError(f"{source}: expected schema {SCHEMA!r}, found {found(data.get('schema'))}")
    try:
        return Results.model_validate(data)
    except ValidationError as err:
        raise EdgebenchError(f"{source}: {one_line(err, data=data, model=Results)}") from None


def as_results(data: Results | Any, source: str = "results.json") -> Results:
    """*data* itself when it is a :class:`Results` already, else :func:`validate_results` of it."""
    return data if isinstance(data, Results) else validate_results(data, source)


# --------------------------------------------------------------------------- docs/results.md

DOC_BEGIN = "<!-- generated: results schema -->"
DOC_END = "<!-- end generated -->"
DOCS = Path(__file__).resolve().parent.parent / "docs"
REGENERATE = "python -m edgebench.results --write"


def _type_name(tp: Any) -> str:
    """A field type in words, models as links to their section."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    if origin in (Union, types.UnionType):
        if set(args) == {float, int}:
            return "number"
        members = [a for a in args if a is not type(None)]
        words = " or ".join(_type_name(a) for a in members)
        return f"{words} or null" if len(members) < len(args) else words
    if origin is Literal:
        return " or ".join(f'`"{a}"`' for a in args)
    if origin in (list, dict):
        if origin is dict and args[1] is Any:
            return "object"
        inner = _type_name(args[-1])
        return f"{'list' if origin is list else 'object'} of {f'({inner})' if ' or ' in inner else inner}"
    return {str: "string", int: "integer", bool: "boolean", float: "number"}.get(tp, str(tp))


def _models(model: type[BaseModel] = Results, found: list[type[BaseModel]] | None = None) -> list[type[BaseModel]]:
    """Every model reachable from *model*, depth first in field order, each once."""
    found = [] if found is None else found
    found.append(model)
    for field in model.model_fields.values():
        pending = [field.annotation]
        while pending:
            tp = pending.pop(0)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if tp not in found:
                    _models(tp, found)
            else:
                pending.extend(typing.get_args(tp))
    return found


def markdown_reference() -> str:
    """The field reference of docs/results.md: one table per model (name, type, presence, description)."""
    lines: list[str] = []
    for model in _models():
        doc = " ".join((model.__doc__ or "").split())
        lines += [f"### {model.__name__}", "", doc, "", "| field | type | present | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            present = "always" if field.is_required() else "when it applies"
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{field.alias or name}` | {_type_name(field.annotation)} | {present} | {desc} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def json_schema() -> str:
    """``docs/results.schema.json``: the JSON Schema of :class:`Results`, for other tools' CI."""
    return json.dumps(Results.model_json_schema(by_alias=True), indent=2) + "\n"


def document(text: str) -> str:
    """*text* (docs/results.md) with the generated reference between its markers replaced."""
    head, sep, rest = text.partition(DOC_BEGIN)
    _, sep2, tail = rest.partition(DOC_END)
    if not sep or not sep2:
        raise EdgebenchError(f"docs/results.md: expected the markers {DOC_BEGIN} and {DOC_END}, found none")
    return f"{head}{DOC_BEGIN}\n\n{markdown_reference()}\n{DOC_END}{tail}"


def write_docs(docs: Path = DOCS) -> None:
    """Regenerate the reference in ``docs/results.md`` and ``docs/results.schema.json``."""
    md = docs / "results.md"
    md.write_text(document(md.read_text()))
    (docs / "results.schema.json").write_text(json_schema())
    log.info("wrote %s and %s", md, docs / "results.schema.json")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_docs()
    elif sys.argv[1:] in ([], ["--markdown"]):
        sys.stdout.write(markdown_reference())
    else:
        sys.exit(
            f"usage: python -m edgebench.results [--markdown | --write]  (--write: {DOCS}/results.md and results.schema.json)"
        )
