"""``edgebench init``: write a commented study YAML for your model."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "init",
        help=(
            "Write a commented study YAML for MODEL, so that the next command is `edgebench run study.yaml`.\n\n"
            "MODEL: an .onnx file, a TorchScript file, file.py:Name (a class or function returning an "
            "nn.Module), torchvision:NAME or timm:NAME. The channels and class count are read from the "
            "model, the image size from --data when the model accepts it (.npz with x and y, an ImageFolder "
            "tree, or CIFAR-10 batches); the study's comments say which values were read and which defaulted.\n\n"
            "Examples:\n\n"
            "  edgebench init model.onnx --data eval.npz\n\n"
            "  edgebench init net.py:Net --checkpoint net.pt --data images/ -o my-study.yaml\n\n"
            "  edgebench init torchvision:resnet18 --data imagenette/val --force"
        ),
    )
    def init(
        model: str = typer.Argument(..., help="Model file or name (see above)."),
        data: str | None = typer.Option(None, "--data", help="Images: .npz, ImageFolder tree or CIFAR-10 folder."),
        output: Path = typer.Option(Path("study.yaml"), "--output", "-o", help="Where to write the study."),
        checkpoint: str | None = typer.Option(None, "--checkpoint", help="A state_dict for file.py:Name models."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    ) -> None:
        from edgebench.cli.ui import out_console
        from edgebench.study.init import write_study

        path, det, origins = write_study(model, data, output, force=force, checkpoint=checkpoint)
        c, h, w = det.input_shape
        out_console.print(
            f"wrote {path}: model.{det.kind} {det.spec}, input {c}x{h}x{w}, {det.num_classes} classes",
            *(f"  {line}" for line in origins),
            f"next: edgebench run {path}",
            sep="\n",
            markup=False,
            highlight=False,
        )
