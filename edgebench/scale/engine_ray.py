"""``--engine ray``: a study's tasks on a Ray cluster.

* Compression + export (one task per candidate) and crafting the attacks are Ray tasks on CPU
  workers (``num_cpus=1``).
* Each device is a Ray custom resource of capacity 1 (``edgebench_device_<name>``), held by one
  actor per device (:class:`DeviceWorker`) that runs that board's measurements (profile, replay,
  black-box per candidate) one at a time through one open link, while other boards and CPU work
  go on. Engine builds happen where they always do: in the agent, on the device.
* Every task writes through the same :class:`~edgebench.study.store.RunStore` (atomic files,
  skip what exists): a task retried after its worker died (``max_retries``; a device actor is
  restarted and its interrupted call retried) redoes only what had not been written, and
  nothing finished is lost. The run folder must be on a file system
  every node sees (one machine, or NFS); results.json and the report are written by the driver.

``ray.init()`` starts a local Ray with the devices' resources; ``--ray-address HOST:PORT``
joins a running cluster whose nodes were started with the device resources, e.g.
``ray start --address HEAD:6379 --resources '{"edgebench_device_jetson1": 1}'``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from edgebench.errors import EdgebenchError
from edgebench.study.config import CandidateConfig, StudyConfig
from edgebench.study.pipeline import AttackSetRef, Built, Pipeline
from edgebench.study.store import safe_name

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # a task whose worker or node died is run again (its finished files are kept)
INSTALL_HINT = "pip install 'edgebench[ray]'"
TASKS = "engine/ray_tasks.json"


def device_resource(device: str) -> str:
    """The Ray custom resource that stands for one device (capacity 1 = exclusive)."""
    return f"edgebench_device_{safe_name(device)}"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EdgebenchError(
            f"--engine ray: expected the ray package, found none; install it with {INSTALL_HINT}"
        ) from None
    return ray


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """A one-line error unless something answers at the Ray head's ``HOST:PORT``."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise EdgebenchError(f"--ray-address: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379), found {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise EdgebenchError(
            f"--ray-address {address}: no Ray head answers there ({exc.__class__.__name__}: {exc.strerror or exc}); "
            "start one with 'ray start --head' or leave --ray-address out for a local Ray"
        ) from None


def _worker_env() -> dict[str, str]:
    """What a worker needs to find this edgebench, its inventory and its caches."""
    from edgebench import settings

    root = str(Path(__file__).resolve().parents[2])
    env = {
        "PYTHONPATH": root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        "EDGEBENCH_CACHE_DIR": str(settings.cache_dir().resolve()),
        "EDGEBENCH_INVENTORY": str(settings.user_inventory().resolve()),
        "EDGEBENCH_DEVICES_DIR": str(settings.devices_dir().resolve()),
    }
    for key in ("OMP_NUM_THREADS", "EDGEBENCH_LOG_LEVEL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


# ---- the tasks (plain functions; wrapped by ray.remote in RayEngine) --------------------------------
_SUBJECTS: dict[tuple, Any] = {}  # per worker process: Ray reuses workers, so load the subject once


def _subject(cfg: StudyConfig) -> Any:
    from edgebench.subject.zoo import load_subject

    key = (repr(cfg.model), repr(cfg.data), cfg.seed)
    if key not in _SUBJECTS:
        _SUBJECTS.clear()
        _SUBJECTS[key] = load_subject(cfg.model, cfg.data, cfg.seed)
    return _SUBJECTS[key]


def _pipeline(cfg: StudyConfig, run_dir: str) -> Pipeline:
    """A pipeline on this worker holding the subject it loaded once."""
    pipe = Pipeline(cfg, Path(run_dir))
    pipe.adopt(_subject(cfg))
    return pipe


def build_task(cfg: StudyConfig, run_dir: str, cand: CandidateConfig) -> dict:
    """Compress + export + check one candidate (or find it built); its manifest."""
    return _pipeline(cfg, run_dir).build(cand).manifest


def attack_task(cfg: StudyConfig, run_dir: str) -> list[AttackSetRef]:
    """Craft (or find) the adversarial sets on the base model."""
    return _pipeline(cfg, run_dir).craft()


def measure_on(
    dev: Any, cfg: StudyConfig, run_dir: str, cand: CandidateConfig, manifest: dict, attack_sets: list[AttackSetRef]
) -> dict:
    """Profile, replay (and black-box) one candidate on the open device *dev*; what was measured."""
    t0 = time.time()
    done = Pipeline(cfg, Path(run_dir)).measure_one(dev, Built(cand, manifest), attack_sets)
    return {
        "candidate": done.candidate,
        "device": done.device,
        "measured": list(done.measured),  # empty: everything was already on disk
        "pid": os.getpid(),
        "start": t0,
        "end": time.time(),
    }


class DeviceWorker:
    """A Ray actor per device that holds the device's resource (capacity 1) for the study: its
    measurements run one at a time, through one open device (an SSH link is set up once, not
    per measurement). Restarted when its process dies; the interrupted call is retried."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._dev: Any = None

    def measure(
        self, cfg: StudyConfig, run_dir: str, cand: CandidateConfig, manifest: dict, attack_sets: list[AttackSetRef]
    ) -> dict:
        if self._dev is None:
            from edgebench.devices.inventory import get_device
            from edgebench.devices.registry import open_device

            self._dev = open_device(get_device(self.device))
        return measure_on(self._dev, cfg, run_dir, cand, manifest, attack_sets)

    def time_rounds(self, cfg: StudyConfig, run_dir: str, items: list[tuple[CandidateConfig, dict]]) -> list[str]:
        """The interleaved timing pass over every candidate on this device, after their other
        measurements (see :func:`edgebench.study.measure.time_rounds`)."""
        if self._dev is None:
            from edgebench.devices.inventory import get_device
            from edgebench.devices.registry import open_device

            self._dev = open_device(get_device(self.device))
        return Pipeline(cfg, Path(run_dir)).time_rounds(self._dev, [Built(c, m) for c, m in items])

    def close(self) -> None:
        if self._dev is not None:
            self._dev.close()
            self._dev = None


class RayEngine:
    """The engine behind ``--engine ray`` (see the module docstring)."""

    def __init__(self, address: str | None, devices: tuple[str, ...]) -> None:
        ray = _import_ray()
        self.ray = ray
        if address:
            check_address(address)
        kwargs: dict[str, Any] = {
            "runtime_env": {"env_vars": _worker_env()},
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        }
        if address:
            ray.init(address=address, **kwargs)
        else:
            # address="local": always a new Ray on this machine, never one some other "ray start" left running
            ray.init(
                address="local", resources={device_resource(d): 1 for d in devices}, include_dashboard=False, **kwargs
            )
        available = ray.cluster_resources()
        missing = [device_resource(d) for d in devices if available.get(device_resource(d), 0) < 1]
        if missing:
            ray.shutdown()
            raise EdgebenchError(
                f"ray cluster at {address}: no node offers {', '.join(missing)}; start a node that reaches the device "
                f"with: ray start --address {address} --resources '{{\"{missing[0]}\": 1}}'"
            )
        self.parallel = max(1, int(available.get("CPU", 1)))
        self._build = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(build_task)
        self._attack = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(attack_task)
        self._worker = ray.remote(num_cpus=0, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)(DeviceWorker)
        self.measured: list[dict] = []  # what each measurement call returned (pid, start, end)
        self._workers: list = []

    def _get(self, refs: list, pipe: Pipeline, task: str | None = None) -> list:
        """Wait for *refs* (in order), advancing *task* as each finishes; a user error in a task
        becomes the same one-line error here."""
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            try:
                self.ray.get(done[0])
            except self.ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, EdgebenchError):
                    raise EdgebenchError(str(cause)) from None
                raise
            if task:
                pipe.ui("advance", {"id": task})
        return self.ray.get(list(refs))

    def build(self, pipe: Pipeline, cands: list[CandidateConfig]) -> list[Built]:
        cfg, run_dir = self.ray.put(pipe.config), str(pipe.run_dir)
        refs = [self._build.remote(cfg, run_dir, c) for c in cands]
        return [Built(c, m) for c, m in zip(cands, self._get(refs, pipe))]

    def attacks(self, pipe: Pipeline) -> list[AttackSetRef]:
        return self._get([self._attack.remote(pipe.config, str(pipe.run_dir))], pipe)[0]

    def _measure_refs(self, pipe: Pipeline, devices: list, items: list[tuple[CandidateConfig, Any]], sets: Any) -> list:
        """One measurement call per candidate x device, queued on that device's actor."""
        cfg, run_dir = self.ray.put(pipe.config), str(pipe.run_dir)
        self._workers = [self._worker.options(resources={device_resource(d.name): 1}).remote(d.name) for d in devices]
        return [w.measure.remote(cfg, run_dir, c, m, sets) for w in self._workers for c, m in items]

    def measure(self, pipe: Pipeline, devices: list, built: list[Built], attack_sets: list[AttackSetRef]) -> None:
        pipe.craft_whitebox(built)  # on the driver, before any candidate is measured
        items = [(b.config, b.manifest) for b in built]
        refs = self._measure_refs(pipe, devices, items, attack_sets)
        self._run_measurements(pipe, devices, refs, items)

    def _run_measurements(
        self, pipe: Pipeline, devices: list, refs: list, items: list[tuple[CandidateConfig, dict]]
    ) -> None:
        pipe.ui(
            "task", {"id": "measure", "text": f"measure on {', '.join(d.name for d in devices)}", "total": len(refs)}
        )
        t0 = time.time()
        try:
            self.measured += self._get(refs, pipe, "measure")
            if pipe.config.profile.interleave:  # every candidate timed together, per device
                cfg = self.ray.put(pipe.config)
                self._get([w.time_rounds.remote(cfg, str(pipe.run_dir), items) for w in self._workers], pipe)
        finally:
            self._release_workers()
        pipe.ui("done", {"id": "measure"})
        # which process measured what, when: the record of one measurement at a time per device
        pipe.store.write_json(TASKS, {"submitted": t0, "finished": time.time(), "tasks": self.measured})

    def _release_workers(self) -> None:
        """Close the devices' links and free their resources for the next study."""
        for w in self._workers:
            try:
                self.ray.get(w.close.remote(), timeout=30)
            except Exception as exc:  # noqa: BLE001 - a dead or stuck actor is killed below anyway
                log.info("device worker close: %s", exc)
            self.ray.kill(w)
        self._workers = []

    def run_overlapped(self, pipe: Pipeline, devices: list) -> dict:
        """``edgebench run``: builds, attacks and measurements submitted at once; a measurement
        starts as soon as its candidate is built and the attacks are crafted."""
        cands = list(pipe.config.candidates)
        cfg, run_dir = self.ray.put(pipe.config), str(pipe.run_dir)
        build_refs = [self._build.remote(cfg, run_dir, c) for c in cands]
        sets_ref = self._attack.remote(cfg, run_dir)
        whitebox = "whitebox" in pipe.config.attacks.settings
        # with white-box sets, measurements wait for them (crafted on the driver once all are built)
        refs = [] if whitebox else self._measure_refs(pipe, devices, list(zip(cands, build_refs)), sets_ref)
        pipe.ui("task", {"id": "compress", "text": "compress + export (ray)", "total": len(cands)})
        manifests = self._get(build_refs, pipe, "compress")
        pipe.ui("done", {"id": "compress"})
        sets = self._get([sets_ref], pipe)[0]
        if whitebox:
            built = [Built(c, m) for c, m in zip(cands, manifests)]
            pipe.craft_whitebox(built)
            refs = self._measure_refs(pipe, devices, [(b.config, b.manifest) for b in built], sets)
        pipe.write_results()
        self._run_measurements(pipe, devices, refs, list(zip(cands, manifests)))
        return pipe.write_results(final=True)

    def close(self) -> None:
        self.ray.shutdown()
