"""``edgebench devices``: list the inventory, add an SSH device, check that a device is ready."""

from __future__ import annotations

from pathlib import Path

import typer

from edgebench.errors import EdgebenchError


def register(app: typer.Typer) -> None:
    devices = typer.Typer(
        help=(
            "The device inventory: devices/*.yaml in the project plus your user file.\n\n"
            "Examples:\n\n"
            "  edgebench devices list\n\n"
            "  edgebench devices add orin --host 192.0.2.10 --user nvidia --identity-file ~/.ssh/id_ed25519\n\n"
            "  edgebench devices check orin --json\n\n"
            "  edgebench devices setup orin --offline"
        ),
        no_args_is_help=True,
    )
    app.add_typer(devices, name="devices")

    @devices.command("list", help="List known devices (name, address, runtimes, where each is defined).")
    def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print the inventory as JSON.")) -> None:
        from edgebench.cli.ui import out_console, print_json
        from edgebench.devices.inventory import load_inventory
        from edgebench.report.devices_view import inventory_table

        inventory = load_inventory()
        if json_out:
            print_json([spec.to_dict() for spec in inventory.values()])
            return
        out_console.print(inventory_table(inventory.values()))

    @devices.command("add", help="Add an SSH device to your user inventory (written atomically).")
    def add_cmd(
        name: str = typer.Argument(..., help="A short name, used as --device NAME."),
        host: str = typer.Option(..., "--host", help="Host name or address."),
        port: int = typer.Option(22, "--port", help="SSH port."),
        user: str | None = typer.Option(None, "--user", help="Login user (default: yours, or ~/.ssh/config's)."),
        identity_file: str | None = typer.Option(
            None, "--identity-file", "-i", help="Private key; omit to use the SSH agent and ~/.ssh/id_*."
        ),
        known_hosts: str | None = typer.Option(
            None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)."
        ),
        accept_new_host_key: bool = typer.Option(
            False,
            "--accept-new-host-key",
            help="Record the host key on first connect (a CHANGED key is still refused).",
        ),
        python: str = typer.Option("python3", "--python", help="Python on the device."),
        workdir: str = typer.Option(
            "~/.cache/edgebench-agent", "--workdir", help="Agent and cache folder on the device."
        ),
        runtime: list[str] = typer.Option(["onnxruntime"], "--runtime", help="Runtimes on the device (repeat)."),
        threads: int | None = typer.Option(None, "--threads", help="Default intra-op threads for jobs there."),
        profile_file: Path | None = typer.Option(
            None, "--profile", help="YAML board profile (peak_gops, memory_bandwidth_gbs, power_modes)."
        ),
        description: str = typer.Option("", "--description", help="Free text shown in reports."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite a device of the same name."),
        user_file: Path | None = typer.Option(
            None, "--file", help="Inventory file to write (default: the user inventory)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the stored entry as JSON."),
    ) -> None:
        import yaml

        from edgebench.cli.ui import out_console, print_json
        from edgebench.devices.inventory import add_device, spec_from_mapping
        from edgebench.report.devices_view import added_line

        profile: dict = {}
        if profile_file is not None:
            if not profile_file.is_file():
                raise EdgebenchError(f"--profile: expected a YAML file at {profile_file}, found nothing")
            loaded = yaml.safe_load(profile_file.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise EdgebenchError(f"--profile {profile_file}: expected a mapping, found {type(loaded).__name__}")
            profile = loaded.get("profile", loaded)
        row = {
            "name": name,
            "kind": "ssh",
            "host": host,
            "port": port,
            "user": user,
            "identity_file": identity_file,
            "known_hosts": known_hosts,
            "accept_new_host_key": accept_new_host_key,
            "python": python,
            "workdir": workdir,
            "runtimes": runtime,
            "threads": threads,
            "description": description,
            "profile": profile,
        }
        spec = spec_from_mapping(row, "edgebench devices add")
        path = add_device(spec, user_file, replace=replace)
        if json_out:
            print_json(dict(spec.to_dict(), source=str(path)))
        else:
            out_console.print(added_line(spec, path))

    @devices.command(
        "check", help="Connect to a device and report Python, runtimes, JetPack, power mode, disk, clock skew."
    )
    def check_cmd(
        name: str = typer.Argument(..., help="Device name from the inventory."),
        accept_new_host_key: bool = typer.Option(
            False, "--accept-new-host-key", help="Record this host's key if it is not in known_hosts yet."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json
        from edgebench.devices.check import check_device
        from edgebench.devices.inventory import get_device
        from edgebench.report.devices_view import check_table

        spec = get_device(name)
        report = check_device(spec, accept_new_host_key=True if accept_new_host_key else None)
        if json_out:
            print_json(report.to_dict())
        else:
            out_console.print(check_table(report))
        if not report.ok:
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise EdgebenchError(f"device '{name}' is not ready: {report.problems[0]}{more}")

    @devices.command(
        "setup",
        help="Make a device ready for the agent: a venv in its workdir (system site-packages visible) with "
        "numpy, psutil and its runtimes, from its pip's index or a wheelhouse the host downloads (--offline); "
        "records the venv's python in the inventory. A second run only checks.",
    )
    def setup_cmd(
        name: str = typer.Argument(..., help="Device name from the inventory."),
        offline: bool | None = typer.Option(
            None,
            "--offline/--online",
            help="Install from a host-built wheelhouse / only from the device's index "
            "(default: the index, the wheelhouse when the device's pip cannot reach it).",
        ),
        runtime: list[str] = typer.Option([], "--runtime", help="A runtime to add to the device's list (repeat)."),
        wheel: list[Path] = typer.Option(
            [], "--wheel", help="A wheel to install there, e.g. onnxruntime-gpu (repeat)."
        ),
        python: str | None = typer.Option(None, "--python", help="The device's Python to make the venv with."),
        accept_new_host_key: bool = typer.Option(
            False, "--accept-new-host-key", help="Record this host's key if it is not in known_hosts yet."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
    ) -> None:
        from edgebench.cli.ui import out_console, print_json, progress_line
        from edgebench.devices.inventory import get_device
        from edgebench.devices.setup import problem_summary, setup_device
        from edgebench.report.devices_view import setup_table

        report = setup_device(
            get_device(name),
            python,
            runtime,
            wheel,
            offline,
            True if accept_new_host_key else None,
            progress=progress_line,
        )
        if json_out:
            print_json(report.to_dict())
        else:
            out_console.print(setup_table(report))
        problem = problem_summary(report)
        if problem is not None:
            raise problem
