"""`edgebench init MODEL --data PATH` writes a study that `edgebench run` runs as written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgebench.cli.main import main
from edgebench.robustness.registry import describe_attacks
from edgebench.study.config import load_study
from edgebench.study.pipeline import Pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subject"))
    from user_model_files import make_user_files

    return make_user_files(tmp_path_factory.mktemp("user"), digits)


def one_line_error(capsys: pytest.CaptureFixture, rc: int, *needles: str) -> None:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_init_onnx_then_run_as_written(
    files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    assert main(["init", str(files.onnx), "--data", str(files.eval)]) == 0
    text = (tmp_path / "study.yaml").read_text()
    assert "# Input 1x8x8 (pixels in [0,1]), 10 classes. Where each value came from:" in text
    assert "#   image size 8x8: read from the model (its ONNX input)\n" in text
    assert "#   10 classes: read from the model (its ONNX output)\n" in text
    assert f"# Attack names: {describe_attacks()}\n" in text  # the registry's attacks, all of them
    study = yaml.safe_load(text)
    assert study["model"] == {"onnx": str(files.onnx)}
    assert study["data"]["name"] == "npz" and study["data"]["path"] == str(files.eval)
    assert [c if isinstance(c, str) else c["name"] for c in study["candidates"]] == [
        "base",
        "pruned-50",
        "int8",
        "pruned-50+int8",
    ]
    # the model expects (x - 0.5) / 0.25: the user uncomments the normalize line init wrote
    assert "  # normalize: {mean: [0.5], std: [0.25]}\n" in text
    (tmp_path / "study.yaml").write_text(text.replace("  # normalize:", "  normalize:"))
    text = (tmp_path / "study.yaml").read_text()
    assert main(["run", "study.yaml", "--out", "run", "--quiet"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [c["name"] for c in results["candidates"]] == ["base", "pruned-50", "int8", "pruned-50+int8"]
    assert results["subject"]["source"]["kind"] == "onnx" and results["subject"]["num_classes"] == 10
    base = results["candidates"][0]["devices"]["local"]
    assert base["clean_accuracy"] > 0.8 and base["latency_ms"]["p50"] > 0
    # never overwrites without --force
    capsys.readouterr()
    one_line_error(capsys, main(["init", str(files.onnx), "--data", str(files.eval)]), "study.yaml exists", "--force")
    assert (tmp_path / "study.yaml").read_text() == text
    assert main(["init", str(files.onnx), "--data", str(files.eval), "--force"]) == 0


def test_init_python_file_finds_the_class_and_shape(files, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "s.yaml"
    assert (
        main(
            [
                "init",
                str(files.net_py),
                "--checkpoint",
                str(files.checkpoint),
                "--data",
                str(files.eval),
                "-o",
                str(out),
            ]
        )
        != 0
    )  # two classes
    out2 = tmp_path / "s2.yaml"
    rc = main(
        [
            "init",
            f"{files.net_py}:Net",
            "--checkpoint",
            str(files.checkpoint),
            "--data",
            str(files.eval),
            "-o",
            str(out2),
        ]
    )
    assert rc == 0
    cfg = load_study(out2)
    assert cfg.model.kind == "python" and cfg.model.checkpoint == str(files.checkpoint)
    assert "# Input 1x8x8" in out2.read_text()
    Pipeline(cfg, tmp_path / "run").validate()


def test_init_torchscript_has_no_pruned_candidates(files, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "ts.yaml"
    assert main(["init", str(files.torchscript), "--data", str(files.eval), "-o", str(out)]) == 0
    cfg = load_study(out)
    assert cfg.model.kind == "torchscript" and all(c.prune is None for c in cfg.candidates)
    Pipeline(cfg, tmp_path / "run").validate()


def test_init_bad_inputs(files, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    out = str(tmp_path / "x.yaml")
    one_line_error(capsys, main(["init", str(files.checkpoint), "-o", out]), "holds weights, not an architecture")
    one_line_error(capsys, main(["init", "torchvision:resnet18", "-o", out]), "takes 3x224x224 images", "--data")
    one_line_error(capsys, main(["init", str(tmp_path / "nope.onnx"), "-o", out]), "model not found")
    one_line_error(capsys, main(["init", str(files.net_py), "-o", out]), "expected one nn.Module class", "Net")
    assert not Path(out).exists()


def test_init_picks_finetune_epochs_from_the_data_size(
    tiny_onnx: Path, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Fewer training images, more epochs (the rule is written in the study, next to the epochs)."""
    from edgebench.compress.finetune import EPOCH_RULE, suggested_epochs

    x, y = digits
    epochs = {}
    for n in (159, 1797):
        data = tmp_path / f"d{n}.npz"
        np.savez(data, x=x[:n], y=y[:n])
        out = tmp_path / f"s{n}.yaml"
        assert main(["init", str(tiny_onnx), "--data", str(data), "-o", str(out)]) == 0
        text = out.read_text()
        cfg = load_study(out)
        split = {"eval": cfg.data.eval_count, "calib": cfg.data.calib_count}
        train = n - split["eval"] - split["calib"]
        pruned = [c for c in cfg.candidates if c.prune is not None]
        assert len(pruned) == 2 and {c.prune.finetune.epochs for c in pruned} == {suggested_epochs(train)}
        epochs[n] = suggested_epochs(train)
        assert f"Epochs rule: {EPOCH_RULE}." in text
        assert f"#   fine-tuning epochs {epochs[n]}: defaulted ({EPOCH_RULE}; {train} here)\n" in text
    # 159 images leave 64 to train on: 5000 / 64 -> capped at 30; 1797 leave 771: 5000 / 771 -> 7
    assert epochs == {159: 30, 1797: 7}
