"""What a model returns: several outputs (``model.output`` names the logits) and probabilities
(detected, attacked through their log)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from user_model_files import FAST_PROFILE, NO_BUDGETS

from edgebench.cli.main import main

pytestmark = pytest.mark.slow

NET = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    """Returns (probabilities, embedding), as many deployment wrappers do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        e = torch.relu(self.conv(x)).mean((2, 3))
        return torch.softmax(self.fc(e), 1), e


class Dict(TwoHeads):
    def forward(self, x):
        p, e = super().forward(x)
        return {"probs": p, "embedding": e}
'''


@pytest.fixture(scope="module")
def files(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict:
    x, y = digits
    folder = tmp_path_factory.mktemp("outputs")
    (folder / "heads.py").write_text(NET)
    out = {"py": folder / "heads.py"}
    for role, sl in (("train", slice(0, 600)), ("calib", slice(600, 700)), ("eval", slice(700, 800))):
        out[role] = folder / f"{role}.npz"
        np.savez(out[role], x=x[sl], y=y[sl])
    return out


def run(files: dict, model: dict, folder: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, dict | None]:
    study = {
        "name": "outputs",
        "model": model,
        "data": {
            "train": str(files["train"]),
            "calib": str(files["calib"]),
            "eval": str(files["eval"]),
            "eval_count": 64,
            "calib_count": 32,
        },
        "candidates": ["base", {"name": "int8", "quantize": {"preset": "ort-cpu", "calib_samples": 32}}],
        "attacks": {"samples": 8, "whitebox_samples": 8, "suite": [{"name": "fgsm", "eps_255": [8]}]},
        "profile": {**FAST_PROFILE, "iterations": 3},
        "budgets": dict(NO_BUDGETS),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "s.yaml").write_text(yaml.safe_dump(study))
    capsys.readouterr()
    rc = main(["run", str(folder / "s.yaml"), "--out", str(folder / "out"), "--quiet"])
    err = capsys.readouterr().err
    res = folder / "out" / "results.json"
    return rc, err, json.loads(res.read_text()) if res.is_file() else None


def test_tuple_output_needs_output_key(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, err, _ = run(files, {"python": f"{files['py']}:TwoHeads"}, tmp_path, capsys)
    assert rc == 2 and "found tuple of 2; name the logits with model.output: INDEX" in err


@pytest.mark.parametrize(("cls", "key"), [("TwoHeads", 0), ("Dict", "probs")])
def test_named_probability_output_is_attacked_through_its_log(
    files: dict, tmp_path: Path, capsys: pytest.CaptureFixture, cls: str, key: object
) -> None:
    rc, err, res = run(files, {"python": f"{files['py']}:{cls}", "output": key}, tmp_path, capsys)
    assert rc == 0 and res is not None, err
    src = res["subject"]["source"]
    assert src["output_selected"] == key
    assert src["output"]["kind"] == "probabilities" and src["output"]["detected_by"].startswith("rows")
    base = next(c for c in res["candidates"] if c["name"] == "base")
    assert base["artifact"]["output"] == "log-probabilities"
    # the exported artifact returns log-probabilities: rows of exp() sum to 1
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "out" / base["artifact"]["path"]), providers=["CPUExecutionProvider"])
    with np.load(files["eval"]) as d:
        logp = sess.run(None, {sess.get_inputs()[0].name: d["x"][:4]})[0]
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, rtol=1e-4)
    # FGSM on log-probabilities has a gradient: some base images flip (on probabilities of a
    # saturated softmax it would have almost none)
    rows = {r["id"]: r for r in base["devices"]["local"]["robustness"]}
    assert "fgsm-linf-8" in rows
