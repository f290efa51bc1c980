"""``edgebench profile MODEL`` and ``edgebench backends``: parse, call
:func:`edgebench.study.profile.profile` (or ask the backends), print the view of
:mod:`edgebench.report.profile_view` or ``--json``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.agent.protocol import EnvJob


def register(app: typer.Typer) -> None:
    @app.command(
        "profile",
        help=(
            "Profile latency (compute and end-to-end), memory and roofline of any model on a device, through the agent.\n\n"
            "MODEL: an .onnx file, a TorchScript file, a torch.export .pt2 file, or torchvision:NAME (random weights). "
            "Several models are timed together in interleaved rounds (A B C, B C A, ...) so they meet the same device "
            "state, and each gets its speed-up over the first with a 95% interval.\n\n"
            "Examples:\n\n"
            "  edgebench profile model.onnx --batch 1,8,32 --threads 2\n\n"
            "  edgebench profile model.onnx model-int8.onnx pruned-int8.onnx --rounds 8\n\n"
            "  edgebench profile torchvision:resnet18 --backend torch --json\n\n"
            "  edgebench profile model.onnx --input-shape 1x3x224x224 --data images.npz --profile-ops"
        ),
    )
    def profile_cmd(
        models: list[str] = typer.Argument(
            ...,
            metavar="MODEL...",
            help="ONNX / TorchScript / .pt2 file, or torchvision:NAME; several: timed together.",
        ),
        rounds: int = typer.Option(6, "--rounds", help="Several models: interleaved timing rounds (at least 2)."),
        device: str = typer.Option("local", "--device", "-d", help="Device name from the inventory."),
        backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime | torch | tensorrt."),
        batch: str | None = typer.Option(
            None, "--batch", help="Batch sizes, e.g. 1,8,32 (default: the batch of --input-shape, or 1)."
        ),
        threads: int | None = typer.Option(None, "--threads", help="Intra-op threads (default: the runtime's)."),
        input_shape: str | None = typer.Option(None, "--input-shape", help="Input shape with batch, e.g. 1x3x224x224."),
        data: Path | None = typer.Option(
            None, "--data", help=".npz with an array x of real inputs (default: random [0,1))."
        ),
        warmup: int = typer.Option(10, "--warmup", help="Warm-up iterations (at least 0.2 s too)."),
        iterations: int = typer.Option(50, "--iterations", help="Timed iterations (at least)."),
        min_duration: float = typer.Option(1.0, "--min-duration", help="Timed seconds (at least), per batch and mode."),
        profile_ops: bool = typer.Option(False, "--profile-ops", help="Per-operator profile (onnxruntime)."),
        precision: str | None = typer.Option(None, "--precision", help="tensorrt: fp32 | fp16 | int8 engine."),
        cuda: bool = typer.Option(False, "--cuda", help="Run on the device's CUDA GPU (torch, onnxruntime-gpu)."),
        compile_: bool = typer.Option(False, "--compile", help="torch: wrap the module in torch.compile."),
        ort_provider: str | None = typer.Option(
            None, "--ort-provider", help="onnxruntime: cpu | cuda | tensorrt execution provider (where installed)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json, profile_progress, show
        from edgebench.report.profile_view import profiles_view
        from edgebench.study.profile import ProfileRequest, parse_batches, parse_shape, profile_models

        req = ProfileRequest(
            model=models[0],
            device=device,
            backend=backend,
            batches=parse_batches(batch),
            threads=threads,
            input_shape=parse_shape(input_shape),
            data=str(data) if data else None,
            warmup=warmup,
            iterations=iterations,
            min_duration_s=min_duration,
            profile_ops=profile_ops,
            precision=precision,
            cuda=cuda,
            compile=compile_,
            provider=ort_provider,
        )
        req.validate()
        with profile_progress() as on_progress:
            out = profile_models(req, models, rounds, on_progress)
        if json_out:
            print_json(out)
        else:  # a pipe or a file gets 160-column lines (see cli/ui.py)
            show(out_console, profiles_view(out))

    @app.command(
        "backends",
        help="List every backend with available / unavailable and the reason.\n\n"
        "Examples:\n\n  edgebench backends\n\n  edgebench backends --device jetson --json",
    )
    def backends_cmd(
        device: str | None = typer.Option(
            None, "--device", "-d", help="Ask the agent on this device (default: this host, in-process)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json
        from edgebench.report.profile_view import backends_table

        if device:
            from edgebench.devices.inventory import get_device
            from edgebench.devices.registry import open_device

            with open_device(get_device(device)) as dev:
                rows = dev.run_job(EnvJob())["backends"]
        else:
            from edgebench.backends.registry import availability

            rows = availability()
        if json_out:
            print_json(rows)
            return
        out_console.print(backends_table(rows, device))
