"""What ``edgebench profile`` and ``edgebench backends`` print: the model and input, latency per
batch and mode with the roofline, memory, energy, cold start, the per-operator profile, the
environment and the notes; the backends with why each is (un)available."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table

from edgebench.report import format as number
from edgebench.report.markup import fmt, line, soft_line

LATENCY_COLUMNS = (
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
)


def latency_table(runs: list[dict]) -> Table:
    """One row per batch size and timing mode (a skipped one says why)."""
    table = Table(title="latency (ms)", header_style="bold")
    for col in LATENCY_COLUMNS:
        table.add_column(col, justify="right" if col not in ("mode", "bound") else "left")
    for r in runs:
        if "skipped" in r:
            table.add_row(str(r["batch"]), "skipped", r["skipped"], *[""] * 9)
            continue
        lat, roof = r["latency_ms"], r.get("roofline") or {}
        share = roof.get("share_of_peak")
        table.add_row(
            str(r["batch"]),
            number.mode(r["mode"]),
            fmt(lat["p50"], ".3f"),
            fmt(lat["p90"], ".3f"),
            fmt(lat["p99"], ".3f"),
            fmt(lat["mean"], ".3f"),
            f"{lat['cv'] * 100:.1f}%",
            "[red]yes[/red]" if lat["unstable"] else "no",
            number.ips(lat["throughput_ips"]),
            fmt(roof.get("achieved_gops"), ".1f"),
            fmt(share * 100 if share is not None else None, ".1f", "%"),
            fmt(roof.get("bound")),
        )
    return table


def op_table(ops: list[dict]) -> Table:
    """The ONNX Runtime per-operator profile, by op type."""
    table = Table(title="top operators (ONNX Runtime profile)", header_style="bold")
    for col in ("op type", "nodes", "calls", "total ms", "mean ms", "share"):
        table.add_column(col, justify="left" if col == "op type" else "right")
    for o in ops:
        table.add_row(
            o["op_type"],
            str(o["node_count"]),
            str(o["calls"]),
            f"{o['total_ms']:.2f}",
            f"{o['mean_ms']:.4f}",
            f"{o['share'] * 100:.1f}%",
        )
    return table


def profile_view(out: dict) -> list[RenderableType]:
    """Everything ``edgebench profile`` prints for one result of
    :func:`edgebench.study.profile.profile`, in order."""
    m = out["model"]
    view: list[RenderableType] = [
        line(
            f"[bold]{m['source']}[/bold] on [bold]{out['device']}[/bold] with {out['backend']} ({out['precision']}); "
            f"input '{out['input']['name']}' per-item shape {tuple(out['input']['item_shape'])}: {out['input']['source']}"
        ),
        line(
            f"model: params {fmt(m.get('params'), ',')} ({m.get('params_source')}), MACs/item {fmt(m.get('macs'), ',')}, "
            f"file {fmt((m.get('size_bytes') or 0) / 1048576 if m.get('size_bytes') else None, '.2f', ' MB')}, weights {m['weights']}"
        ),
        latency_table(out["runs"]),
    ]
    kinds = {str(k) for r in out["runs"] if (k := (r.get("roofline") or {}).get("peak_kind"))}
    if kinds:
        view.append(line(f"% of peak: against a {'/'.join(sorted(kinds))} peak"))
    mem = out.get("memory_mb") or {}
    view.append(
        line(
            f"memory (MB): RSS before load {fmt(mem.get('rss_before_load'), '.1f')}, after load {fmt(mem.get('rss_after_load'), '.1f')}, "
            f"peak {fmt(mem.get('peak_rss'), '.1f')} (ru_maxrss {fmt(mem.get('ru_maxrss'), '.1f')}); load time {fmt(out.get('load_time_s'), '.3f', ' s')}"
        )
    )
    for r in out["runs"]:
        e = r.get("energy") or {}
        if e.get("rail") or e.get("gross_mj_per_item") is not None:
            view.append(
                line(
                    f"energy batch {r['batch']} {number.mode(r['mode'])} ({e.get('rail')}): gross {fmt(e.get('gross_mj_per_item'), '.4g', ' mJ')}/item, "
                    f"net {fmt(e.get('net_mj_per_item'), '.4g', ' mJ')}/item"
                    + (f" ({e['reason']})" if e.get("reason") else "")
                )
            )
    cold = out.get("cold_start") or {}
    if cold:
        view.append(
            line(
                f"cold start (batch {cold.get('batch')}): first inference {fmt(cold.get('first_inference_ms'), '.3f', ' ms')}, "
                f"mean of first {cold.get('iterations')} {fmt(cold.get('first_n_mean_ms'), '.3f', ' ms')}, "
                f"steady p50 {fmt(cold.get('steady_p50_ms'), '.3f', ' ms')}"
            )
        )
    rt = (out.get("environment") or {}).get("runtime") or {}
    if rt.get("gpu_max_memory_allocated_mb") is not None:
        view.append(line(f"GPU memory (framework): max allocated {rt['gpu_max_memory_allocated_mb']:.1f} MB"))
    if out.get("op_profile"):
        view.append(op_table(out["op_profile"]))
    env = out.get("environment") or {}
    keys = ("cpu_model", "cpu_cores_logical", "cpu_affinity", "cpu_governor", "os", "python", "edgebench")
    parts = [f"{k}={env.get(k)}" for k in keys if k in env]
    parts += [f"{k}={v}" for k, v in rt.items()]
    view.append(soft_line("environment: " + ", ".join(parts)))
    view += [line(f"[yellow]note:[/yellow] {note}") for note in out.get("notes") or []]
    return view


def speedup_table(out: dict) -> Table:
    """Several models timed together: each one's speed-up over the first, per batch and mode."""
    ref = out["reference"]
    table = Table(
        title=f"speed-up over {ref} ({out['timing_pass']['rounds']} interleaved rounds, 95% t interval)",
        header_style="bold",
    )
    for col in ("model", "batch", "mode", "p50 ms", "speed-up", "95% CI"):
        table.add_column(col, justify="left" if col in ("model", "mode") else "right")
    for m in out["models"]:
        for r in m["runs"]:
            if "latency_ms" not in r:
                continue
            sp = r.get("speedup") or {}
            lo, hi = sp.get("ci95") or (None, None)
            table.add_row(
                m["name"],
                str(r["batch"]),
                number.mode(r["mode"]),
                fmt(r["latency_ms"]["p50"], ".3f"),
                "reference" if m["name"] == ref else fmt(sp.get("ratio"), ".2f", "x"),
                ""
                if m["name"] == ref
                else (f"{lo:.2f}x .. {hi:.2f}x" if lo is not None and hi is not None else "none"),
            )
    return table


def profiles_view(out: dict) -> list[RenderableType]:
    """``edgebench profile`` of one model (:func:`profile_view`) or of several timed together:
    the speed-up table, the drift check, then each model's own view."""
    if "models" not in out:
        return profile_view(out)
    view: list[RenderableType] = [speedup_table(out)]
    drift = out["timing_pass"].get("drift") or {}
    if drift.get("drifted"):
        view.append(
            line(
                f"[yellow]warning:[/yellow] the device changed state during the pass: {out['reference']} "
                f"{drift['first_p50_ms']:.3g} ms in its first rounds, {drift['last_p50_ms']:.3g} ms in its last "
                f"({drift['change']:+.0%}); speed-ups are paired by round, absolute latencies drifted"
            )
        )
    for m in out["models"]:
        view.append(line(f"[bold]{m['name']}[/bold]"))
        view += profile_view(m)
    return view


def backends_table(rows: list[dict], device: str | None) -> Table:
    """Every backend on *device* (``None``: this host): available or not, and why."""
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
    return table
