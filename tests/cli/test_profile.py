"""``edgebench profile`` and ``edgebench backends`` through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--warmup", "1", "--iterations", "3", "--min-duration", "0", "--threads", "1"]


def edgebench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "edgebench", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def net_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from torch import nn

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()
    return export_onnx(net, tmp_path_factory.mktemp("m") / "net.onnx", (1, 3, 16, 16))


def _graph_model(path: Path, dims: list, node: onnx.NodeProto, domains: list) -> Path:
    w = numpy_helper.from_array(np.random.default_rng(0).random((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=domains, ir_version=9), str(path))
    return path


def test_profile_onnx_json(net_onnx: Path) -> None:
    proc = edgebench("profile", str(net_onnx), "--batch", "1,2", "--profile-ops", "--json", *QUICK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["schema"] == "edgebench.profile/1" and out["backend"] == "onnxruntime" and out["precision"] == "fp32"
    assert [(r["batch"], r["mode"]) for r in out["runs"]] == [
        (1, "end_to_end"),
        (1, "compute"),
        (2, "end_to_end"),
        (2, "compute"),
    ]
    # by hand: conv 3->8, 3x3, on 16x16 (padding 1): 16*16*8*27 MACs, 8*27+8 params; linear 8->10: 80 + 90
    macs, params = 16 * 16 * 8 * 27 + 80, 8 * 27 + 8 + 8 * 10 + 10
    assert out["model"]["params"] == params and out["model"]["macs"] == macs
    assert out["model"]["random_weights"] is False
    for run in out["runs"]:
        lat = run["latency_ms"]
        assert lat["samples"] >= 3 and lat["p50"] > 0 and isinstance(lat["unstable"], bool)
        roof = run["roofline"]
        assert roof["peak_gops"] == out["device_profile"]["peak_gops"]["fp32"]  # from devices/local.yaml
        expected = 2 * macs * run["batch"] / (lat["p50"] / 1e3) / 1e9
        assert roof["achieved_gops"] == pytest.approx(expected)
        assert roof["bound"] in ("memory", "compute")
    ops = out["op_profile"]
    assert ops and sum(o["share"] for o in ops) <= 1 + 1e-9
    assert out["input"]["source"].startswith("random uniform [0,1)")
    env = out["environment"]
    assert env["cpu_model"] and env["cpu_affinity"] and env["runtime"]["intra_op_threads"] == 1
    assert out["memory_mb"]["peak_rss"] >= out["memory_mb"]["rss_before_load"] > 0


def test_profile_with_real_data_and_the_table(net_onnx: Path, tmp_path: Path) -> None:
    data = tmp_path / "images.npz"
    np.savez(data, x=np.random.default_rng(1).random((5, 3, 16, 16), dtype=np.float32))
    proc = edgebench("profile", str(net_onnx), "--data", str(data), *QUICK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "end-to-end" in proc.stdout and "compute" in proc.stdout and "p99" in proc.stdout
    assert "images.npz (array x, 5 items)" in proc.stdout
    assert "memory (MB)" in proc.stdout and "environment:" in proc.stdout


def test_torchvision_name_on_the_torch_backend_says_weights_are_random() -> None:
    from edgebench.study.profile import ProfileRequest, profile

    events: list[dict] = []
    out = profile(
        ProfileRequest(
            model="torchvision:squeezenet1_1",
            backend="torch",
            input_shape=(1, 3, 64, 64),
            threads=1,
            warmup=1,
            iterations=3,
            min_duration_s=0.0,
        ),
        events.append,
    )
    assert out["model"]["random_weights"] is True and out["model"]["format"] == "torchscript"
    assert any("weights are random" in n for n in out["notes"])
    assert out["environment"]["runtime"]["backend"] == "torch"
    assert out["environment"]["runtime"]["intra_op_threads"] == 1
    assert out["model"]["macs"] > 0 and out["model"]["params"] > 1_000_000
    assert {r["mode"] for r in out["runs"]} == {"end_to_end", "compute"}
    assert events and events[-1]["done"] == events[-1]["total"] == 2  # progress from the agent


def test_torchscript_file_on_onnxruntime_is_exported_into_the_cache(tmp_path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3)).eval()
    net(torch.rand(1, 3, 8, 8))
    path = tmp_path / "ts.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, torch.rand(1, 3, 8, 8)).save(str(path))
    from edgebench.study.profile import ProfileRequest, profile

    out = profile(
        ProfileRequest(model=str(path), input_shape=(1, 3, 8, 8), threads=1, warmup=1, iterations=3, min_duration_s=0.0)
    )
    artifact = Path(out["model"]["artifact"])
    assert artifact.suffix == ".onnx" and Path(os.environ["EDGEBENCH_CACHE_DIR"]) in artifact.parents
    assert out["model"]["kind"] == "torchscript" and out["model"]["format"] == "onnx"
    assert out["runs"][0]["latency_ms"]["samples"] >= 3


# ---- bad input: one line naming the input, exit 2 ------------------------------------------------
def test_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(os.urandom(2048))
    assert_one_line_error(edgebench("profile", str(bad), *QUICK), "corrupt.onnx")


def test_dynamic_dims_without_a_shape(tmp_path: Path) -> None:
    path = _graph_model(
        tmp_path / "dyn.onnx",
        ["N", 3, "H", "W"],
        helper.make_node("Conv", ["image", "w"], ["y"]),
        [helper.make_opsetid("", 17)],
    )
    assert_one_line_error(edgebench("profile", str(path), *QUICK), "'image'", "dynamic", "--input-shape")
    ok = edgebench("profile", str(path), "--input-shape", "1x3x12x12", "--json", *QUICK)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["model"]["macs"] == 4 * 10 * 10 * 27


def test_weights_in_constant_nodes_with_dynamic_height_and_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another framework's export (opset 11, every weight a Constant node, input N x 3 x H x W):
    one line asks for the shape; given one, parameters and MACs are counted, and the per-operator
    profile leaves nothing in TMPDIR."""
    rng = np.random.default_rng(0)

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    nodes = [
        const("w", rng.random((8, 3, 3, 3), dtype=np.float32)),
        const("b", rng.random(8, dtype=np.float32)),
        *(const(f"bn{k}", rng.random(8, dtype=np.float32) + 0.5) for k in range(4)),
        const("shape", np.array([0, -1], dtype=np.int64)),
        const("fc_w", rng.random((10, 8), dtype=np.float32)),
        const("fc_b", rng.random(10, dtype=np.float32)),
        helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn0", "bn1", "bn2", "bn3"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6), str(path))
    assert_one_line_error(edgebench("profile", str(path), *QUICK), "'image'", "dynamic", "--input-shape")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    ok = edgebench("profile", str(path), "--input-shape", "1x3x20x24", "--profile-ops", "--json", *QUICK)
    assert ok.returncode == 0, ok.stderr[-2000:]
    out = json.loads(ok.stdout)
    # Conv 8*27 + 8, BatchNormalization 4 x 8, Gemm 80 + 10 (the int64 shape is no parameter)
    assert out["model"]["params"] == 8 * 27 + 8 + 4 * 8 + 80 + 10
    assert out["model"]["macs"] == 8 * 20 * 24 * 27 + 80
    assert out["op_profile"] and list(tmp.glob("edgebench-ortprof-*")) == []


def test_shape_that_does_not_match(net_onnx: Path) -> None:
    assert_one_line_error(
        edgebench("profile", str(net_onnx), "--input-shape", "1x3x32x32", *QUICK),
        "'input'",
        "(batch, 3, 16, 16)",
        "1x3x32x32",
    )


def test_data_that_does_not_match(net_onnx: Path, tmp_path: Path) -> None:
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))
    assert_one_line_error(edgebench("profile", str(net_onnx), "--data", str(data), *QUICK), "'input'", "(1, 8, 8)")


def test_unsupported_operator(tmp_path: Path) -> None:
    node = helper.make_node("MysteryOp", ["image"], ["y"], domain="com.example.custom")
    path = _graph_model(
        tmp_path / "custom.onnx",
        [1, 3, 8, 8],
        node,
        [helper.make_opsetid("", 17), helper.make_opsetid("com.example.custom", 1)],
    )
    assert_one_line_error(edgebench("profile", str(path), *QUICK), "custom.onnx", "MysteryOp")


def _in_process(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    from edgebench.cli.main import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--backend", "torch", "--profile-ops"], "--profile-ops"),
        (["--batch", "1,zero"], "--batch"),
        (["--input-shape", "3by224"], "--input-shape"),
        (["--backend", "torch"], "ONNX file"),
        (["--precision", "int8"], "--precision int8"),
        (["--device", "nowhere"], "nowhere"),
        (["--backend", "torch", "--ort-provider", "cuda"], "--ort-provider"),
        (["--ort-provider", "rocm"], "--ort-provider"),
    ],
)
def test_option_combinations_are_checked_up_front(
    net_onnx: Path, capsys: pytest.CaptureFixture, args: list, needle: str
) -> None:
    code, _, err = _in_process(capsys, "profile", str(net_onnx), *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_an_execution_provider_this_build_lacks_is_named(net_onnx: Path, capsys: pytest.CaptureFixture) -> None:
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the TensorRT execution provider: the error cannot be reached")
    code, _, err = _in_process(capsys, "profile", str(net_onnx), "--ort-provider", "tensorrt", *QUICK)
    assert code == 2 and "provider tensorrt requested, but this onnxruntime build has only" in err, err


def test_unknown_torchvision_name(capsys: pytest.CaptureFixture) -> None:
    code, _, err = _in_process(capsys, "profile", "torchvision:resnet_nope")
    assert code == 2 and "resnet_nope" in err and "resnet" in err.split("expected")[1]


def test_backends_lists_every_backend_with_reasons(capsys: pytest.CaptureFixture) -> None:
    proc = edgebench("backends", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) >= {"onnxruntime", "torch", "tensorrt", "null"}
    assert rows["onnxruntime"]["available"] is True and rows["torch"]["available"] is True
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert rows["tensorrt"]["available"] is False and "tensorrt" in rows["tensorrt"]["reason"]
    code, out, _ = _in_process(capsys, "backends")
    assert code == 0 and "tensorrt" in out and "available" in out


def test_exported_program_with_a_dynamic_batch_on_both_backends(tmp_path: Path) -> None:
    import torch
    from torch import nn

    from edgebench.study.profile import ProfileRequest, profile

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()
    ep = torch.export.export(
        net, (torch.rand(2, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},)
    )
    path = tmp_path / "dyn.pt2"
    torch.export.save(ep, str(path))
    for backend in ("torch", "onnxruntime"):  # no --input-shape: only the batch is dynamic
        out = profile(
            ProfileRequest(
                model=str(path), backend=backend, batches=(1, 4), threads=1, warmup=1, iterations=3, min_duration_s=0.0
            )
        )
        assert [(r["batch"], r["mode"]) for r in out["runs"]] == [
            (1, "end_to_end"),
            (1, "compute"),
            (4, "end_to_end"),
            (4, "compute"),
        ]
        assert out["model"]["macs"] == 16 * 16 * 8 * 27 + 80  # conv + linear, per image
        assert out["model"]["format"] == ("exported_program" if backend == "torch" else "onnx")


def test_several_models_are_timed_together_with_speedups(net_onnx: Path, tmp_path: Path) -> None:
    """`profile A B`: each model's own process for memory and cold start, one interleaved pass
    for latency, and B's speed-up over A with its interval; a model of another input shape is
    one line."""
    import torch
    from torch import nn

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(1)
    wide = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip
    slow = export_onnx(wide, tmp_path / "wide.onnx", (1, 3, 16, 16))
    proc = edgebench("profile", str(slow), str(net_onnx), "--rounds", "3", "--json", *QUICK)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["reference"] == "wide" and [m["name"] for m in out["models"]] == ["wide", "net"]
    tp = out["timing_pass"]
    assert tp["rounds"] == 3 and [r["order"] for r in tp["round_meta"]][:2] == [["wide", "net"], ["net", "wide"]]
    wide_out, net_out = out["models"]
    assert all(r["speedup"] is None for r in wide_out["runs"])
    sp = net_out["runs"][0]["speedup"]
    assert sp["rounds"] == 3 and sp["ratio"] > 1.0  # 8 channels vs two 64-channel convolutions
    assert sp["ci95"][0] <= sp["ratio"] <= sp["ci95"][1]
    assert len(net_out["runs"][0]["round_p50_ms"]) == 3
    assert net_out["memory_mb"]["peak_rss"] > 0 and net_out["cold_start"]  # from its own process
    table = edgebench("profile", str(slow), str(net_onnx), "--rounds", "2", *QUICK)
    assert table.returncode == 0 and "speed-up over wide" in table.stdout and "reference" in table.stdout
    other = export_onnx(wide, tmp_path / "other.onnx", (1, 3, 8, 8))
    bad = edgebench("profile", str(net_onnx), str(other), *QUICK)
    assert_one_line_error(bad, "one input shape")
