"""Each stage on its own: ``compress``, ``export``, ``attack`` and ``replay``.

``compress`` and ``attack`` work on a run folder exactly as ``edgebench run`` does (so a later
``run`` with the same ``--out`` reuses what they made); ``export`` and ``replay`` work on
plain files.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.cli.run import QUIET_HELP


def _pipeline(config: Path | None, out: Path | None):  # noqa: ANN202
    """The study and its run folder, as `edgebench run` would choose them."""
    from edgebench.study.config import load_study
    from edgebench.study.pipeline import default_run_dir

    cfg = load_study(config)
    return cfg, out or default_run_dir(cfg)


def register(app: typer.Typer) -> None:
    @app.command(
        "compress",
        help=(
            "Build every candidate of a study: prune (torch-pruning), quantize (ONNX Runtime INT8), export to ONNX, "
            "and check each artifact (onnx.checker; ONNX Runtime against PyTorch on real images).\n\n"
            "Examples:\n\n"
            "  edgebench compress                         # the demo study's four candidates\n\n"
            "  edgebench compress study.yaml --out reports/my-study --json"
        ),
    )
    def compress(
        config: Path | None = typer.Argument(None, help="Study YAML (default: the embedded demo study)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Run folder."),
        json_out: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    ) -> None:
        from edgebench.cli.ui import PipelineUi, out_console, print_json
        from edgebench.report.stages_view import candidates_table
        from edgebench.study.pipeline import Pipeline

        cfg, run_dir = _pipeline(config, out)
        with PipelineUi(quiet=quiet) as ui:
            built = Pipeline(cfg, run_dir, ui).compress_stage()
        if json_out:
            print_json([b.manifest for b in built])
            return
        out_console.print(candidates_table([b.manifest for b in built], run_dir))

    @app.command(
        "attack",
        help=(
            "Craft the study's adversarial sets on the base PyTorch model (foolbox), stored as float32 .npz plus a "
            "manifest in <run>/attacks/. Sets already crafted for the same model, samples and spec are reused.\n\n"
            "Examples:\n\n"
            "  edgebench attack\n\n"
            "  edgebench attack study.yaml --out reports/my-study"
        ),
    )
    def attack(
        config: Path | None = typer.Argument(None, help="Study YAML (default: the embedded demo study)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Run folder."),
        json_out: bool = typer.Option(False, "--json", help="Print the set summaries as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    ) -> None:
        from edgebench.cli.ui import PipelineUi, out_console, print_json
        from edgebench.report.stages_view import attack_sets_table
        from edgebench.study.pipeline import Pipeline

        cfg, run_dir = _pipeline(config, out)
        with PipelineUi(quiet=quiet) as ui:
            sets = Pipeline(cfg, run_dir, ui).attack_stage()
        summaries = [s.summary for s in sets]
        if json_out:
            print_json(summaries)
            return
        out_console.print(attack_sets_table(summaries, run_dir / "attacks"))

    @app.command(
        "export",
        help=(
            "Export a built-in model (trained and cached on first use, or loaded from a state_dict) to ONNX, then "
            "check it: onnx.checker and ONNX Runtime against PyTorch on real images.\n\n"
            "Examples:\n\n"
            "  edgebench export -o lenet5.onnx\n\n"
            "  edgebench export --arch resnet8 --checkpoint weights.pt --data mnist -o resnet8.onnx"
        ),
    )
    def export(
        output: Path = typer.Option(..., "--output", "-o", help="Where to write the .onnx file."),
        arch: str = typer.Option("lenet5", "--arch", help="Built-in architecture: lenet5 | resnet8."),
        checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A state_dict for --arch (else trained)."),
        data: str = typer.Option("mnist", "--data", help="Dataset: mnist | digits | npz | imagefolder | cifar10."),
        data_path: str | None = typer.Option(None, "--data-path", help="Path for npz/imagefolder/cifar10 data."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json
        from edgebench.export.onnx import export_onnx, verify_against_torch
        from edgebench.report.stages_view import export_line
        from edgebench.subject.data import DataConfig
        from edgebench.subject.sources import ModelConfig
        from edgebench.subject.zoo import load_subject
        from edgebench.util import onnx_file

        subject = load_subject(
            ModelConfig(arch=arch, checkpoint=str(checkpoint) if checkpoint else None),
            DataConfig(name=data, path=data_path),
        )
        assert subject.model is not None  # a built-in architecture always has its module
        export_onnx(subject.model, output, tuple(subject.split.input_shape))
        check = verify_against_torch(output, subject.model, subject.split.x_eval[:256], quantized=False)
        result = {
            "artifact": str(output),
            "sha256": onnx_file.sha256(output),
            "size_bytes": onnx_file.size_bytes(output),
            "check": check,
            "subject": subject.info,
        }
        if json_out:
            print_json(result)
        else:
            out_console.print(export_line(result))

    @app.command(
        "replay",
        help=(
            "Replay adversarial sets (crafted on the base model by `edgebench attack`) through a deployed ONNX "
            "artifact on a device, via the agent: accuracy, transfer success rate and agreement with the base.\n\n"
            "Examples:\n\n"
            "  edgebench replay reports/demo-resnet8-wide-mnist/artifacts/int8.onnx reports/demo-resnet8-wide-mnist/attacks\n\n"
            "  edgebench replay model.onnx attacks/ --device jetson --json"
        ),
    )
    def replay(
        artifact: Path = typer.Argument(..., help="The ONNX artifact to replay through."),
        attacks: Path = typer.Argument(..., help="A folder of adversarial sets (with attacks.json)."),
        device: str = typer.Option("local", "--device", "-d", help="Device name from the inventory."),
        threads: int | None = typer.Option(None, "--threads", help="Intra-op threads on the device."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json
        from edgebench.report.stages_view import replay_table
        from edgebench.study.replay import replay_sets

        rows = replay_sets(artifact, attacks, device, threads=threads)
        if json_out:
            print_json(rows)
            return
        out_console.print(replay_table(rows, artifact.name, device))
