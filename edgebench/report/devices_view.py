"""What ``edgebench devices`` prints: the inventory, a device just added, and what
``devices check`` found on one (facts, problems, warnings, the verdict)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from edgebench.devices.check import CheckReport
    from edgebench.devices.inventory import DeviceSpec
    from edgebench.devices.setup import SetupReport


def address(spec: DeviceSpec) -> str:
    if spec.kind != "ssh":
        return "this host"
    user = f"{spec.user}@" if spec.user else ""
    return f"{user}{spec.host}:{spec.port}"


def auth(spec: DeviceSpec) -> str:
    if spec.kind != "ssh":
        return "-"
    return spec.identity_file or "ssh-agent"


def inventory_table(specs: Iterable[DeviceSpec]) -> Table:
    """One row per known device: how to reach it, its runtimes and board profile, its file."""
    table = Table(title="devices", show_lines=False)
    for col in ("name", "kind", "address", "auth", "python", "runtimes", "profile", "defined in"):
        table.add_column(col)
    for spec in specs:
        peak = (spec.profile or {}).get("peak_gops") or {}
        profile = ", ".join(f"{k} {v} GOPS" for k, v in peak.items()) if peak else "-"
        if not peak and spec.kind == "local":
            profile = "measured on first use"
        table.add_row(
            spec.name,
            spec.kind,
            address(spec),
            auth(spec),
            spec.python,
            ", ".join(spec.runtimes),
            profile,
            spec.source or "built-in",
        )
    return table


def added_line(spec: DeviceSpec, path: Path) -> str:
    """The device ``devices add`` stored, where, and what to run next."""
    return (
        f"added device [bold]{spec.name}[/bold] ({address(spec)}) to {path}; next: edgebench devices check {spec.name}"
    )


def check_table(report: CheckReport) -> Table:
    """What ``devices check`` found, one fact per row, then problems, warnings and the verdict."""
    f = report.facts
    table = Table(title=f"device {report.device} ({report.address})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found")
    py = f.get("python") or {}
    table.add_row("python", f"{py.get('version')} ({py.get('executable')})")
    table.add_row("machine", f"{f.get('machine')} · {f.get('os')}")
    for rt, info in (f.get("runtimes") or {}).items():
        if info is None:
            table.add_row(rt, "[dim]not installed[/dim]")
        else:
            extra = f" ({', '.join(info['providers'])})" if info.get("providers") else ""
            table.add_row(rt, f"{info.get('version')}{extra}")
    j = f.get("jetson") or {}
    if any(j.get(k) for k in ("board", "l4t_release", "jetpack")):
        table.add_row("board", str(j.get("board")))
        table.add_row("L4T / JetPack", f"{j.get('l4t_release')} / {j.get('jetpack') or 'unknown'}")
        pm = j.get("power_mode")
        table.add_row(
            "power mode",
            f"{pm['name']} (id {pm['id']})" if pm else f"[dim]unreadable[/dim] {j.get('power_mode_error') or ''}",
        )
        clocks = j.get("jetson_clocks")
        table.add_row(
            "jetson_clocks",
            (clocks.splitlines()[0] if clocks else f"[dim]unreadable[/dim] {j.get('jetson_clocks_error') or ''}"),
        )
    else:
        table.add_row("Jetson", "[dim]no (no /etc/nv_tegra_release)[/dim]")
    table.add_row("telemetry", f"{', '.join(f.get('telemetry') or [])} (auto picks {f.get('telemetry_auto')})")
    table.add_row("workdir", f"{f.get('workdir')} · {f.get('disk_free_gb')} GB free")
    if "connect_s" in f:
        table.add_row("connect", f"{f['connect_s']} s{' (host key recorded)' if f.get('host_key_recorded') else ''}")
    table.add_row("clock skew", f"{f.get('clock_skew_s'):+.3f} s (± {f.get('clock_skew_uncertainty_s', 0)} s)")
    for p in report.problems:
        table.add_row("[red]problem[/red]", p)
    for w in report.warnings:
        table.add_row("[yellow]warning[/yellow]", w)
    table.add_row("verdict", "[green]ready[/green]" if report.ok else "[red]not ready[/red]")
    return table


def setup_table(report: SetupReport) -> Table:
    """What ``devices setup`` found and did, one step per row (changed or already so), then what
    is installed, what is still missing, and the verdict."""
    title = "set up" if report.changed else "nothing to do: already set up"
    table = Table(title=f"device {report.device}: {title}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found or done")
    for step in report.steps:
        mark = "[green]done[/green]" if step.changed else "[dim]kept[/dim]"
        table.add_row(step.what, f"{mark} {step.detail}")
    if report.pushed:
        table.add_row("pushed", ", ".join(report.pushed))
    versions = ", ".join(f"{m} {v or '?'}" for m, v in report.modules.items())
    table.add_row("agent python", f"{report.python} ({versions})")
    for p in report.problems:
        table.add_row("[red]problem[/red]", p)
    verdict = "[green]ready[/green]" if report.ok else "[red]not ready[/red]"
    table.add_row("verdict", f"{verdict}; next: edgebench devices check {report.device}")
    return table
