"""``host.device``: where the host's own PyTorch work runs, resolved once, refused up front when
this machine lacks it, and recorded in results.json and the report header.

The CPU tests run everywhere; the CUDA ones (marked ``gpu``) say why they skip where torch sees
no GPU, and run in ``scripts/gpu-check.sh`` on a GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgebench.errors import EdgebenchError
from edgebench.study.config import load_study, study_from_dict
from edgebench.study.environment import resolve_host_device
from edgebench.study.pipeline import Pipeline
from edgebench.study.store import RunStore
from tests.tiny_study import TINY_DATA, TINY_MODEL, TINY_PROFILE


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_or_skip() -> None:
    if not _cuda():
        pytest.skip("no CUDA GPU here: torch.cuda.is_available() is False")


def _no_cuda_or_skip() -> None:
    if _cuda():
        pytest.skip("a CUDA GPU is present: the no-GPU path cannot be reached")


def _study(device: str | None) -> dict:
    """Base and a pruned, fine-tuned candidate; FGSM and PGD crafted on the base (transfer) and on
    each candidate (white-box): every kind of host torch work, on the smallest real study."""
    study: dict = {
        "name": "host-device",
        "model": TINY_MODEL,
        "data": TINY_DATA,
        "candidates": ["base", {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}}],
        "attacks": {
            "samples": 8,
            "whitebox_samples": 4,
            "suite": [{"name": "fgsm", "eps_255": [8]}, {"name": "pgd", "norm": "linf", "eps_255": [8], "steps": 3}],
        },
        "profile": TINY_PROFILE,
    }
    if device is not None:
        study["host"] = {"device": device}
    return study


def edgebench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *args], capture_output=True, text=True, timeout=600)


# ---- resolution -------------------------------------------------------------------------------
def test_auto_and_cpu_resolve_to_the_cpu_without_cuda() -> None:
    _no_cuda_or_skip()
    assert str(resolve_host_device("auto")) == "cpu"
    assert str(resolve_host_device("cpu")) == "cpu"


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_line(asked: str) -> None:
    _no_cuda_or_skip()
    with pytest.raises(EdgebenchError) as err:
        resolve_host_device(asked)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"expected a CUDA GPU for {asked!r}, found none here" in msg and "use auto or cpu" in msg


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0"])
def test_host_device_is_checked_when_the_study_is_read(bad: str) -> None:
    with pytest.raises(EdgebenchError, match=r"host\.device: expected auto, cpu, cuda or cuda:N, found"):
        study_from_dict({"host": {"device": bad}})
    with pytest.raises(EdgebenchError, match=r"host: .*unknown key"):
        study_from_dict({"host": {"gpu": True}})


def test_the_default_binds_run_folders_as_before_and_a_changed_host_resumes(tmp_path: Path) -> None:
    assert "host" not in study_from_dict({}).to_dict()  # auto: a run folder made before binds unchanged
    assert study_from_dict({"host": {"device": "cuda:1"}}).to_dict()["host"] == {"device": "cuda:1"}
    store = RunStore(tmp_path / "run")
    store.bind_study(study_from_dict({"host": {"device": "cpu"}}).to_dict())
    (store.root / "artifacts").mkdir()  # the folder made something: a different study is refused
    store.bind_study(study_from_dict({"host": {"device": "cuda"}}).to_dict())  # where, not what: resumes
    with pytest.raises(EdgebenchError, match="holds a different study"):
        store.bind_study(study_from_dict({"host": {"device": "cuda"}, "seed": 3}).to_dict())


def test_cuda_asked_on_a_machine_without_one_exits_2_before_any_work(tmp_path: Path) -> None:
    """The CLI on a real study file: one line (what was asked, what is here), exit 2, no folder."""
    _no_cuda_or_skip()
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(_study("cuda")))
    out = tmp_path / "out"
    proc = edgebench("run", str(study), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "host.device: expected a CUDA GPU for 'cuda', found none here" in lines[0]
    assert not out.exists()  # refused before the run folder was made


# ---- a study records where its host work ran --------------------------------------------------
def _run(tmp_path: Path, device: str | None) -> tuple[dict, str]:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(_study(device)))
    out = tmp_path / "out"
    Pipeline(load_study(study), out).run()
    results = json.loads((out / "results.json").read_text())
    return results, (out / "report.md").read_text()


@pytest.mark.slow
def test_a_study_on_the_cpu_records_cpu(tmp_path: Path) -> None:
    results, report = _run(tmp_path, "cpu")
    host = results["environment"]["host_device"]
    assert host == {"requested": "cpu", "device": "cpu", "name": None, "cuda": None, "earlier": None}
    pruned = next(c for c in results["candidates"] if c["name"] == "pruned-50")
    assert pruned["pruning"]["params_after"] < pruned["pruning"]["params_before"]  # the pruning (and fine-tuning) ran
    assert results["attacks"] and any(
        r["id"].startswith("whitebox:") for d in pruned["devices"].values() for r in d["robustness"]
    )
    assert "**Host work ran on**: cpu" in report


@pytest.mark.gpu
@pytest.mark.slow
def test_a_study_on_cuda_records_the_gpu(tmp_path: Path) -> None:
    _cuda_or_skip()
    import torch

    results, report = _run(tmp_path, "cuda")
    host = results["environment"]["host_device"]
    assert host["requested"] == "cuda" and host["device"] == f"cuda:{torch.cuda.current_device()}"
    assert host["name"] == torch.cuda.get_device_name() and host["cuda"] == torch.version.cuda
    assert f"**Host work ran on**: {host['device']} ({host['name']}" in report
