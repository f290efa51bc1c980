"""ONNX files as users bring them, through the whole study: the user's graph is the deployed
base, what needs PyTorch runs on the converted module, and a graph that cannot be converted
still gets everything ONNX-native measured (the rest UNMEASURED, with the converter's reason)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from foreign_graphs import TinyNet, dynamo_export, foreign_graph, train_tiny
from user_model_files import FAST_PROFILE, NO_BUDGETS

from edgebench.cli.main import main

pytestmark = pytest.mark.slow

PRUNE = {"ratio": 0.3, "finetune": {"epochs": 0}}
QUANT = {"preset": "ort-cpu", "calib_samples": 32}
CANDIDATES = [
    "base",
    {"name": "pruned-30", "prune": PRUNE},
    {"name": "int8", "quantize": QUANT},
    {"name": "pruned-30+int8", "prune": PRUNE, "quantize": QUANT},
]


@pytest.fixture(scope="module")
def data(digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict:
    x, y = digits
    folder = tmp_path_factory.mktemp("foreign-data")
    out = {}
    for role, sl in (("train", slice(0, 1000)), ("calib", slice(1000, 1200)), ("eval", slice(1200, None))):
        out[role] = str(folder / f"{role}.npz")
        np.savez(out[role], x=x[sl], y=y[sl])
    return out


@pytest.fixture(scope="module")
def net(digits: tuple[np.ndarray, np.ndarray]) -> TinyNet:
    x, y = digits
    return train_tiny(x[:1000], y[:1000])


def study(model: dict, data: dict, candidates: list | None = None) -> dict:
    return {
        "name": "foreign",
        "model": model,
        "data": {**data, "eval_count": 120, "calib_count": 64},
        "candidates": candidates or CANDIDATES,
        "attacks": {
            "samples": 16,
            "whitebox_samples": 8,
            "suite": [{"name": "fgsm", "eps_255": [8]}],
            "settings": ["transfer", "whitebox"],
        },
        "blackbox": {"enabled": True, "samples": 3, "max_queries": 100},
        "profile": {**FAST_PROFILE, "batches": [1, 8], "iterations": 3},
        "budgets": dict(NO_BUDGETS),
    }


def run(spec: dict, folder: Path) -> tuple[int, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(spec))
    rc = main(["run", str(folder / "study.yaml"), "--out", str(folder / "out"), "--quiet"])
    return rc, json.loads((folder / "out" / "results.json").read_text())


def ort_accuracy(path: Path, run: Path, nhwc: bool = False) -> float:
    """The user's graph on the run's evaluation images, run here without edgebench."""
    with np.load(run / "out" / "data" / "eval.npz") as d:
        x, y = d["x"], d["y"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
    return float(np.mean(sess.run(None, {sess.get_inputs()[0].name: feed})[0].argmax(1) == y))


def cands(results: dict) -> dict:
    return {c["name"]: c for c in results["candidates"]}


def test_foreign_graph_constants_softmax_dynamic_hw(net: TinyNet, data: dict, tmp_path: Path) -> None:
    path = foreign_graph(tmp_path / "vendor.onnx", net)
    rc, res = run(study({"onnx": str(path)}, data), tmp_path)
    assert rc == 0
    src = res["subject"]["source"]
    assert src["graph"]["opset"] == 11 and src["graph"]["batch"] == "dynamic"
    assert src["output"] == {
        "kind": "probabilities",
        "detected_by": "final Softmax node",
        "attacked": "log-probabilities",
    }
    assert src["conversion_check"]["batches"] == [1, 8, 64] and src["conversion_check"]["max_abs_diff"] < 1e-3
    c = cands(res)
    assert all(c[n]["artifact"] is not None for n in c), {n: c[n].get("skipped") for n in c}
    # the deployed base *is* the user's graph: same nodes, weights still in Constant nodes, H/W still dynamic
    base = onnx.load(str(tmp_path / "out" / c["base"]["artifact"]["path"]))
    assert [n.op_type for n in base.graph.node] == [n.op_type for n in onnx.load(str(path)).graph.node]
    assert c["base"]["artifact"]["input"]["shape"] == ["batch", 1, "H", "W"]
    assert c["base"]["artifact"]["output"] == "probabilities"
    assert c["base"]["params"] == sum(p.numel() for p in net.state_dict().values() if p.dtype.is_floating_point)
    acc = ort_accuracy(path, tmp_path)
    assert acc > 0.85 and c["base"]["devices"]["local"]["clean_accuracy"] == pytest.approx(acc)
    assert c["int8"]["devices"]["local"]["clean_accuracy"] > acc - 0.1
    assert c["pruned-30"]["params"] < c["base"]["params"]
    # what pruning reached, measured on the pruned module (not the ratio asked for)
    reached = c["pruned-30"]["pruning"]
    assert reached["params_after"] == c["pruned-30"]["params"] and 0 < reached["param_ratio"] < 1
    assert reached["params_before"] > reached["params_after"] and c["base"]["pruning"] is None
    for name in c:  # every candidate attacked in both settings, and by queries to its engine
        rows = c[name]["devices"]["local"]["robustness"]
        assert {r["setting"] for r in rows} == {"transfer", "whitebox"}, name
        assert c[name]["devices"]["local"]["blackbox"]["rows"], name
    report = (tmp_path / "out" / "report.md").read_text()
    assert "returns probabilities (final Softmax node)" in report and "Pruning reached: pruned-30" in report


def test_nhwc_graph_with_normalization(net: TinyNet, data: dict, tmp_path: Path) -> None:
    path = foreign_graph(tmp_path / "nhwc.onnx", net, layout="nhwc")
    model = {"onnx": str(path), "normalize": {"mean": [0.0], "std": [1.0]}}
    controlled = {"name": "int8", "quantize": {**QUANT, "max_accuracy_drop": 0.02}}
    rc, res = run(study(model, data, ["base", controlled]), tmp_path)
    assert rc == 0
    graph = res["subject"]["source"]["graph"]
    assert graph["layout"] == "nhwc" and graph["layout_detected"]
    assert any("Transpose" in e for e in graph["edits"]) and any("normalization" in e for e in graph["edits"])
    base = cands(res)["base"]
    assert base["artifact"]["input"]["shape"] == ["batch", 1, "H", "W"]  # the data as usual, NCHW
    assert base["devices"]["local"]["clean_accuracy"] == pytest.approx(ort_accuracy(path, tmp_path, nhwc=True))
    # INT8 of the user's graph, with accuracy control: the record reaches results.json and the report
    ac = cands(res)["int8"]["accuracy_control"]
    assert ac["max_accuracy_drop"] == 0.02 and ac["steps"] and ac["steps"][0]["step"] == 0
    assert ac["met"] == (ac["accuracy_drop"] <= 0.02 + 1e-9)
    assert "INT8 accuracy control: int8" in (tmp_path / "out" / "report.md").read_text()


def test_dynamo_export_opset_18_plus(net: TinyNet, data: dict, tmp_path: Path) -> None:
    path = dynamo_export(net, tmp_path / "dynamo.onnx", (1, 1, 8, 8))
    assert next(o.version for o in onnx.load(str(path)).opset_import if o.domain == "") >= 18
    rc, res = run(study({"onnx": str(path)}, data), tmp_path)
    assert rc == 0
    assert any("-> 17" in e for e in res["subject"]["source"]["conversion_check"]["graph_edits"])
    c = cands(res)
    assert all(c[n]["artifact"] is not None for n in c)
    assert c["base"]["devices"]["local"]["clean_accuracy"] == pytest.approx(ort_accuracy(path, tmp_path))


def test_graph_onnx2torch_cannot_convert_degrades(net: TinyNet, data: dict, tmp_path: Path) -> None:
    path = foreign_graph(tmp_path / "custom.onnx", net, unconvertible=True)
    rc, res = run(study({"onnx": str(path)}, data), tmp_path)
    assert rc == 0
    why = res["subject"]["torch_unavailable"]
    assert "ThresholdedRelu" in why
    c = cands(res)
    for name in ("pruned-30", "pruned-30+int8"):  # need PyTorch: UNMEASURED, with the converter's reason
        assert c[name]["artifact"] is None and "ThresholdedRelu" in c[name]["skipped"]
        assert c[name]["devices"]["local"]["verdict"]["status"] == "UNMEASURED"
        assert "ThresholdedRelu" in c[name]["devices"]["local"]["unmeasured_reason"]
    for name in ("base", "int8"):  # ONNX-native: built, profiled, accuracy, black-box
        d = c[name]["devices"]["local"]
        assert d["clean_accuracy"] is not None and d["latency_ms"] is not None and d["blackbox"]["rows"]
        assert "ThresholdedRelu" in d["whitebox_unmeasured_reason"]
    assert c["base"]["devices"]["local"]["clean_accuracy"] == pytest.approx(ort_accuracy(path, tmp_path))
    assert res["attacks"] == []  # transfer sets are crafted in PyTorch
    assert res["subject"]["base_accuracy_by"].startswith("onnxruntime")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Needs PyTorch, UNMEASURED" in report and "Not built: pruned-30" in report


def test_a_step_failing_inside_a_library_degrades_that_candidate(
    net: TinyNet, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compression step that raises something that is not a user error (a library's bug) makes
    that candidate UNMEASURED with the library's words; base and the other candidates go on."""
    import dataclasses

    from edgebench.compress import steps

    def broken(*_a: object) -> None:
        raise RuntimeError("quantizer exploded")

    monkeypatch.setitem(steps.STEPS, "quantize", dataclasses.replace(steps.STEPS["quantize"], apply_graph=broken))
    path = foreign_graph(tmp_path / "vendor.onnx", net)
    rc, res = run(study({"onnx": str(path)}, data, ["base", {"name": "int8", "quantize": QUANT}]), tmp_path)
    assert rc == 0
    c = cands(res)
    assert c["int8"]["artifact"] is None and "RuntimeError: quantizer exploded" in c["int8"]["skipped"]
    assert c["int8"]["devices"]["local"]["verdict"]["status"] == "UNMEASURED"
    assert c["base"]["devices"]["local"]["clean_accuracy"] is not None


def test_a_model_with_external_data_past_the_single_file_limit(
    net: TinyNet, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's graph with its weights in an external file (as exporters write a model past
    protobuf's 2 GB), every artifact past the limit too (lowered: a real 2 GB model is too big
    for the suite): every candidate is built, checked and measured, each with its own weights."""
    from edgebench.util import onnx_file

    monkeypatch.setattr(onnx_file, "SINGLE_FILE_LIMIT", 2048)
    single = foreign_graph(tmp_path / "single.onnx", net)
    path = tmp_path / "user" / "vendor.onnx"
    path.parent.mkdir()
    onnx.save_model(
        onnx.load(str(single)),
        str(path),
        save_as_external_data=True,
        location="weights.bin",  # the vendor's name, weights in Constant nodes included
        size_threshold=0,
        convert_attribute=True,
    )
    assert path.stat().st_size < 4096 and onnx_file.data_files(path) == [path.with_name("weights.bin")]
    rc, res = run(study({"onnx": str(path)}, data), tmp_path)
    assert rc == 0
    c = cands(res)
    assert all(c[n]["artifact"] is not None for n in c), {n: c[n].get("skipped") for n in c}
    files = res["subject"]["source"]["files"]
    assert [f["role"] for f in files] == ["onnx", "onnx external data"] and files[1]["path"].endswith("weights.bin")
    art = tmp_path / "out" / "artifacts"
    for name in c:  # each artifact with its own data file, the hash and size covering both
        model = art / f"{name}.onnx"
        assert onnx_file.data_files(model) == [art / f"{name}.onnx.data"], name
        assert c[name]["artifact"]["sha256"] == onnx_file.sha256(model)
        assert c[name]["artifact"]["size_bytes"] == model.stat().st_size + (art / f"{name}.onnx.data").stat().st_size
    acc = ort_accuracy(single, tmp_path)
    assert c["base"]["devices"]["local"]["clean_accuracy"] == pytest.approx(acc)
    assert c["int8"]["devices"]["local"]["clean_accuracy"] > acc - 0.1
    assert c["pruned-30"]["params"] < c["base"]["params"]
    assert onnx_file.sha256(art / "pruned-30.onnx") != onnx_file.sha256(art / "base.onnx")
    for name in c:  # both threat models ran on every candidate (the INT8 error localisation reads the fp32 pair)
        assert {r["setting"] for r in c[name]["devices"]["local"]["robustness"]} == {"transfer", "whitebox"}, name
    # a re-run finds every artifact by its hash and builds nothing again
    stamps = {p.name: p.stat().st_mtime_ns for p in art.iterdir()}
    rc, _ = run(study({"onnx": str(path)}, data), tmp_path)
    assert rc == 0 and {p.name: p.stat().st_mtime_ns for p in art.iterdir()} == stamps
