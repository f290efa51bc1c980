"""`edgebench init` on an ImageFolder of 32x32 PNGs (issue 23, item 3): the image size is read
from the images when the model accepts it, the channels are converted to the model's, the
fine-tuning epochs follow the data size, and every value says where it came from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from edgebench.cli.main import main
from edgebench.errors import EdgebenchError
from edgebench.study.config import load_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subject"))
from image_folder_files import FolderFiles, make_folder_files  # noqa: E402
from test_init import one_line_error  # noqa: E402 - one definition of the one-line-error check
from user_model_files import FAST_PROFILE  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> FolderFiles:
    return make_folder_files(tmp_path_factory.mktemp("folder"))


def small_run(study: dict, candidates: list) -> dict:
    """The study as init wrote it, with a fast profile, one small attack and *candidates*."""
    return dict(
        study,
        profile=dict(FAST_PROFILE),
        attacks={"samples": 8, "suite": [{"name": "fgsm", "eps_255": [8]}]},
        candidates=candidates,
    )


def test_init_reads_the_size_from_the_images_and_the_run_keeps_the_accuracy(
    folder: FolderFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    model = f"{folder.net_py}:AnySize"
    assert main(["init", model, "--checkpoint", str(folder.checkpoint), "--data", str(folder.folder)]) == 0
    said = capsys.readouterr().out  # what init did is its result: stdout
    text = (tmp_path / "study.yaml").read_text()
    study = yaml.safe_load(text)
    assert study["data"]["image_size"] == 32 and "channels" not in study["data"]
    for line in (
        "3 input channels: read from the model (its first convolution)",
        "image size 32x32: read from the data (the images are 32x32; the model accepts that size)",
        "3 classes: read from the model (its output on a probe image)",
        "eval_count 64, calib_count 31: defaulted",
        "fine-tuning epochs 30: defaulted (epochs = 5000 / training images",
        "no model.normalize: defaulted",
    ):
        assert f"#   {line}" in text, line
        assert line in said, line
    assert "read from the model." not in text  # the old blanket claim
    written = [c for c in study["candidates"] if isinstance(c, dict) and c["name"] == "pruned-50"]
    assert written == [{"name": "pruned-50", "prune": {"ratio": 0.5, "criterion": "l1", "finetune": {"epochs": 30}}}]

    # run it: pruned-50 as init wrote it, and a 75 % cut with the one epoch the study had
    short = {"name": "pruned-75-short", "prune": {"ratio": 0.75, "finetune": {"epochs": 1}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(small_run(study, ["base", written[0], short])))
    assert main(["run", "study.yaml", "--out", "run"]) == 0
    said = capsys.readouterr().out  # the run summary: stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    by_name = {c["name"]: c for c in results["candidates"]}
    acc = {n: c["devices"]["local"]["clean_accuracy"] for n, c in by_name.items()}
    assert results["subject"]["input_shape"] == [1, 3, 32, 32]
    # the model's own accuracy on these PNGs, computed without edgebench; at 224x224 it was chance (1/3)
    assert folder.accuracy > 0.9 and acc["base"] >= folder.accuracy - 0.02, (acc, folder.accuracy)
    # one epoch left the 75 % cut far below base: the results, the report and the terminal say why
    assert acc["pruned-75-short"] <= acc["base"] - 0.10, acc
    note = by_name["pruned-75-short"]["pruning"]["finetune_note"]
    assert "with 1 fine-tuning epoch(s) on 64 training images: fine-tuning was short" in note
    assert "try prune.finetune.epochs: 30" in note
    assert "finetune_note" not in by_name["pruned-50"]["pruning"]  # as init wrote it: the rule's epochs
    assert f"note: pruned-75-short: {note}" in " ".join(said.split())
    assert f"Note: {note}" in (tmp_path / "run" / "report.md").read_text()


def test_a_one_channel_model_runs_on_an_rgb_image_folder(
    folder: FolderFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgebench.subject.data import DataConfig
    from edgebench.subject.zoo import load_subject

    monkeypatch.chdir(tmp_path)
    model = f"{folder.net_py}:Gray"
    assert main(["init", model, "--checkpoint", str(folder.gray_checkpoint), "--data", str(folder.folder)]) == 0
    text = (tmp_path / "study.yaml").read_text()
    study = yaml.safe_load(text)
    assert study["data"]["channels"] == 1 and study["data"]["image_size"] == 32
    assert "#   1 input channel: read from the model (its first convolution)" in text
    assert "#   data.channels: 1: read from the model (the images have 3; the data source converts them)" in text
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(small_run(study, ["base"])))
    assert main(["run", "study.yaml", "--out", "run", "--quiet"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["subject"]["input_shape"] == [1, 1, 32, 32]
    base = results["candidates"][0]["devices"]["local"]["clean_accuracy"]
    # the same as the model on PIL's convert("L") of the PNGs, computed without edgebench
    assert folder.gray_accuracy > 0.9 and base >= folder.gray_accuracy - 0.02, (base, folder.gray_accuracy)
    # a study written by hand without channels: the error names the key and the value
    cfg = load_study(tmp_path / "study.yaml")
    data = DataConfig(**{**study["data"], "channels": None})
    with pytest.raises(EdgebenchError, match=r"first convolution takes 1: set data.channels: 1$"):
        load_subject(cfg.model, data)


def test_channels_no_source_converts_are_one_line(
    folder: FolderFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    rc = main(["init", f"{folder.net_py}:FourChannels", "--data", str(folder.folder)])
    one_line_error(
        capsys, rc, "the model takes 4-channel images", "3-channel ones", "only between 1 (grayscale) and 3 (RGB)"
    )
    assert not (tmp_path / "study.yaml").exists()
    study = {
        "name": "x",
        "model": {"arch": "lenet5"},
        "data": {"name": "imagefolder", "path": str(folder.folder), "channels": 2},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(study))
    one_line_error(
        capsys, main(["run", "bad.yaml"]), "data.channels: expected null (as stored), 1 (grayscale) or 3 (RGB), found 2"
    )
