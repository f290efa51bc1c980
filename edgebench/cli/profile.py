"""``edgebench profile MODEL`` and ``edgebench backends``: parse, call
:func:`edgebench.study.profile.profile`, render latency per batch and mode, roofline, memory,
the per-operator profile and the environment (or ``--json``)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.agent.protocol import PROTOCOL
<<<<<<< HEAD
=======
from edgebench.errors import EdgebenchError

log = logging.getLogger(__name__)

SCHEMA = "edgebench.profile/1"
BACKENDS = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
RANDOM_SEED = 0
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


@dataclass(frozen=True)
class ProfileRequest:
    """Everything ``edgebench profile`` was asked, validated up front by :meth:`validate`."""

    model: str
    device: str = "local"
    backend: str = "onnxruntime"
    batches: tuple[int, ...] | None = None  # None: the batch of --input-shape, else 1
    threads: int | None = None
    input_shape: tuple[int, ...] | None = None
    data: str | None = None
    warmup: int = 10
    iterations: int = 50
    min_duration_s: float = 1.0
    profile_ops: bool = False
    precision: str | None = None
    cuda: bool = False
    compile: bool = False
    modes: tuple[str, ...] = ("end_to_end", "compute")
    provider: str | None = None  # onnxruntime: cpu | cuda | tensorrt execution provider

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise EdgebenchError(f"--backend: expected one of {list(BACKENDS)}, found '{self.backend}'")
        if self.profile_ops and self.backend not in ("onnxruntime", "tensorrt"):
            raise EdgebenchError(
                f"--profile-ops: supported with --backend onnxruntime or tensorrt, found --backend {self.backend}"
            )
        if self.provider is not None:
            if self.backend != "onnxruntime":
                raise EdgebenchError(
                    f"--ort-provider: applies to --backend onnxruntime, found --backend {self.backend}"
                )
            if self.provider not in ("cpu", "cuda", "tensorrt"):
                raise EdgebenchError(f"--ort-provider: expected cpu, cuda or tensorrt, found '{self.provider}'")
        if self.compile and self.backend != "torch":
            raise EdgebenchError(f"--compile: applies to --backend torch, found --backend {self.backend}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise EdgebenchError(f"--precision: expected one of {list(PRECISIONS)}, found '{self.precision}'")
        if self.precision in ("fp16", "int8") and self.backend != "tensorrt" and self.provider != "tensorrt":
            raise EdgebenchError(
                f"--precision {self.precision}: builds a reduced-precision engine with --backend tensorrt only; "
                f"for {self.backend}, give an int8 model file (precision is read from the model)"
            )
        if self.threads is not None and self.threads < 1:
            raise EdgebenchError(f"--threads: expected a positive number, found {self.threads}")
        if self.warmup < 0 or self.iterations < 1 or self.min_duration_s < 0:
            raise EdgebenchError(
                f"--warmup/--iterations/--min-duration: expected >= 0, >= 1, >= 0, found "
                f"{self.warmup}, {self.iterations}, {self.min_duration_s}"
            )
        for mode in self.modes:
            if mode not in ("end_to_end", "compute"):
                raise EdgebenchError(f"modes: expected end_to_end or compute, found '{mode}'")

    def effective_batches(self) -> list[int]:
        if self.batches:
            return list(self.batches)
        return [self.input_shape[0]] if self.input_shape else [1]


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    """``"1,8,32"`` -> (1, 8, 32)."""
    if text is None:
        return None
    try:
        values = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise EdgebenchError(f"--batch: expected positive batch sizes like 1,8,32, found '{text}'")
    return tuple(dict.fromkeys(values))


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1x3x224x224"`` -> (1, 3, 224, 224)."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise EdgebenchError(
            f"--input-shape: expected positive dimensions with the batch first, like 1x3x224x224, found '{text}'"
        )
    return shape


def _fmt_declared(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def item_shape_for(
    declared: tuple[Any, ...] | None,
    req: ProfileRequest,
    data_shape: tuple[int, ...] | None,
    default: tuple[int, ...] | None,
    input_name: str,
) -> tuple[int, ...]:
    """The per-item input shape (no batch) to profile, checked against what the model declares."""
    given: tuple[int, ...] | None = None
    origin = ""
    if data_shape is not None:
        given, origin = tuple(data_shape[1:]), f"--data has per-item shape {tuple(data_shape[1:])}"
        if req.input_shape is not None and tuple(req.input_shape[1:]) != given:
            raise EdgebenchError(
                f"--input-shape {'x'.join(map(str, req.input_shape))} does not match --data items of shape {given}"
            )
    elif req.input_shape is not None:
        given, origin = tuple(req.input_shape[1:]), f"--input-shape gives {'x'.join(map(str, req.input_shape))}"
    if declared is not None:
        rest = declared[1:]
        if given is None:
            if all(isinstance(d, int) for d in rest):
                return tuple(rest)  # type: ignore[arg-type]
            if default is not None and len(default) == len(declared):
                return tuple(default[1:])
            raise EdgebenchError(
                f"input '{input_name}' has dynamic dimensions {_fmt_declared(declared)}: expected --input-shape "
                f"(e.g. 1x3x224x224) or --data, found neither"
            )
        if len(given) != len(rest) or any(isinstance(d, int) and d != g for d, g in zip(rest, given)):
            raise EdgebenchError(f"input '{input_name}': model expects shape {_fmt_declared(declared)}, {origin}")
        return given
    if given is not None:
        return given
    if default is not None:
        return tuple(default[1:])
    raise EdgebenchError(f"input '{input_name}': the model stores no input shape; expected --input-shape, found none")


def random_inputs(item_shape: tuple[int, ...], batches: list[int], seed: int = RANDOM_SEED) -> Any:
    """Uniform [0,1) float32 images (never zeros), enough for a few distinct batches."""
    import numpy as np

    n = max(8, 2 * max(batches))
    return np.random.default_rng(seed).random((n, *item_shape), dtype=np.float32)


def model_precision(op_types: tuple[str, ...] | list[str] | None, requested: str | None) -> str:
    if requested:
        return requested
    return "int8" if op_types and _QUANT_OPS & set(op_types) else "fp32"


def profile(req: ProfileRequest, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Run one profile as ``edgebench profile`` does; returns the result dict it prints as JSON."""
    import numpy as np

    from edgebench.agent.jobs import load_array
    from edgebench.devices.base import open_device
    from edgebench.devices.inventory import get_device
    from edgebench.measure.roofline import bytes_per_batch, roofline
    from edgebench.subject.external import resolve_model

    req.validate()
    spec = get_device(req.device)  # unknown device: fail before any export
    resolved = resolve_model(req.model, req.backend, req.input_shape)
    data = load_array(req.data) if req.data else None
    if data is not None and (data.ndim < 2 or data.shape[0] < 1):
        raise EdgebenchError(
            f"--data {req.data}: expected an array x of shape (N, ...) with N >= 1, found {data.shape}"
        )
    input_name = "input"
    stats: dict[str, Any] = {}
    weight_bytes = activation_bytes = None
    op_types: list[str] | None = None
    declared = resolved.declared_shape
    if resolved.artifact_format == "onnx":
        from edgebench.measure.onnx_stats import graph_inputs, load_onnx, onnx_stats

        input_name = graph_inputs(load_onnx(resolved.artifact))[0][0]
    item = item_shape_for(
        declared, req, tuple(data.shape) if data is not None else None, resolved.default_shape, input_name
    )
    batches = req.effective_batches()
    if resolved.artifact_format == "onnx":
        st = onnx_stats(resolved.artifact, item)
        stats = {
            "params": st.params,
            "macs": st.macs,
            "size_bytes": st.size_bytes,
            "params_source": "ONNX initializers",
        }
        weight_bytes, activation_bytes, op_types = st.weight_bytes, st.activation_bytes, list(st.op_types)
    else:
        from edgebench.subject.external import torch_file_stats

        stats = dict(torch_file_stats(resolved.artifact, (1, *item)), params_source="module parameters")
    precision = model_precision(op_types, req.precision)
    extra: dict[str, Any] = {"input_shape": [1, *item]}
    if req.provider is not None:
        extra["provider"] = req.provider
    if req.compile:
        extra["compile"] = True
    if req.backend == "tensorrt":
        extra["batches"] = batches
    job: dict[str, Any] = {
        "protocol": PROTOCOL,
        "kind": "profile",
        "artifact": str(resolved.artifact),
        "backend": req.backend,
        "options": {
            "threads": req.threads,
            "device": "cuda"
            if req.cuda or req.backend == "tensorrt" or req.provider in ("cuda", "tensorrt")
            else "cpu",
            "precision": precision,
            "profile_ops": req.profile_ops,
            "extra": extra,
        },
        "batches": batches,
        "modes": list(req.modes),
        "budget": {
            "warmup_iters": req.warmup,
            "warmup_s": 0.2 if req.warmup else 0.0,
            "iterations": req.iterations,
            "min_duration_s": req.min_duration_s,
            "max_iterations": max(100_000, req.iterations),
        },
        "telemetry": "auto",
    }
    with tempfile.TemporaryDirectory(prefix="edgebench-profile-") as tmp:
        if req.data:
            job["inputs"] = str(Path(req.data).resolve())
            input_source = f"{req.data} (array x, {data.shape[0]} items)"  # type: ignore[union-attr]
        else:
            x = random_inputs(item, batches)
            path = Path(tmp) / "inputs.npz"
            np.savez(path, x=x)
            job["inputs"] = str(path)
            input_source = f"random uniform [0,1) float32, seed {RANDOM_SEED}, {x.shape[0]} items"
        with open_device(spec) as device:
            result = device.run_job(job, on_progress)
    from edgebench.devices.describe import device_profile

    dev_profile = device_profile(spec)  # a local device measures its own peak (cached per machine)
    bpb = {b: bytes_per_batch(weight_bytes, activation_bytes, b) for b in batches}
    runs = []
    for run in result.get("runs", []):
        run = dict(run)
        if "latency_ms" in run:
            run["roofline"] = roofline(
                stats.get("macs"),
                run["latency_ms"]["p50"],
                run["batch"],
                precision,
                dev_profile,
                bpb.get(run["batch"]),
            )
        runs.append(run)
    notes = list(resolved.notes)
    if resolved.random_weights:
        notes.insert(0, f"weights are {resolved.weights}")
    if req.profile_ops:
        notes.append(
            "--profile-ops: operator times come from a separate 30-iteration batch-1 pass with ONNX Runtime's "
            "profiler on; the timed runs above had it off"
        )
    if not dev_profile.get("peak_gops"):
        notes.append(f"device '{spec.name}' has no profile.peak_gops: roofline shares are unmeasured")
    environment = dict(result.get("environment") or {})
    environment["runtime"] = result.get("runtime")
    out = {
        "schema": SCHEMA,
        "model": {**resolved.to_dict(), **stats, "op_types": op_types},
        "device": spec.name,
        "device_profile": dev_profile or None,
        "backend": req.backend,
        "precision": precision,
        "input": {
            "name": (result.get("input") or {}).get("name", input_name),
            "item_shape": list(item),
            "source": input_source,
        },
        "request": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(req).items()},
        "budget": job["budget"],
        "runs": runs,
        "memory_mb": result.get("memory_mb"),
        "load_time_s": result.get("load_time_s"),
        "cold_start": result.get("cold_start"),
        "telemetry": result.get("telemetry"),
        "op_profile": result.get("op_profile"),
        "environment": environment,
        "notes": notes,
    }
    return out
>>>>>>> wip-measure


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
                rows = dev.run_job({"protocol": PROTOCOL, "kind": "env"})["backends"]
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
