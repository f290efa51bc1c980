"""`edgebench devices add / list / check` end to end, against a real loopback sshd."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import yaml
from loopback import LoopbackSshd

from edgebench.cli.main import main
from edgebench.devices.inventory import load_inventory


@pytest.fixture
def user_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "devices.yaml"
    monkeypatch.setenv("EDGEBENCH_INVENTORY", str(path))
    return path


def add_loopback(server: LoopbackSshd, name: str, *extra: str) -> int:
    spec = server.spec()
    return main(
        [
            "devices",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--user",
            server.user,
            "--identity-file",
            str(server.user_key),
            "--known-hosts",
            str(spec.known_hosts),
            "--python",
            spec.python,
            "--workdir",
            spec.workdir,
            *extra,
        ]
    )


def test_add_writes_the_user_inventory_and_list_shows_it(
    sshd: LoopbackSshd, user_inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add_loopback(sshd, "bench", "--runtime", "onnxruntime", "--threads", "1") == 0
    stored = yaml.safe_load(user_inventory.read_text())["devices"]
    assert [d["name"] for d in stored] == ["bench"] and stored[0]["port"] == sshd.port and stored[0]["threads"] == 1
    spec = load_inventory(user_file=user_inventory)["bench"]
    assert (spec.kind, spec.host, spec.identity_file) == ("ssh", "127.0.0.1", str(sshd.user_key))
    capsys.readouterr()
    assert main(["devices", "list", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert listed["bench"]["port"] == sshd.port and "local" in listed
    assert main(["devices", "list"]) == 0
    assert "bench" in capsys.readouterr().out
    # the same name again is refused unless --replace
    assert add_loopback(sshd, "bench") == 2
    assert "a device named 'bench' already exists" in capsys.readouterr().err
    assert add_loopback(sshd, "bench", "--replace", "--threads", "2") == 0
    assert yaml.safe_load(user_inventory.read_text())["devices"][0]["threads"] == 2


def test_check_reports_python_runtimes_disk_and_clock(
    sshd: LoopbackSshd, user_inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime

    assert add_loopback(sshd, "probe") == 0
    capsys.readouterr()
    assert main(["devices", "check", "probe", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []  # numpy and psutil found on the device
    assert report["address"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert report["python"]["version"] == platform.python_version()
    assert report["runtimes"]["onnxruntime"]["version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in report["runtimes"]["onnxruntime"]["providers"]
    assert report["runtimes"]["tensorrt"] is None
    assert report["jetson"]["l4t_release"] is None and report["jetson"]["power_mode"] is None  # not a Jetson
    assert report["telemetry"][-1] == "psutil"
    assert report["disk_free_gb"] > 0
    assert isinstance(report["clock_skew_s"], float) and report["clock_skew_uncertainty_s"] >= 0
    assert main(["devices", "check", "probe"]) == 0
    table = capsys.readouterr().out
    assert "onnxruntime" in table and "ready" in table and "clock skew" in table


def test_check_refuses_an_unknown_host_key_in_one_line(
    sshd: LoopbackSshd, user_inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "empty_known_hosts"
    spec = sshd.spec()
    assert (
        main(
            [
                "devices",
                "add",
                "fresh",
                "--host",
                "127.0.0.1",
                "--port",
                str(sshd.port),
                "--identity-file",
                str(sshd.user_key),
                "--known-hosts",
                str(known),
                "--python",
                spec.python,
                "--workdir",
                spec.workdir,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["devices", "check", "fresh"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: device 'fresh'") and "is unknown" in err
    assert main(["devices", "check", "fresh", "--accept-new-host-key", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["host_key_recorded"] is True and known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ")


def test_check_reports_a_missing_runtime_as_a_problem(
    sshd: LoopbackSshd, user_inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add_loopback(sshd, "trt", "--runtime", "onnxruntime", "--runtime", "tensorrt") == 0
    capsys.readouterr()
    assert main(["devices", "check", "trt", "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False
    assert any(
        p.startswith("runtime 'tensorrt' listed for this device is unavailable there") for p in report["problems"]
    )
    assert captured.err.startswith("error: device 'trt' is not ready: runtime 'tensorrt'")
