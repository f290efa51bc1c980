"""What the commands write for people: ``--help`` as typed (no Rich markup eaten, no ``<bool>``
on flags, examples naming folders that exist), one spelling of the timing modes, readable
numbers, recipes with only the options that act."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from rich.text import Text

from edgebench.compress.prune import CRITERIA, PruneSpec
from edgebench.report import format as fmt
from edgebench.report.profile_view import profile_view

COMMANDS = [
    [],
    ["init"],
    ["run"],
    ["compress"],
    ["attack"],
    ["export"],
    ["replay"],
    ["profile"],
    ["backends"],
    ["report"],
    ["compare"],
    ["search"],
    ["devices"],
    ["devices", "list"],
    ["devices", "add"],
    ["devices", "check"],
    ["devices", "setup"],
]


def _help(words: list[str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench", *words, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="250"),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {" ".join(words) or "edgebench": _help(words) for words in COMMANDS}


def test_every_command_is_checked() -> None:
    from edgebench.cli.main import _command

    root = _command()
    listed = {tuple(w) for w in COMMANDS}
    for name, cmd in root.commands.items():
        assert (name,) in listed
        for sub in getattr(cmd, "commands", {}):
            assert (name, sub) in listed


def test_flags_show_no_value_type(helps: dict[str, str]) -> None:
    found = {cmd: re.findall(r"--[\w-]+[\s│]+<bool>", text) for cmd, text in helps.items()}
    assert {cmd: f for cmd, f in found.items() if f} == {}
    assert "<path>" in helps["run"]  # options that take a value keep theirs


def test_install_extras_are_printed_literally(helps: dict[str, str]) -> None:
    for cmd in ("run", "search"):
        assert "pip install 'edgebench[ray]'" in helps[cmd]


def _help_texts(cmd: Any, path: str = "edgebench") -> Iterator[tuple[str, str]]:
    yield path, cmd.help or ""
    for param in cmd.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _help_texts(sub, f"{path} {name}")


def test_no_help_text_loses_words_to_rich_markup() -> None:
    """Typer prints help as Rich markup: ``[ray]`` there is a style tag and vanishes unless
    written ``\\[ray]``. Every help text must print every word it holds."""
    from edgebench.cli.main import _command

    eaten = {}
    for where, text in _help_texts(_command()):
        if Text.from_markup(text).plain != text.replace("\\[", "["):
            eaten[where] = text
    assert eaten == {}


def test_examples_name_the_folder_the_demo_writes(helps: dict[str, str]) -> None:
    from edgebench.study.config import load_study
    from edgebench.study.pipeline import default_run_dir

    demo = str(default_run_dir(load_study(None)))
    named = {m for text in helps.values() for m in re.findall(r"reports/demo[\w.+-]*", text)}
    assert named == {demo}, f"the demo writes {demo}"


def test_timing_modes_have_one_spelling() -> None:
    assert fmt.mode("end_to_end") == "end-to-end" and fmt.mode("compute") == "compute"
    lat = {"p50": 1.0, "p90": 1.1, "p99": 1.2, "mean": 1.05, "cv": 0.02, "unstable": False, "throughput_ips": 34740.2}
    run = {"batch": 1, "latency_ms": lat, "energy": {"rail": "VDD_IN", "gross_mj_per_item": 1.0}}
    out = {
        "model": {"source": "m.onnx", "params": 10, "params_source": "x", "macs": None, "weights": "w"},
        "device": "local",
        "backend": "onnxruntime",
        "precision": "fp32",
        "input": {"name": "x", "item_shape": [1, 8, 8], "source": "random"},
        "runs": [dict(run, mode="end_to_end"), dict(run, mode="compute")],
    }
    from rich.console import Console

    from edgebench.cli.ui import show

    console = Console(width=250, file=io.StringIO())
    show(console, profile_view(out))
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert "end_to_end" not in printed and "energy batch 1 end-to-end (VDD_IN)" in printed
    assert "34,740" in printed and "e+0" not in printed


@pytest.mark.parametrize(
    ("value", "shown"),
    [(34740.2, "34,740"), (1234567.0, "1,234,567"), (12.34, "12.3"), (0.456, "0.46"), (None, "unmeasured")],
)
def test_throughput_is_a_plain_number_with_thousands_separators(value: float | None, shown: str) -> None:
    assert fmt.ips(value) == shown


def _pruning(**changes: Any) -> dict:
    return dataclasses.asdict(dataclasses.replace(PruneSpec(), **changes))


def test_a_recipe_shows_only_the_options_that_are_set_and_act() -> None:
    l1 = fmt.recipe("prune", _pruning(criterion="l1"))
    assert "round_to" not in l1 and "unmeasured" not in l1  # unset: not shown
    top = re.sub(r"finetune\([^)]*\)", "", l1)
    assert "gap_" not in top and "taylor_" not in top and "seed" not in top, l1  # for other criteria
    assert l1.startswith("ratio=0.5, criterion=l1, structured=yes")
    assert "layers=" not in l1 and "layers=conv" in fmt.recipe("prune", _pruning(layers="conv"))  # only when it narrows
    assert "finetune(epochs=1, lr=0.001, batch_size=64, seed=0, optimizer=adam)" in l1
    gap = fmt.recipe("prune", _pruning(criterion="gap", round_to=8))
    assert "round_to=8" in gap and "gap_steps=10" in gap and "taylor_samples" not in gap and "seed=0" in gap
    taylor = fmt.recipe("prune", _pruning(criterion="taylor"))
    assert "taylor_samples=256" in taylor and "gap_" not in taylor
    no_finetune = fmt.recipe("prune", _pruning(finetune=dataclasses.replace(PruneSpec().finetune, epochs=0)))
    assert "finetune(epochs=0)" in no_finetune
    quantize = {"preset": "ort-cpu", "calibration": "minmax", "percentile": 99.999, "max_accuracy_drop": None}
    assert fmt.recipe("quantize", quantize) == "preset=ort-cpu, calibration=minmax"
    assert "percentile=99.999" in fmt.recipe("quantize", dict(quantize, calibration="percentile"))


def test_every_criterion_option_is_shown_for_its_criterion_only() -> None:
    """An option named after a criterion (``gap_eps``) acts for that criterion alone: a new one
    must be added to format.ACTS_WHEN, or the recipe column shows it for every criterion."""
    for field in dataclasses.fields(PruneSpec):
        owner = field.name.split("_")[0]
        if owner not in CRITERIA:
            continue
        for criterion in CRITERIA:
            shown = f"{field.name}=" in fmt.recipe("prune", _pruning(criterion=criterion))
            assert shown == (criterion == owner), (field.name, criterion)


def test_an_export_check_reads_as_a_phrase() -> None:
    int8 = {"onnx_checker": "passed", "max_abs_diff": None, "top1_agreement": 0.9921875, "count": 256}
    assert (
        fmt.export_check(dict(int8, qdq_reference_top1_agreement=1.0))
        == "onnx.checker passed, top-1 agreement 99.2% (exact INT8 arithmetic 100.0%) on 256 images"
    )
    fp32 = {"onnx_checker": "passed", "max_abs_diff": 3.81e-06, "top1_agreement": 1.0, "count": 100}
    assert fmt.export_check(fp32) == "onnx.checker passed, max |diff| 3.81e-06, top-1 agreement 100.0% on 100 images"
