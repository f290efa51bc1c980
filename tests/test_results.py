"""The typed results.json (edgebench/results.py): real files validate and keep every key, a file
that does not match fails on one line naming the field, assembly goes through the model, and
docs/results.md and docs/results.schema.json follow the models."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edgebench import results as results_module
from edgebench.errors import EdgebenchError
from edgebench.results import SCHEMA, Results, validate_results

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "report" / "data" / "results.json"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def test_fixture_validates_and_keeps_every_key(fixture: dict) -> None:
    model = validate_results(copy.deepcopy(fixture))
    assert model.dump() == fixture  # nothing added, dropped or coerced (an int stays an int)
    local = model.candidates[1].devices["local"]
    assert (
        local.latency_ms is not None
        and local.latency_ms.p99 == fixture["candidates"][1]["devices"]["local"]["latency_ms"]["p99"]
    )
    assert isinstance(model.dump()["budgets"]["max_peak_memory_mb"], int)


def _set(path: list, value: object) -> Callable[[dict], None]:
    def mutate(r: dict) -> None:
        obj = r
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return mutate


def _delete(path: list) -> Callable[[dict], None]:
    def mutate(r: dict) -> None:
        obj = r
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return mutate


LOCAL = ["candidates", 1, "devices", "local"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            _set([*LOCAL, "latency_ms", "p99"], "x"),
            "candidates[1].devices.local.latency_ms.p99: expected a number, found 'x'",
        ),
        (_set(["attacks", 0, "count"], True), "attacks[0].count: expected an integer, found true"),
        (
            _set([*LOCAL, "robustness", 2, "accuracy_ci95"], {"low": 0.1}),
            "candidates[1].devices.local.robustness[2].accuracy_ci95: expected a list, found {'low': 0.1}",
        ),
        (
            _delete(["candidates", 0, "name"]),
            "candidates[0].name: expected a value, found nothing",
        ),
        (_delete(["run_id"]), "run_id: expected a value, found nothing"),
        (
            _set([*LOCAL, "memory_mb", "peak"], 12.0),
            "candidates[1].devices.local.memory_mb: unknown key(s) ['peak']; "
            "expected some of ['peak_rss', 'rss_after_load', 'rss_before_load', 'ru_maxrss']",
        ),
        (
            _set([*LOCAL, "verdict"], {"status": "MAYBE", "gates": []}),
            "candidates[1].devices.local.verdict.status: expected 'READY', 'NOT READY', 'INCONCLUSIVE' or 'UNMEASURED', found 'MAYBE'",
        ),
        (
            _set(
                ["candidates", 0, "artifact", "input"], {"name": "input", "shape": ["batch", 1.5], "dtype": "float32"}
            ),
            "candidates[0].artifact.input.shape[1]: expected an integer or a string, found 1.5",
        ),
        (_set(["schema"], "edgebench.results/2"), "expected schema 'edgebench.results/1', found 'edgebench.results/2'"),
    ],
    ids=[
        "wrong-type-deep",
        "bool-not-int",
        "object-not-list",
        "missing-deep",
        "missing-top",
        "unknown-key",
        "literal",
        "union",
        "schema",
    ],
)
def test_mismatch_is_one_line_naming_the_field(fixture: dict, mutate, message: str) -> None:
    data = copy.deepcopy(fixture)
    mutate(data)
    with pytest.raises(EdgebenchError) as err:
        validate_results(data, "results.json")
    assert str(err.value) == f"results.json: {message}"


def test_open_objects_stay_open(fixture: dict) -> None:
    data = copy.deepcopy(fixture)
    data["environment"]["host"]["new_probe"] = {"any": ["shape"]}  # environments are genuinely open
    data["study"]["anything"] = 1
    assert validate_results(data).dump() == data


def test_report_cli_refuses_a_mismatch_with_one_line(tmp_path: Path, fixture: dict, capsys) -> None:
    from edgebench.cli.main import main

    data = copy.deepcopy(fixture)
    data["candidates"][1]["devices"]["local"]["latency_ms"]["p99"] = "x"
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("candidates[1].devices.local.latency_ms.p99: expected a number, found 'x'"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "report.md").exists()


def _minimal_run(root: Path) -> dict:
    """A run folder with one candidate measured (a black-box file) on device "nowhere"; returns
    that measurement."""
    from edgebench.study.store import RunStore

    store = RunStore(root)
    store.write_json("study.json", {"name": "t", "devices": ["nowhere"], "candidates": [{"name": "base"}]})
    store.write_json("environment.json", {"host": {}, "versions": {}, "git_revision": None})
    store.write_json(
        "subject.json",
        {
            "model": "m",
            "dataset": "d",
            "num_classes": 2,
            "input_shape": [1, 1, 2, 2],
            "eval_count": 0,
            "calib_count": 0,
        },
    )
    blackbox = {
        "attack": "hsj",
        "norm": "l2",
        "count": 3,
        "attacked": 2,
        "clean_accuracy": 1.0,
        "max_queries": 10,
        "queries_total": 30,
        "queries_mean": 10.0,
        "budget_exhausted": 0,
        "median_distance": None,
        "rows": [],
        "history": [],
    }
    store.save("base", "nowhere", "blackbox", blackbox)
    return blackbox


def test_assembly_goes_through_the_model(tmp_path: Path) -> None:
    """A measurement file that assembles into something the schema refuses stops assembly with
    the field's path, and nothing is written."""
    from edgebench.study.assemble import assemble_results
    from edgebench.study.store import RunStore

    store = RunStore(tmp_path)
    blackbox = _minimal_run(tmp_path)
    ok = assemble_results(tmp_path)
    assert ok["schema"] == SCHEMA and ok["candidates"][0]["devices"]["nowhere"]["blackbox"]["count"] == 3
    assert json.loads(store.results_path.read_text()) == ok
    store.results_path.unlink()
    store.save("base", "nowhere", "blackbox", {**blackbox, "count": "three"})
    with pytest.raises(
        EdgebenchError, match=r"candidates\[0\]\.devices\.nowhere\.blackbox\.count: expected an integer"
    ):
        assemble_results(tmp_path)
    assert not store.results_path.exists()


def test_docs_follow_the_models() -> None:
    md = (ROOT / "docs" / "results.md").read_text()
    fix = f"out of date with edgebench/results.py: run `{results_module.REGENERATE}`"
    assert results_module.document(md) == md, f"docs/results.md {fix}"
    schema = (ROOT / "docs" / "results.schema.json").read_text()
    assert results_module.json_schema() == schema, f"docs/results.schema.json {fix}"


def test_reference_lists_every_field() -> None:
    ref = results_module.markdown_reference()
    for model in (Results, results_module.LatencyStats, results_module.DeviceEntry):
        section = ref.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in section
            assert field.description and field.description.replace("|", "\\|") in section


def test_assembly_adds_the_callers_records_after_the_verdicts(tmp_path: Path) -> None:
    """``records`` (how ``edgebench search`` adds its ``search`` record without the study package
    importing search) are made from the assembled results, verdicts filled in, and validated."""
    from edgebench.search.record import search_record
    from edgebench.study.assemble import assemble_results

    _minimal_run(tmp_path)
    assert "search" not in assemble_results(tmp_path, write=False)
    seen: list[dict] = []

    def record(results: dict, run_dir: Path) -> dict:
        seen.append(results["candidates"][0]["devices"]["nowhere"]["verdict"])
        assert run_dir == tmp_path
        return search_record(results, run_dir)

    out = assemble_results(tmp_path, records={"search": record})
    assert seen[0]["status"] == "READY"  # no budgets: ready by default
    assert out["search"]["pareto"] == {"nowhere": []} and out["search"]["recommended"] == {"nowhere": None}
    assert json.loads((tmp_path / "results.json").read_text())["search"] == out["search"]
    with pytest.raises(EdgebenchError, match=r"search\.trials: expected a value, found nothing"):
        assemble_results(tmp_path, records={"search": lambda results, run_dir: {"pareto": 3}})
