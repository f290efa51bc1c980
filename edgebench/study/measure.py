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

from edgebench.agent.protocol import InputSet, PredictJob, ProfileJob, SessionJob
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.export.to_torch import as_log_probabilities
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
    """The measurements every candidate gets on every device, by the study's settings."""
    from edgebench.study.whitebox import REPLAY_KIND

    cfg = run.config
    kinds = ["profile", "replay"] + (["blackbox"] if cfg.blackbox.enabled else [])
    return kinds + ([REPLAY_KIND] if "whitebox" in cfg.attacks.settings else [])


def measure_candidate(run: RunContext, device: Any, spec: Any, b: Built, attack_sets: list[AttackSetRef]) -> Measured:
    """Every measurement of candidate *b* on the open *device* (each skipped if on disk); what
    was measured now."""
    reason = b.manifest.get("skipped") or skip_reason(b.config, spec)  # not built; tensorrt without it
    if reason is not None:
        _skip(run, device, b, reason)
        return Measured(b.name, device.name, (), reason)
    kinds = measurement_kinds(run)
    before = {k for k in kinds if run.store.has(b.name, device.name, k)}
    clear_skips(run.store, b.config.name, device.name)
    _profile(run, device, b)
    _replay(run, device, b, attack_sets)
    if "whitebox" in run.config.attacks.settings:
        _replay_whitebox(run, device, b)
    if run.config.blackbox.enabled:
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


def _profile(run: RunContext, device: Any, b: Built) -> None:
    name = b.config.name
    if run.store.has(name, device.name, "profile"):
        run.ui("advance", {"id": "measure"})
        return
    p = run.config.profile
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
    )
    run.ui("status", {"text": f"{device.name}: profiling {name}"})
    result = device.run_job(job)
    result["artifact_sha256"] = b.manifest["artifact"]["sha256"]
    run.store.save(name, device.name, "profile", result)
    run.ui("advance", {"id": "measure"})


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


__all__ = ["measure_candidate", "measure_devices", "measurement_kinds"]
