"""The typed job protocol: every job survives JSON, a malformed one is one line, paths relocate."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgebench.agent.protocol as protocol
from edgebench.agent.protocol import (
    PROTOCOL,
    EnvJob,
    InputSet,
    PredictJob,
    ProfileJob,
    Query,
    SessionJob,
    parse_job,
)
from edgebench.backends.options import BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError

PROFILE = ProfileJob(
    artifact="m.onnx",
    inputs="eval.npz",
    backend="tensorrt",
    options=BackendOptions(threads=2, device="cuda", precision="fp16", batches=(1, 8), opt_batch=1, builder="trtexec"),
    batches=(1, 8),
    modes=("compute",),
    budget=TimingBudget(warmup_iters=1, warmup_s=0.0, iterations=3, min_duration_s=0.5),
    telemetry="none",
    telemetry_interval_s=0.02,
    idle_s=0.1,
    cold_start_iters=0,
    result="out/profile.json",
)
PREDICT = PredictJob(
    artifact="m.onnx",
    sets=(InputSet("clean", "eval.npz"), InputSet("fgsm", "attacks/fgsm.npz", key="adv")),
    options=BackendOptions(compile="aot_eager", input_shape=(1, 3, 32, 32)),
    backend="torch",
    batch=16,
    logits="out/logits.npz",
)
SESSION = SessionJob(artifact="m.onnx", options=BackendOptions(provider="cuda"))


@pytest.mark.parametrize("job", [PROFILE, PREDICT, EnvJob(result="r.json"), EnvJob()], ids=lambda j: j.kind)
def test_each_job_survives_json(job) -> None:
    text = job.to_json()
    body = json.loads(text)
    assert body["protocol"] == PROTOCOL and body["kind"] == job.kind
    back = parse_job(text)
    assert back == job and type(back) is type(job)
    assert type(job).from_json(text) == job


def test_the_session_and_its_queries_survive_json() -> None:
    assert SessionJob.from_json(SESSION.to_json()) == SESSION
    query = Query(x="AAAA", shape=(1, 3))
    assert Query.from_json(query.to_json()) == query


def _profile_dict(**change: object) -> dict:
    body = json.loads(PROFILE.to_json())
    body.update(change)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {k: v for k, v in _profile_dict().items() if k != "inputs"},
            "profile job: expected field 'inputs' (str), found none",
        ),
        (_profile_dict(batches=[1, "8"]), "profile job.batches[1]: expected int, found a string '8'"),
        (_profile_dict(artifact=3), "profile job.artifact: expected str, found int 3"),
        (_profile_dict(cold_start_iters=True), "profile job.cold_start_iters: expected int, found a boolean True"),
        (
            _profile_dict(options={"threads": "2"}),
            "profile job.options.threads: expected int | None, found a string '2'",
        ),
        (_profile_dict(options={"extra": {}}), "profile job.options: unknown field(s) ['extra']"),
        (_profile_dict(budget=[1]), "profile job.budget: expected an object, found a list [1]"),
        (_profile_dict(budget={"iterations": 0}), "timing budget: expected 1 <= iterations"),
        (
            _profile_dict(modes=["fast"]),
            "profile job: modes expected some of ['end_to_end', 'compute'], found ['fast']",
        ),
        (
            _profile_dict(kind="train"),
            "malformed job: expected kind one of ['env', 'predict', 'profile', 'profile_rounds'], found 'train'",
        ),
        (_profile_dict(protocol=2), "malformed profile job: expected protocol 1, found 2"),
        ({k: v for k, v in _profile_dict().items() if k != "protocol"}, "expected protocol 1, found None"),
        (_profile_dict(sets=[]), "profile job: unknown field(s) ['sets']"),
        (
            {"protocol": 1, "kind": "predict", "artifact": "m", "sets": [{"name": "a"}]},
            "predict job.sets[0]: expected field 'path'",
        ),
        (
            {"protocol": 1, "kind": "predict", "artifact": "m", "sets": []},
            "predict job: expected at least one input set",
        ),
        ([1, 2], "malformed job: expected kind one of"),
        ("{not json", "malformed job: expected JSON"),
    ],
)
def test_a_malformed_job_is_one_line(body: object, message: str) -> None:
    with pytest.raises(EdgebenchError) as info:
        parse_job(body if isinstance(body, str) else json.dumps(body))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_agent_answers_a_malformed_job_with_its_one_line(tmp_path: Path) -> None:
    """``python -m edgebench.agent``: a wrong type is written to the job's result, exit 2, no traceback."""
    body = _profile_dict(batches=["one"], result=str(tmp_path / "r.json"))
    job = tmp_path / "job.json"
    job.write_text(json.dumps(body))
    proc = subprocess.run([sys.executable, "-m", "edgebench.agent", str(job)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result == {
        "protocol": PROTOCOL,
        "kind": "profile",
        "ok": False,
        "error": "profile job.batches[0]: expected int, found a string 'one'",
    }


def test_paths_lists_what_a_job_reads_and_relocated_moves_reads_and_writes() -> None:
    assert PROFILE.paths() == ["m.onnx", "eval.npz"]
    assert PREDICT.paths() == ["m.onnx", "eval.npz", "attacks/fgsm.npz"]
    assert EnvJob().paths() == [] and SESSION.paths() == ["m.onnx"]
    assert PREDICT.outputs() == {"logits": "out/logits.npz"}  # no result asked for
    files = {"m.onnx": "/dev/m", "eval.npz": "/dev/e", "attacks/fgsm.npz": "/dev/f"}
    moved = PREDICT.relocated(files, {"logits": "/dev/l", "result": "/dev/r"})
    assert moved.paths() == ["/dev/m", "/dev/e", "/dev/f"] and moved.outputs() == {
        "result": "/dev/r",
        "logits": "/dev/l",
    }
    assert [(s.name, s.key) for s in moved.sets] == [("clean", "x"), ("fgsm", "adv")]
    assert moved.options == PREDICT.options and moved.batch == 16  # nothing else changes
    assert SESSION.relocated({"m.onnx": "/dev/m"}).artifact == "/dev/m"
    with pytest.raises(KeyError):
        PROFILE.relocated({"m.onnx": "/dev/m"}, {})  # a file the job reads that was not placed


def test_protocol_module_runs_on_python_38() -> None:
    """The agent on a Jetson may have Python 3.8: the protocol and every module it imports load
    nothing outside the standard library, use 3.8 syntax, and evaluate no ``X | Y`` or
    ``list[int]`` at run time (annotations stay strings)."""
    root = str(Path(str(protocol.__file__)).parents[2])
    probe = (
        f"import sys, json; sys.path.insert(0, {root!r}); import edgebench.agent.protocol; "
        "print(json.dumps({m: getattr(sys.modules[m], '__file__', None) for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    outside = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"edgebench", "__main__"}
    assert not outside
    ours = {m: f for m, f in loaded.items() if m.split(".")[0] == "edgebench"}
    assert {"edgebench.agent.protocol", "edgebench.backends.options"} <= set(ours)
    for name, path in ours.items():
        source = Path(path).read_text()
        tree = ast.parse(source, feature_version=(3, 8))
        roots = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
                roots.append(node.annotation)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                roots.append(node.returns)
        assert not roots or "from __future__ import annotations" in source, name
        annotations = {id(n) for root in roots for n in ast.walk(root)}
        runtime = [n for n in ast.walk(tree) if id(n) not in annotations]
        assert not [n for n in runtime if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)], name
        generic = [
            n
            for n in runtime
            if isinstance(n, ast.Subscript)
            and isinstance(n.value, ast.Name)
            and n.value.id in ("list", "dict", "tuple", "type", "set")
        ]
        assert not generic, name
