"""What the single-stage commands print: ``compress`` (the candidates built and checked),
``attack`` (the adversarial sets), ``export`` (the file and its check), ``replay`` (accuracy
through a deployed artifact)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from edgebench.report.markup import fmt


def candidates_table(manifests: list[dict], run_dir: Path) -> Table:
    """One row per built candidate: precision, size, the artifact's check against its source."""
    table = Table(title="candidates", header_style="bold")
    for col in ("candidate", "precision", "params", "MACs", "size KB", "ORT vs PyTorch", "artifact"):
        table.add_column(col)
    for m in manifests:
        chk = m["export_check"]
        check = (
            f"max |diff| {chk['max_abs_diff']:.2e}"
            if chk.get("max_abs_diff") is not None
            else f"top-1 agree {chk['top1_agreement']:.3f}"
        )
        table.add_row(
            m["name"],
            m["artifact"]["precision"],
            f"{m['params']:,}",
            fmt(m["macs"], ","),
            fmt(m["artifact"]["size_bytes"] / 1024, ".1f"),
            check,
            str(run_dir / m["artifact"]["path"]),
        )
    return table


def attack_sets_table(sets: list[dict], folder: Path) -> Table:
    """The adversarial sets crafted on base, stored in *folder*."""
    table = Table(title=f"adversarial sets (crafted on base) in {folder}", header_style="bold")
    for col in ("set", "attack", "norm", "eps", "count", "base accuracy"):
        table.add_column(col)
    for s in sets:
        table.add_row(
            s["id"], s["attack"], s["norm"], fmt(s["eps"], ".4f"), str(s["count"]), fmt(s["base_accuracy"], ".3f")
        )
    return table


def export_line(result: dict) -> str:
    """The exported file and how it compares with PyTorch."""
    check = result["check"]
    return (
        f"wrote {result['artifact']} ({result['size_bytes']} bytes); onnx.checker passed; "
        f"ONNX Runtime vs PyTorch on {check['count']} images: max |diff| {check['max_abs_diff']:.2e}, "
        f"top-1 agreement {check['top1_agreement']:.3f}"
    )


def replay_table(rows: list[dict], artifact: str, device: str) -> Table:
    """Accuracy (with its 95 % interval), transfer success and agreement per replayed set."""
    table = Table(title=f"replay through {artifact} on {device}", header_style="bold")
    for col in ("set", "eps", "accuracy (95% CI)", "base accuracy", "transfer success", "agreement", "n"):
        table.add_column(col)
    for r in rows:
        ci = r["accuracy_ci95"]
        table.add_row(
            r["id"],
            fmt(r["eps"], ".4f"),
            f"{r['accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]",
            fmt(r["base_accuracy"], ".3f"),
            fmt(r["transfer_success_rate"], ".3f"),
            fmt(r["agreement"], ".3f"),
            str(r["count"]),
        )
    return table
