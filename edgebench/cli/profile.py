"""``edgebench profile MODEL`` and ``edgebench backends``: parse, call
:func:`edgebench.study.profile.profile`, render latency per batch and mode, roofline, memory,
the per-operator profile and the environment (or ``--json``)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.agent.protocol import EnvJob


# ---- rendering ---------------------------------------------------------------------------------
def _render(out: dict) -> None:
    from rich.table import Table

    from edgebench.cli.ui import fmt, out_console

    m = out["model"]
    console = out_console  # a pipe or a file gets 160-column lines (see cli/ui.py)
    console.print(
        f"[bold]{m['source']}[/bold] on [bold]{out['device']}[/bold] with {out['backend']} ({out['precision']}); "
        f"input '{out['input']['name']}' per-item shape {tuple(out['input']['item_shape'])}: {out['input']['source']}",
        highlight=False,
    )
    console.print(
        f"model: params {fmt(m.get('params'), ',')} ({m.get('params_source')}), MACs/item {fmt(m.get('macs'), ',')}, "
        f"file {fmt((m.get('size_bytes') or 0) / 1048576 if m.get('size_bytes') else None, '.2f', ' MB')}, weights {m['weights']}",
        highlight=False,
    )
    table = Table(title="latency (ms)", header_style="bold")
    for col in (
        "batch",
        "mode",
        "p50",
        "p90",
        "p99",
        "mean",
        "cv",
        "unstable",
        "items/s",
        "GOP/s",
        "% of peak",
        "bound",
    ):
        table.add_column(col, justify="right" if col not in ("mode", "bound") else "left")
    for r in out["runs"]:
        if "skipped" in r:
            table.add_row(str(r["batch"]), "skipped", r["skipped"], *[""] * 9)
            continue
        lat, roof = r["latency_ms"], r.get("roofline") or {}
        share = roof.get("share_of_peak")
        table.add_row(
            str(r["batch"]),
            "compute" if r["mode"] == "compute" else "end-to-end",
            fmt(lat["p50"], ".3f"),
            fmt(lat["p90"], ".3f"),
            fmt(lat["p99"], ".3f"),
            fmt(lat["mean"], ".3f"),
            f"{lat['cv'] * 100:.1f}%",
            "[red]yes[/red]" if lat["unstable"] else "no",
            fmt(lat["throughput_ips"], ".1f"),
            fmt(roof.get("achieved_gops"), ".1f"),
            fmt(share * 100 if share is not None else None, ".1f", "%"),
            fmt(roof.get("bound")),
        )
    console.print(table)
    kinds = {str(k) for r in out["runs"] if (k := (r.get("roofline") or {}).get("peak_kind"))}
    if kinds:
        console.print(f"% of peak: against a {'/'.join(sorted(kinds))} peak", highlight=False)
    mem = out.get("memory_mb") or {}
    console.print(
        f"memory (MB): RSS before load {fmt(mem.get('rss_before_load'), '.1f')}, after load {fmt(mem.get('rss_after_load'), '.1f')}, "
        f"peak {fmt(mem.get('peak_rss'), '.1f')} (ru_maxrss {fmt(mem.get('ru_maxrss'), '.1f')}); load time {fmt(out.get('load_time_s'), '.3f', ' s')}",
        highlight=False,
    )
    for r in out["runs"]:
        e = r.get("energy") or {}
        if e.get("rail") or e.get("gross_mj_per_item") is not None:
            console.print(
                f"energy batch {r['batch']} {r['mode']} ({e.get('rail')}): gross {fmt(e.get('gross_mj_per_item'), '.4g', ' mJ')}/item, "
                f"net {fmt(e.get('net_mj_per_item'), '.4g', ' mJ')}/item"
                + (f" ({e['reason']})" if e.get("reason") else ""),
                highlight=False,
            )
    cold = out.get("cold_start") or {}
    if cold:
        console.print(
            f"cold start (batch {cold.get('batch')}): first inference {fmt(cold.get('first_inference_ms'), '.3f', ' ms')}, "
            f"mean of first {cold.get('iterations')} {fmt(cold.get('first_n_mean_ms'), '.3f', ' ms')}, "
            f"steady p50 {fmt(cold.get('steady_p50_ms'), '.3f', ' ms')}",
            highlight=False,
        )
    rt = (out.get("environment") or {}).get("runtime") or {}
    if rt.get("gpu_max_memory_allocated_mb") is not None:
        console.print(
            f"GPU memory (framework): max allocated {rt['gpu_max_memory_allocated_mb']:.1f} MB", highlight=False
        )
    if out.get("op_profile"):
        ops = Table(title="top operators (ONNX Runtime profile)", header_style="bold")
        for col in ("op type", "nodes", "calls", "total ms", "mean ms", "share"):
            ops.add_column(col, justify="left" if col == "op type" else "right")
        for o in out["op_profile"]:
            ops.add_row(
                o["op_type"],
                str(o["node_count"]),
                str(o["calls"]),
                f"{o['total_ms']:.2f}",
                f"{o['mean_ms']:.4f}",
                f"{o['share'] * 100:.1f}%",
            )
        console.print(ops)
    env = out.get("environment") or {}
    keys = ("cpu_model", "cpu_cores_logical", "cpu_affinity", "cpu_governor", "os", "python", "edgebench")
    parts = [f"{k}={env.get(k)}" for k in keys if k in env]
    parts += [f"{k}={v}" for k, v in rt.items()]
    console.print("environment: " + ", ".join(parts), highlight=False, soft_wrap=True)
    for note in out.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)


def _progress_bar(enabled: bool):  # noqa: ANN202 - a context manager yielding the callback
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgebench.cli.ui import err_console

    @contextmanager
    def bar():  # noqa: ANN202
        if not enabled or not err_console.is_terminal:
            yield None
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        task = progress.add_task("profiling", total=None)

        def on_progress(event: dict) -> None:
            desc = f"profiling batch {event.get('batch', '')} {event.get('mode', '')}".strip()
            progress.update(task, completed=event.get("done", 0), total=event.get("total"), description=desc)

        with progress:
            yield on_progress

    return bar()


def register(app: typer.Typer) -> None:
    @app.command(
        "profile",
        help=(
            "Profile latency (compute and end-to-end), memory and roofline of any model on a device, through the agent.\n\n"
            "MODEL: an .onnx file, a TorchScript file, a torch.export .pt2 file, or torchvision:NAME (random weights).\n\n"
            "Examples:\n\n"
            "  edgebench profile model.onnx --batch 1,8,32 --threads 2\n\n"
            "  edgebench profile torchvision:resnet18 --backend torch --json\n\n"
            "  edgebench profile model.onnx --input-shape 1x3x224x224 --data images.npz --profile-ops"
        ),
    )
    def profile_cmd(
        model: str = typer.Argument(..., help="ONNX / TorchScript / .pt2 file, or torchvision:NAME."),
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
        from edgebench.cli.ui import print_json
        from edgebench.study.profile import ProfileRequest, parse_batches, parse_shape, profile

        req = ProfileRequest(
            model=model,
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
        with _progress_bar(True) as on_progress:
            out = profile(req, on_progress)
        if json_out:
            print_json(out)
        else:
            _render(out)

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
        from rich.table import Table

        from edgebench.cli.ui import out_console, print_json

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
        table = Table(title=f"backends on {device or 'this host'}", header_style="bold")
        for col in ("backend", "runtime", "version", "available", "reason"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["name"],
                str(r.get("runtime") or "-"),
                str(r.get("version") or "-"),
                "[green]yes[/green]" if r["available"] else "[red]no[/red]",
                r.get("reason", ""),
            )
        out_console.print(table)
