"""The measurement stage: every measurement of a candidate on an open device, through the
agent (profile, replay of the transfer sets, replay of its white-box sets, black-box attacks on
the engine itself), each written to the run folder as it finishes and skipped when on disk."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent.protocol import InputSet, PredictJob, ProfileJob, RoundsEntry, RoundsJob, SessionJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.export.to_torch import as_log_probabilities
from edgebench.measure.speedup import pass_drift, with_speedups
from edgebench.study.attack import craft_whitebox
from edgebench.study.context import AttackSetRef, Built, Measured, RunContext
from edgebench.study.engines import PREDICT_BATCH, apply_engine, clear_skips, record_skips, skip_reason

log = logging.getLogger(__name__)


def measure_devices(run: RunContext, devices: list, built: list[Built], attack_sets: list[AttackSetRef]) -> None:
    """White-box sets first (:func:`craft_whitebox`), then every candidate on every device, each
    device in its own thread (at most ``profile.max_parallel_devices`` at once); results.json
    once per device pass."""
    from edgebench.devices.registry import open_device

    errors: list[BaseException] = []

    craft_whitebox(run, built)

    def work(spec: Any) -> None:
        started = time.perf_counter()
        device = None
        try:
            with open_device(spec) as device:
                for b in built:
                    measure_candidate(run, device, spec, b, attack_sets)
                time_rounds(run, device, built)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)
        finally:
            # results.json once per device pass (measurement files are already on disk)
            with run.lock:
                run.write_results()
                loop_s = time.perf_counter() - started
                agent_s = device.job_seconds if device is not None else 0.0
                run.timing[spec.name] = {"loop_s": loop_s, "agent_jobs_s": agent_s}
            log.info("%s: measurement loop %.2f s, %.2f s of it in agent jobs", spec.name, loop_s, agent_s)

    per = 2 + int(run.config.blackbox.enabled) + int("whitebox" in run.config.attacks.settings)
    total = len(devices) * len(built) * per
    run.ui("task", {"id": "measure", "text": f"measure on {', '.join(d.name for d in devices)}", "total": total})
    limit = max(1, run.config.profile.max_parallel_devices)
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
    run.ui("done", {"id": "measure"})
    if errors:
        raise errors[0]


def measurement_kinds(run: RunContext) -> list[str]:
    """The measurements :func:`measure_candidate` makes of every candidate on every device, by the
    study's settings (with ``profile.interleave`` its profile is the own-process part; the
    timing pass, :func:`time_rounds`, completes it)."""
    from edgebench.study.whitebox import REPLAY_KIND

    cfg = run.config
    profile = SOLO_KIND if cfg.profile.interleave else "profile"
    kinds = [profile, "replay"] + (["blackbox"] if cfg.blackbox.enabled else [])
    return kinds + ([REPLAY_KIND] if "whitebox" in cfg.attacks.settings else [])


def measure_candidate(
    run: RunContext, device: Any, spec: Any, b: Built, attack_sets: list[AttackSetRef], replays_only: bool = False
) -> Measured:
    """Every measurement of candidate *b* on the open *device* (each skipped if on disk); what
    was measured now. *replays_only*: the clean, transfer, white-box and divergence replays alone
    (adaptive sampling's rounds: more images, nothing to profile)."""
    reason = b.manifest.get("skipped") or skip_reason(b.config, spec)  # not built; tensorrt without it
    if reason is not None:
        _skip(run, device, b, reason)
        return Measured(b.name, device.name, (), reason)
    kinds = measurement_kinds(run)
    before = {k for k in kinds if run.store.has(b.name, device.name, k)}
    clear_skips(run.store, b.config.name, device.name)
    if not replays_only:
        _profile(run, device, b)
    _replay(run, device, b, attack_sets)
    if "whitebox" in run.config.attacks.settings:
        _replay_whitebox(run, device, b)
        _replay_divergence(run, device, b)
    if run.config.blackbox.enabled and not replays_only:
        _blackbox(run, device, b)
    return Measured(
        b.name, device.name, tuple(k for k in kinds if k not in before and run.store.has(b.name, device.name, k))
    )


def _job_common(run: RunContext, b: Built) -> SessionJob:
    """What every job on candidate *b* shares: its artifact in the engine that runs it (and, as
    is, the query session of the black-box attacks)."""
    p = run.config.profile
    options = BackendOptions(threads=p.threads, device="cpu", precision=b.manifest["artifact"]["precision"])
    job = SessionJob(artifact=str(run.run_dir / b.manifest["artifact"]["path"]), options=options)
    return apply_engine(job, b.config, p.batches)


def _predict_job(run: RunContext, b: Built, sets: list[InputSet], logits_path: Path) -> PredictJob:
    """Every set in *sets* through candidate *b*; logits to *logits_path*."""
    common = _job_common(run, b)
    return PredictJob(
        artifact=common.artifact,
        backend=common.backend,
        options=common.options,
        sets=tuple(sets),
        batch=_fixed_batch(b) or PREDICT_BATCH,
        logits=str(logits_path),
    )


def _skip(run: RunContext, device: Any, b: Built, reason: str) -> None:
    """Record every measurement of *b* on *device* as skipped (its verdict: UNMEASURED)."""
    kinds = ["profile", "replay"] + (["blackbox"] if run.config.blackbox.enabled else [])
    run.ui("status", {"text": f"{device.name}: skipping {b.config.name}: {reason}"})
    sha = (b.manifest.get("artifact") or {}).get("sha256")
    record_skips(run.store, b.config.name, device.name, kinds, reason, sha)
    for _ in kinds:
        run.ui("advance", {"id": "measure"})


SOLO_KIND = "profile-solo"  # interleaved profiles: load, memory, cold start, operators (no timing)


def _profile(run: RunContext, device: Any, b: Built) -> None:
    """Profile *b*; with ``profile.interleave`` only what needs a fresh process of its own (load,
    memory, cold start, operator profile): latency comes from :func:`time_rounds`."""
    name = b.config.name
    p = run.config.profile
    kind = SOLO_KIND if p.interleave else "profile"
    if run.store.has(name, device.name, "profile") or run.store.has(name, device.name, kind):
        run.ui("advance", {"id": "measure"})
        return
    common = _job_common(run, b)
    job = ProfileJob(
        artifact=common.artifact,
        backend=common.backend,
        options=dataclasses.replace(common.options, profile_ops=p.profile_ops),
        inputs=str(run.store.data_path("eval")),
        batches=_job_batches(b, p.batches),
        modes=tuple(p.modes),
        budget=TimingBudget(**p.budget()),
        telemetry=p.telemetry,
        timed=not p.interleave,
    )
    what = "memory and cold start of" if p.interleave else "profiling"
    run.ui("status", {"text": f"{device.name}: {what} {name}"})
    result = device.run_job(job)
    result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
    run.store.save(name, device.name, kind, result)
    run.ui("advance", {"id": "measure"})


def time_rounds(run: RunContext, device: Any, built: list[Built]) -> list[str]:
    """The interleaved timing pass on one device: every candidate whose profile is not on disk
    yet, with base as the reference, timed in ``profile.rounds`` rotating rounds in one agent
    job (:class:`~edgebench.agent.protocol.RoundsJob`); each profile is then its solo record
    (memory, cold start) plus its pooled latency, per-round medians, its speed-up over base from
    the paired rounds and the pass's drift check. Returns the candidates written."""
    p = run.config.profile
    if not p.interleave:
        return []
    ready = [b for b in built if not (b.manifest.get("skipped") or skip_reason(b.config, device.spec))]
    todo = [b for b in ready if not run.store.has(b.name, device.name, "profile")]
    if not todo:
        return []
    base = next((b for b in ready if b.is_base), None)
    timed = ([base] if base is not None and base not in todo else []) + todo
    entries = []
    for b in timed:
        common = _job_common(run, b)
        entries.append(RoundsEntry(b.name, common.artifact, common.backend, common.options, _job_batches(b, p.batches)))
    job = RoundsJob(
        entries=tuple(entries),
        inputs=str(run.store.data_path("eval")),
        modes=tuple(p.modes),
        budget=TimingBudget(**p.budget()),
        rounds=p.rounds,
        sessions=p.sessions,
        telemetry=p.telemetry,
    )
    run.ui(
        "status",
        {"text": f"{device.name}: timing {', '.join(b.name for b in timed)} in {p.rounds} interleaved rounds"},
    )
    result = device.run_job(job)
    models = result["models"]
    base_runs = models[base.name]["runs"] if base is not None else []
    pass_info = {
        "rounds": p.rounds,
        "models": [b.name for b in timed],
        "sessions": result.get("sessions"),
        "segment_budget": result.get("segment_budget"),
        "round_meta": result.get("rounds"),
        "drift": pass_drift(base_runs, result.get("rounds") or []),
        "finished": time.time(),
    }
    written = []
    for b in todo:
        solo = run.store.load(b.name, device.name, SOLO_KIND) or {}
        record = {k: v for k, v in solo.items() if k not in ("runs", "window_s")}
        record["runs"] = with_speedups(models[b.name]["runs"], None if base is None or b.is_base else base_runs)
        record["telemetry"] = result.get("telemetry")
        record["interleaved"] = pass_info
        record["environment"] = result.get("environment")
        record["runtime"] = models[b.name].get("runtime") or solo.get("runtime")
        record["artifact_sha256"] = b.manifest["artifact"]["sha256"]
        run.store.save(b.name, device.name, "profile", record)
        written.append(b.name)
    if pass_info["drift"] and pass_info["drift"]["drifted"]:
        d = pass_info["drift"]
        run.ui(
            "status",
            {
                "text": f"{device.name}: warning: the device changed state during the timing pass (base "
                f"{d['first_p50_ms']:.3g} ms in its first rounds, {d['last_p50_ms']:.3g} ms in its last: "
                f"{d['change']:+.0%}); speed-ups are paired by round, absolute latencies drifted"
            },
        )
    return written


def _replay(run: RunContext, device: Any, b: Built, attack_sets: list[AttackSetRef]) -> None:
    name = b.config.name
    if run.store.has(name, device.name, "replay"):
        run.ui("advance", {"id": "measure"})
        return
    sets = [InputSet("clean", str(run.store.data_path("eval")))]
    is_base = b.is_base  # base sets are white-box for base
    if "transfer" in run.config.attacks.settings or is_base:
        sets += [InputSet(s.id, str(run.run_dir / s.path)) for s in attack_sets]
    logits_path = run.store.measurement_path(name, device.name, "replay").with_name("logits.npz")
    job = _predict_job(run, b, sets, logits_path)
    run.ui("status", {"text": f"{device.name}: replaying {len(sets) - 1} adversarial sets through {name}"})
    result = device.run_job(job)
    from edgebench.robustness.metrics import fidelity

    with np.load(logits_path, allow_pickle=False) as d:
        clean_logits = d["clean"]
    if _returns_probabilities(b):  # base logits are log-probabilities for such a model
        clean_logits = as_log_probabilities(clean_logits)
    result["fidelity"] = fidelity(run.arrays("base_logits")["logits"], clean_logits)
    result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
    run.store.save(name, device.name, "replay", result)
    run.ui("advance", {"id": "measure"})


def _replay_whitebox(run: RunContext, device: Any, b: Built) -> None:
    from edgebench.study.whitebox import REPLAY_KIND, replay_sets

    name = b.config.name
    if run.store.has(name, device.name, REPLAY_KIND):
        run.ui("advance", {"id": "measure"})
        return
    logits_path = run.store.measurement_path(name, device.name, REPLAY_KIND).with_name("logits-whitebox.npz")
    sets = replay_sets(run.store, name)
    if not sets:  # no surrogate could be made (its reason is in the white-box record)
        run.ui("advance", {"id": "measure"})
        return
    job = _predict_job(run, b, sets, logits_path)
    run.ui("status", {"text": f"{device.name}: replaying {len(sets)} white-box sets through {name}"})
    result = device.run_job(job)
    result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
    run.store.save(name, device.name, REPLAY_KIND, result)
    run.ui("advance", {"id": "measure"})


def _replay_divergence(run: RunContext, device: Any, b: Built) -> None:
    """The base's deployed engine on candidate *b*'s divergence sets (diva): whether the base is
    right on the same adversarial inputs the candidate gets wrong."""
    from edgebench.study.whitebox import DIVERGENCE_KIND, divergence_sets

    sets = [] if b.is_base else divergence_sets(run.store, b.name)
    base_cfg = next((c for c in run.config.candidates if c.prune is None and c.quantize is None), None)
    if not sets or base_cfg is None or run.store.has(b.name, device.name, DIVERGENCE_KIND):
        return
    manifest = run.store.read_json(str(run.store.manifest_path(base_cfg.name).relative_to(run.store.root)))
    base = Built(base_cfg, manifest or {})
    if not base.artifact or base.skipped or skip_reason(base.config, device.spec):
        return
    logits_path = run.store.measurement_path(b.name, device.name, DIVERGENCE_KIND).with_name("logits-divergence.npz")
    run.ui("status", {"text": f"{device.name}: replaying {b.name}'s {len(sets)} divergence sets through base"})
    result = device.run_job(_predict_job(run, base, sets, logits_path))
    result["artifact_sha256"] = base.artifact["sha256"]
    run.store.save(b.name, device.name, DIVERGENCE_KIND, result)


def _blackbox(run: RunContext, device: Any, b: Built) -> None:
    """HopSkipJump/Boundary (and Square, if configured) against the deployed artifact
    itself, queries through the agent."""
    cfg = run.config.blackbox
    _blackbox_one(run, device, b, "blackbox", cfg.spec())
    if cfg.square is not None:
        _blackbox_one(run, device, b, "blackbox-square", cfg.square, advance=False)


def _blackbox_one(run: RunContext, device: Any, b: Built, kind: str, spec: Any, advance: bool = True) -> None:
    from edgebench.robustness.blackbox import run_blackbox

    name = b.config.name
    if run.store.has(name, device.name, kind):
        if advance:
            run.ui("advance", {"id": "measure"})
        return
    cfg = run.config.blackbox
    data = run.arrays("eval")
    x, y = data["x"], data["y"]
    n, pool = cfg.samples, cfg.pool
    run.ui(
        "status",
        {
            "text": f"{device.name}: {spec.name} black-box attack on {name} ({n} images, "
            f"{spec.max_queries} queries each, through the agent)"
        },
    )
    job = _job_common(run, b)
    t0 = time.perf_counter()
    with device.open_session(job) as session:
        query = session.query
        if _returns_probabilities(b):  # score-based attacks take log-probabilities

            def query(xs: np.ndarray, _q: Any = session.query) -> np.ndarray:
                return as_log_probabilities(_q(xs))

        res = run_blackbox(
            query,
            x[:n],
            y[:n],
            spec,
            pool_x=x[n : n + pool],
            pool_y=y[n : n + pool],
            indices=np.arange(n),
            seed=run.config.seed,
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
    run.store.save(name, device.name, kind, out)
    if advance:
        run.ui("advance", {"id": "measure"})


def _fixed_batch(b: Built) -> int | None:
    """The batch size a user's graph is fixed at (None: dynamic): its jobs run at that batch only."""
    shape = ((b.manifest.get("artifact") or {}).get("input") or {}).get("shape") or ["batch"]
    return shape[0] if isinstance(shape[0], int) else None


def _job_batches(b: Built, batches: Any) -> tuple[int, ...]:
    fixed = _fixed_batch(b)
    return (fixed,) if fixed else tuple(batches)


def _returns_probabilities(b: Built) -> bool:
    return (b.manifest.get("artifact") or {}).get("output") == "probabilities"


__all__ = ["measure_candidate", "measure_devices", "measurement_kinds", "time_rounds"]
