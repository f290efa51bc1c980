"""A user's model or data that cannot work: one line saying what was expected and what was
found, exit code 2, no traceback, and nothing already measured is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from user_model_files import MEAN, STD, UserFiles, make_user_files, tiny_study

from edgebench.cli.main import main

pytestmark = pytest.mark.slow
NORMALIZE = {"mean": [MEAN], "std": [STD]}


@pytest.fixture(scope="module")
def files(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> UserFiles:
    return make_user_files(tmp_path_factory.mktemp("user"), digits)


def fails(study: dict, folder: Path, capsys: pytest.CaptureFixture, *needles: str) -> str:
    """Run the study; expect exit 2 with a one-line error holding every needle, nothing measured."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = folder / "out"
    capsys.readouterr()
    rc = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (out / "measurements").exists() and not (out / "results.json").exists()
    return lines[0]


def test_python_file_that_fails_to_import(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nclass Net(torch.nn.Module)\n    pass\n")
    fails(tiny_study(files, {"python": f"{broken}:Net"}), tmp_path, capsys, "could not import", "SyntaxError")


def test_name_missing_from_the_file(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fails(tiny_study(files, {"python": f"{files.net_py}:Nett"}), tmp_path, capsys, "has no 'Nett'", "'Net'")


def test_factory_that_returns_something_else(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:not_a_model"})
    fails(study, tmp_path, capsys, "returned int; expected a torch.nn.Module")


def test_checkpoint_of_another_model(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = {"python": f"{files.net_py}:Net", "kwargs": {"width": 8}, "checkpoint": str(files.checkpoint)}
    fails(
        tiny_study(files, model),
        tmp_path,
        capsys,
        "net.pt: does not fit model.python",
        "of another shape (features.0.weight: checkpoint (16, 1, 3, 3), model (8, 1, 3, 3))",
    )


def test_onnx_that_onnx2torch_cannot_convert(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A valid ONNX file (ONNX Runtime runs it) with an operator onnx2torch has no converter for."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["mm"]),
            helper.make_node("Shrink", ["mm"], ["logits"], lambd=0.1),
        ],
        "shrinky",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        [w],
    )
    path = tmp_path / "shrink.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    import onnxruntime as ort

    assert ort.InferenceSession(str(path)).run(None, {"input": np.zeros((2, 1, 8, 8), np.float32)})[0].shape == (2, 10)
    # degrade, never stop: the ONNX-native candidates are measured, the reason is recorded
    study_path = tmp_path / "study.yaml"
    study_path.write_text(yaml.safe_dump(tiny_study(files, {"onnx": str(path)})))
    assert main(["run", str(study_path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "shrink.onnx: onnx2torch cannot convert it" in results["subject"]["torch_unavailable"]
    assert "Shrink" in results["subject"]["torch_unavailable"]
    for cand in results["candidates"]:  # base and int8 of the user's graph
        assert cand["devices"]["local"]["clean_accuracy"] is not None, cand["name"]


def test_output_that_is_not_batch_by_classes(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:Spatial"})
    fails(study, tmp_path, capsys, "expected output (batch, classes) = (16, K), found (16, 10, 8, 8)")


def test_channel_count_the_model_rejects(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:Net", "kwargs": {"in_channels": 3}})
    fails(study, tmp_path, capsys, "rejects the data's images (1x8x8", "expected images whose channels and size")


def test_onnx_input_shape_differs_from_the_data(
    files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rgb = tmp_path / "rgb.npz"
    with np.load(files.eval) as d:
        np.savez(rgb, x=np.repeat(d["x"], 3, axis=1), y=d["y"])
    study = tiny_study(files, {"onnx": str(files.onnx)}, train=None, calib=None, eval=str(rgb))
    fails(study, tmp_path, capsys, "net.onnx expects input 1x8x8 (nchw); found data images 3x8x8")


def test_onnx_whose_external_data_file_is_missing(
    files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A model past 2 GB comes as NAME.onnx and its data file; given without the data file."""
    import onnx

    path = tmp_path / "user" / "net.onnx"
    path.parent.mkdir()
    onnx.save_model(
        onnx.load(str(files.onnx)), str(path), save_as_external_data=True, location="net.weights", size_threshold=0
    )
    (tmp_path / "user" / "net.weights").unlink()
    study = tiny_study(files, {"onnx": str(path)})
    fails(study, tmp_path / "run", capsys, "net.onnx keeps its weights in net.weights, expected beside it in")


def test_labels_outside_the_model_outputs(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:Net", "kwargs": {"num_classes": 5}})
    fails(study, tmp_path, capsys, "the model has 5 outputs, so expected labels in [0, 4]; found labels in [0, 9]")


def test_data_outside_0_1(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    normalized = tmp_path / "normalized.npz"
    with np.load(files.eval) as d:
        np.savez(normalized, x=(d["x"] / 255.0 - MEAN) / STD, y=d["y"])
    study = tiny_study(files, {"python": f"{files.net_py}:Net"}, eval=str(normalized))
    fails(study, tmp_path, capsys, "expected pixel values in [0, 1] or [0, 255], found [-2", "declare model.normalize")


def test_normalize_with_the_wrong_channel_count(
    files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = {"python": f"{files.net_py}:Net", "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}}
    fails(tiny_study(files, model), tmp_path, capsys, "expected one mean/std per image channel (1), found 3")


def test_pruning_a_torchscript_model_is_refused(
    files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study = tiny_study(files, {"torchscript": str(files.torchscript)}, ["base", "pruned-50"])
    fails(study, tmp_path, capsys, "candidate 'pruned-50': cannot prune", "TorchScript")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_pruning_with_finetuning_needs_training_images(
    files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = {"python": f"{files.net_py}:Net", "checkpoint": str(files.checkpoint), "normalize": NORMALIZE}
    study = tiny_study(files, model, ["base", "pruned-50"], train=None)
    fails(study, tmp_path, capsys, "pruning fine-tunes (1 epoch(s)) but the data has no training images")
    # finetune: {epochs: 0} prunes without training images
    from edgebench.study.config import study_from_dict
    from edgebench.study.pipeline import Pipeline

    study["candidates"] = ["base", {"name": "pruned-50", "prune": {"ratio": 0.5, "finetune": {"epochs": 0}}}]
    Pipeline(study_from_dict(study), tmp_path / "ok").validate()


def test_same_images_in_two_sets(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:Net"}, calib=str(files.eval))
    fails(study, tmp_path, capsys, "expected disjoint eval and calib images, found")


def test_two_sources_at_once(files: UserFiles, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tiny_study(files, {"python": f"{files.net_py}:Net", "onnx": str(files.onnx)})
    fails(study, tmp_path, capsys, "model: expected one source", "found 2: python, onnx")


def test_a_model_file_broken_after_a_run_loses_nothing(files: UserFiles, tmp_path: Path) -> None:
    """The user's .py breaks between two runs into one folder: exit 2, one line, through the real
    entry point, and every measurement of the first run is still there, byte for byte."""
    net = tmp_path / "mynet.py"
    net.write_text(files.net_py.read_text())
    study = tiny_study(files, {"python": f"{net}:Net", "checkpoint": str(files.checkpoint), "normalize": NORMALIZE})
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any("measurements" in str(p) for p in before)
    net.write_text(net.read_text() + "\nraise ImportError('a dependency of mynet is missing')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", str(path), "--out", str(out)], capture_output=True, text=True
    )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: model.python: could not import") and "dependency of mynet" in lines[-1]
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert json.loads((out / "results.json").read_text())["candidates"]
