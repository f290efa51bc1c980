"""``--engine ray`` on a real local Ray cluster (a head and two worker nodes, separate raylet and
worker processes on 127.0.0.1): a study on the local device and two loopback sshd devices.

The head holds the three device resources (capacity 1 each: one measurement at a time per board);
the two worker nodes hold the CPUs that compress, export and attack. Mid-study one worker node is
removed and one worker process running a measurement is killed; the run still completes, every
measurement once, and a re-run measures nothing.

Every wait is on an event (a file appears, a process exits) with a hang limit only
(``events.HANG_S``); output goes to files, so no unread pipe can stall a run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from events import HANG_S, finish, wait_for
from loopback import LoopbackSshd
from tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE

from edgebench.devices.inventory import add_device
from edgebench.scale.engine_ray import TASKS, device_resource

DEVICES = ["local", "board-a", "board-b"]
STUDY = {
    "name": "rayscale",
    "model": TINY_MODEL,
    "data": TINY_DATA,
    "candidates": [
        "base",
        {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}},
        {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}},
    ],
    # transfer only: this file tests scheduling on the cluster (test_local_ray covers white-box on Ray)
    "attacks": {"samples": 16, "settings": ["transfer"], "suite": [{"name": "fgsm", "eps_255": [16]}]},
    "profile": {**TINY_PROFILE, "profile_ops": False},
    "devices": DEVICES,
}

# each run below may take up to HANG_S before it counts as hung; pytest's own limit covers them all
pytestmark = pytest.mark.timeout(int(3 * HANG_S))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple]:
    """A head (no CPUs, the three device resources) and two 1-CPU worker nodes, all real processes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "resources": {device_resource(d): 1 for d in DEVICES}},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "edgebench", *args]


def _measure_workers() -> list[psutil.Process]:
    """Device actors executing a measurement right now (Ray titles a busy actor's process
    ray::<class>.<method>: ``measure`` for a candidate's measurements, ``time_rounds`` for the
    interleaved timing pass that writes profile.json)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and cmd[0].startswith(("ray::DeviceWorker.measure", "ray::DeviceWorker.time_rounds")):
            found.append(proc)
    return found


@pytest.mark.slow
def test_ray_cluster_study_survives_a_lost_worker(
    ray_cluster: tuple, sshd: LoopbackSshd, sshd2: LoopbackSshd, tmp_path: Path
) -> None:
    cluster, workers = ray_cluster
    add_device(sshd.spec("board-a"), replace=True)
    add_device(sshd2.spec("board-b"), replace=True)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    args = _cli(["run", str(study), "--out", str(out), "--quiet", "--engine", "ray", "--ray-address", cluster.address])
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, text=True, env=dict(os.environ))
    node_removed = False
    killed: list[int] = []

    def step() -> bool:
        """Act on what the run has reached so far; True once it has exited."""
        nonlocal node_removed, kill_time
        if not node_removed and list((out / "artifacts").glob("*.json")):
            cluster.remove_node(workers[0], allow_graceful=False)  # a CPU node lost mid-build
            node_removed = True
        if not killed and list((out / "measurements").glob("*/*/*.json")):  # one measured, others under way
            kill_time = time.time()
            for worker in _measure_workers():
                worker.send_signal(signal.SIGKILL)  # a worker lost mid-measurement
                killed.append(worker.pid)
        return proc.poll() is not None

    kill_time = 0.0
    wait_for(step, "end of the study run")
    finish(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert node_removed and killed, "the study finished before a worker could be killed"

    files = sorted((out / "measurements").glob("*/*/*.json"))
    # profile-solo: each candidate's own load/memory/cold start; profile: the device's interleaved timing pass
    kinds = ("profile-solo", "profile", "replay")
    expected = {(c, d, k) for c in ("base", "int8", "pruned-50") for d in DEVICES for k in kinds}
    assert {(p.parts[-3], p.parts[-2], p.stem) for p in files} == expected
    record = json.loads((out / TASKS).read_text())
    tasks = record["tasks"]
    assert sorted((t["candidate"], t["device"]) for t in tasks) == sorted(
        (c, d) for c in ("base", "int8", "pruned-50") for d in DEVICES
    )  # one successful task per candidate x device
    # the tasks the killed workers were running finished in other processes
    assert all(t["end"] < kill_time for t in tasks if t["pid"] in killed)
    for dev in DEVICES:  # capacity 1: measurements on one device never overlap
        spans = sorted((t["start"], t["end"]) for t in tasks if t["device"] == dev)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans
    results = json.loads((out / "results.json").read_text())
    for cand in results["candidates"]:
        for dev in DEVICES:
            assert cand["devices"][dev]["latency_ms"]["p50"] > 0
            assert cand["devices"][dev]["clean_accuracy"] is not None

    # a re-run on the cluster (one worker node left) measures nothing again
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = subprocess.run(args, capture_output=True, text=True, timeout=HANG_S, env=dict(os.environ))
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert all(t["measured"] == [] for t in json.loads((out / TASKS).read_text())["tasks"])


def test_ray_address_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(dict(STUDY, devices=["local"])))
    res = subprocess.run(
        _cli(
            ["run", str(study), "--out", str(tmp_path / "run"), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]
        ),
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "no Ray head answers" in lines[0], res.stderr
    assert not (tmp_path / "run" / "measurements").exists()


@pytest.mark.slow
def test_search_on_the_ray_cluster(ray_cluster: tuple, sshd: LoopbackSshd, tmp_path: Path) -> None:
    """``edgebench search --engine ray``: trials built on the CPU workers, survivors measured on
    the local device and a loopback board; the same record as a local search."""
    cluster, _ = ray_cluster
    add_device(sshd.spec("board-a"), replace=True)
    study = dict(
        STUDY,
        candidates=["base"],
        devices=["local", "board-a"],
        search={"trials": 3, "keep": 0.5, "space": {"prune_ratio": [0.2, 0.6], "quantize": ["ort-cpu", "none"]}},
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "run"
    args = _cli(
        ["search", str(path), "--out", str(out), "--quiet", "--engine", "ray", "--ray-address", cluster.address]
    )
    res = subprocess.run(args, capture_output=True, text=True, timeout=HANG_S, env=dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())["search"]
    assert len(record["trials"]) == 3 and len(record["survivors"]) == 2
    measured = {(p.parts[-3], p.parts[-2]) for p in (out / "measurements").glob("*/*/profile.json")}
    assert measured == {(c, d) for c in ["base", *record["survivors"]] for d in ("local", "board-a")}
    tasks = json.loads((out / TASKS).read_text())["tasks"]
    assert sorted((t["candidate"], t["device"]) for t in tasks) == sorted(measured)
    for dev in ("local", "board-a"):
        assert record["recommended"][dev] is not None or record["closest"][dev] is not None


def test_device_without_a_ray_resource_is_one_line(ray_cluster: tuple, sshd2: LoopbackSshd, tmp_path: Path) -> None:
    """A cluster where no node declares a study device's resource would queue its tasks forever:
    refused up front, naming the resource and how to add it."""
    cluster, _ = ray_cluster
    add_device(sshd2.spec("board-c"), replace=True)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(dict(STUDY, devices=["local", "board-c"])))
    res = subprocess.run(
        _cli(["run", str(study), "--out", str(tmp_path / "run"), "--engine", "ray", "--ray-address", cluster.address]),
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env=dict(os.environ),
    )
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and device_resource("board-c") in last and "ray start --address" in last
    assert not (tmp_path / "run" / "measurements").exists()


@pytest.mark.slow
def test_two_studies_share_a_board_one_measurement_at_a_time(
    ray_cluster: tuple, sshd: LoopbackSshd, tmp_path: Path
) -> None:
    """The device resource has capacity 1 cluster-wide: two studies submitted at once to the same
    cluster never measure on the same board at the same time."""
    cluster, _ = ray_cluster
    add_device(sshd.spec("board-a"), replace=True)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(dict(STUDY, candidates=["base", STUDY["candidates"][1]], devices=["board-a"])))
    outs = [tmp_path / "one", tmp_path / "two"]
    procs = []
    for o in outs:
        with open(tmp_path / f"{o.name}.stderr.txt", "w") as err:
            cmd = _cli(
                ["run", str(study), "--out", str(o), "--quiet", "--engine", "ray", "--ray-address", cluster.address]
            )
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=dict(os.environ)))
    for proc, o in zip(procs, outs):
        assert finish(proc) == 0, (tmp_path / f"{o.name}.stderr.txt").read_text()[-3000:]
    spans = sorted(
        (t["start"], t["end"]) for o in outs for t in json.loads((o / TASKS).read_text())["tasks"] if t["measured"]
    )
    assert len(spans) == 4
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans
