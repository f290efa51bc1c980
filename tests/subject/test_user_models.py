"""Every model source end to end through `edgebench run`, on a small real model built here:
the results say where the model came from and measure the user's model, not a stand-in."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from user_model_files import MEAN, STD, UserFiles, make_user_files, tiny_study

from edgebench.cli.main import main
from edgebench.compress.stats import count_macs
from edgebench.util.io import sha256_file

pytestmark = pytest.mark.slow
NORMALIZE = {"mean": [MEAN], "std": [STD]}


@pytest.fixture(scope="module")
def files(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> UserFiles:
    return make_user_files(tmp_path_factory.mktemp("user"), digits)


def run_study(study: dict, folder: Path, capsys: pytest.CaptureFixture | None = None) -> tuple[int, dict | None]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = folder / "out"
    rc = main(["run", str(path), "--out", str(out), "--quiet"])
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return rc, results


def base_of(results: dict) -> dict:
    return next(c for c in results["candidates"] if c["name"] == "base")


def test_python_file_with_checkpoint_and_separate_data(files: UserFiles, tmp_path: Path) -> None:
    model = {"python": f"{files.net_py}:Net", "kwargs": {"width": 16}, "checkpoint": str(files.checkpoint)}
    model["normalize"] = NORMALIZE
    cands = [
        "base",
        {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}},
        {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}},
    ]
    rc, results = run_study(tiny_study(files, model, cands), tmp_path)
    assert rc == 0 and results is not None
    subject = results["subject"]
    src = subject["source"]
    assert src["kind"] == "python" and src["normalize"] == {"mean": [MEAN], "std": [STD]}
    shas = {f["role"]: f["sha256"] for f in src["files"]}
    assert shas == {"python": sha256_file(files.net_py), "checkpoint": sha256_file(files.checkpoint)}
    assert subject["data_sources"]["counts"] == {"eval": 120, "calib": 32, "train": 1000}
    assert (subject["eval_count"], subject["calib_count"], subject["train_count"]) == (120, 32, 1000)
    # the user's trained model is what was measured: accuracy matches the model run without edgebench
    with np.load(files.eval) as d:
        n_ok = round(files.eval_accuracy * len(d["y"]))
    assert files.eval_accuracy > 0.8
    acc = base_of(results)["devices"]["local"]["clean_accuracy"]
    assert abs(acc - files.eval_accuracy) < 0.06, (acc, files.eval_accuracy, n_ok)
    assert [c["name"] for c in results["candidates"]] == ["base", "pruned-50", "int8"]
    assert base_of(results)["export_check"]["max_abs_diff"] < 1e-3
    report = (tmp_path / "out" / "report.md").read_text()
    assert "python: " in report and shas["checkpoint"][:16] in report


def test_package_module_factory(files: UserFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(files.folder))
    model = {"python": "net:make_net", "checkpoint": str(files.checkpoint), "normalize": NORMALIZE}
    rc, results = run_study(tiny_study(files, model, ["base"]), tmp_path)
    assert rc == 0 and results is not None
    assert results["subject"]["source"]["spec"] == "net:make_net"
    assert abs(base_of(results)["devices"]["local"]["clean_accuracy"] - files.eval_accuracy) < 0.06


def test_torchscript_file(files: UserFiles, tmp_path: Path) -> None:
    rc, results = run_study(
        tiny_study(files, {"torchscript": str(files.torchscript), "normalize": NORMALIZE}), tmp_path
    )
    assert rc == 0 and results is not None
    src = results["subject"]["source"]
    assert src["kind"] == "torchscript" and src["files"][0]["sha256"] == sha256_file(files.torchscript)
    names = {c["name"]: c for c in results["candidates"]}
    assert set(names) == {"base", "int8"} and names["int8"]["devices"]["local"]["clean_accuracy"] > 0.7
    assert abs(base_of(results)["devices"]["local"]["clean_accuracy"] - files.eval_accuracy) < 0.06
    # hooks see nothing inside TorchScript: MACs come from its dispatched ops, equal to the eager net's
    spec = importlib.util.spec_from_file_location("user_net_macs", files.net_py)
    assert spec is not None and spec.loader is not None
    eager = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eager)
    assert base_of(results)["macs"] == count_macs(eager.Net(), (1, 1, 8, 8)) > 0
    assert results["attacks"] and results["attacks"][0]["count"] == 16


def test_onnx_file_converted_checked_and_pruned(files: UserFiles, tmp_path: Path) -> None:
    cands = [
        "base",
        {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 0}}},
        {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}},
    ]
    rc, results = run_study(tiny_study(files, {"onnx": str(files.onnx), "normalize": NORMALIZE}, cands), tmp_path)
    assert rc == 0 and results is not None
    src = results["subject"]["source"]
    assert src["kind"] == "onnx" and src["files"][0]["sha256"] == sha256_file(files.onnx)
    assert src["conversion_check"]["max_abs_diff"] < 1e-4 and src["conversion_check"]["images"] > 0
    # the base artifact is the user's graph with the normalization prepended as nodes, not a re-export
    assert src["graph"]["edits"] == [f"normalization prepended as nodes (mean {[MEAN]}, std {[STD]})"]
    assert base_of(results)["export_check"]["max_abs_diff"] == 0.0
    assert base_of(results)["export_check"]["top1_agreement"] == 1.0
    assert abs(base_of(results)["devices"]["local"]["clean_accuracy"] - files.eval_accuracy) < 0.06
    pruned = next(c for c in results["candidates"] if c["name"] == "pruned-50")
    assert pruned["params"] < base_of(results)["params"]


def _rgb32(files: UserFiles, folder: Path) -> dict:
    """The digits as 3-channel 32x32 images (what torchvision/timm classifiers take)."""
    out = {}
    for role in ("train", "calib", "eval"):
        with np.load(getattr(files, role)) as d:
            x = np.repeat(np.repeat(d["x"], 4, axis=-1), 4, axis=-2)
            out[role] = folder / f"{role}-rgb32.npz"
            np.savez(out[role], x=np.repeat(x, 3, axis=1), y=d["y"])
    return {k: str(v) for k, v in out.items()}


def test_torchvision_classifier_random_weights(files: UserFiles, tmp_path: Path) -> None:
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    study = tiny_study(files, {"torchvision": "mobilenet_v3_small", "num_classes": 10, "normalize": imagenet}, ["base"])
    study["data"].update(_rgb32(files, tmp_path))
    rc, results = run_study(study, tmp_path)
    assert rc == 0 and results is not None
    src = results["subject"]["source"]
    assert src["kind"] == "torchvision" and src["random_weights"] is True and "seed 0" in src["weights"]
    assert results["subject"]["input_shape"] == [1, 3, 32, 32] and results["subject"]["num_classes"] == 10
    assert base_of(results)["params"] > 1_000_000


def test_timm_model(files: UserFiles, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    study = tiny_study(files, {"timm": "resnet10t", "num_classes": 10}, ["base"])
    study["data"].update(_rgb32(files, tmp_path))
    rc, results = run_study(study, tmp_path)
    assert rc == 0 and results is not None
    assert results["subject"]["source"]["kind"] == "timm" and "timm" in results["subject"]["source"]["library"]


def test_attack_on_the_normalized_model_stays_in_pixel_space(files: UserFiles) -> None:
    """normalize is inside the attacked model: adversarial images are pixels in [0,1] moved by at
    most eps, and the attack does hurt the model (it attacks the model through the wrapper)."""
    import torch

    from edgebench.robustness.attacks import AttackSpec, craft
    from edgebench.subject.sources import with_normalize

    spec = importlib.util.spec_from_file_location("user_net_norm", files.net_py)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.Net()
    net.load_state_dict(torch.load(files.checkpoint, weights_only=True))
    wrapped = with_normalize(net.eval(), (MEAN,), (STD,))
    with np.load(files.eval) as d:
        x, y = d["x"][:64].astype(np.float32) / 255.0, d["y"][:64].astype(np.int64)
    with torch.inference_mode():  # the wrapper is (x - mean) / std then the user's model
        expected = net(torch.from_numpy((x - MEAN) / STD)).numpy()
        np.testing.assert_allclose(wrapped(torch.from_numpy(x)).numpy(), expected, atol=1e-5)
    eps = 32 / 255
    (adv,) = craft(wrapped, x, y, AttackSpec("pgd", "linf", (eps,), steps=10, rel_stepsize=0.25, random_start=True))
    assert adv.x_adv is not None
    assert adv.x_adv.min() >= 0.0 and adv.x_adv.max() <= 1.0
    assert np.abs(adv.x_adv - x).max() <= eps + 1e-6
    with torch.inference_mode():
        clean = (wrapped(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
        attacked = (wrapped(torch.from_numpy(adv.x_adv)).argmax(1).numpy() == y).mean()
    assert attacked < clean - 0.1, (clean, attacked)
