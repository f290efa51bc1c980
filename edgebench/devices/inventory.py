"""The device inventory: ``devices/*.yaml`` in the project, merged with a user-level file.

A device file holds one device (a mapping with ``name``) or several (``devices: [...]``)::

    name: jetson-orin-nano
    kind: ssh                 # local | ssh
    host: 192.0.2.10
    port: 22
    user: nvidia
    identity_file: ~/.ssh/id_ed25519   # omitted: use the SSH agent
    python: python3           # `edgebench devices setup` sets the venv it made: <workdir>/venv/bin/python3
    workdir: ~/.cache/edgebench-agent
    runtimes: [onnxruntime, tensorrt]
    profile:                  # board profile, for the roofline and the report
      peak_gops: {fp32: 1280, fp16: 2560, int8: 20000}
      memory_bandwidth_gbs: 68
      power_modes: {0: 15W, 1: 7W}
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench import settings
from edgebench.errors import EdgebenchError, check_keys

log = logging.getLogger(__name__)

KINDS = ("local", "ssh")


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    kind: str = "local"
    host: str | None = None
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts
    accept_new_host_key: bool = False  # like OpenSSH's StrictHostKeyChecking=accept-new
    python: str = "python3"
    base_python: str | None = None  # the device's own Python that `devices setup` made the venv in `python` from
    workdir: str = "~/.cache/edgebench-agent"
    runtimes: tuple[str, ...] = ("onnxruntime",)
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 900.0
    keepalive_interval_s: float = 15.0  # ssh: keep-alive probes; 3 unanswered ones drop the link
    retries: int = 2  # ssh: reconnect-and-rerun attempts after a dropped connection
    retry_backoff_s: float = 2.0  # ssh: first back-off; doubles on each retry
    threads: int | None = None
    description: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # the file it came from

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["runtimes"] = list(self.runtimes)
        return d


_FIELDS = {f.name for f in dataclasses.fields(DeviceSpec)}


def spec_from_mapping(data: Any, source: str) -> DeviceSpec:
    if not isinstance(data, dict):
        raise EdgebenchError(f"{source}: expected a mapping describing a device, found {type(data).__name__}")
    check_keys(data, _FIELDS, source)
    if not data.get("name"):
        raise EdgebenchError(f"{source}: a device needs a 'name'")
    kind = data.get("kind", "local")
    if kind not in KINDS:
        raise EdgebenchError(f"{source}: device '{data['name']}' has kind '{kind}', expected one of {list(KINDS)}")
    if kind == "ssh" and not data.get("host"):
        raise EdgebenchError(f"{source}: ssh device '{data['name']}' needs a 'host'")
    values = dict(data)
    if "runtimes" in values:
        values["runtimes"] = tuple(values["runtimes"])
    if "port" in values:
        try:
            values["port"] = int(values["port"])
        except (TypeError, ValueError):
            raise EdgebenchError(
                f"{source}: device '{data['name']}' port must be a number, found {values['port']!r}"
            ) from None
    values["profile"] = dict(values.get("profile") or {})
    values["source"] = source
    return DeviceSpec(**values)


def _load_file(path: Path) -> list[DeviceSpec]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EdgebenchError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return []
    items = data.get("devices") if isinstance(data, dict) and "devices" in data else [data]
    if not isinstance(items, list):
        raise EdgebenchError(f"{path}: 'devices' must be a list")
    return [spec_from_mapping(item, str(path)) for item in items]


def builtin_local() -> DeviceSpec:
    """This host, when no devices/local.yaml is around (an installed package run elsewhere)."""
    return DeviceSpec(name="local", kind="local", description="this host, agent in a subprocess")


def load_inventory(devices_dir: Path | None = None, user_file: Path | None = None) -> dict[str, DeviceSpec]:
    """All known devices by name: the built-in ``local``, then ``devices/*.yaml``, then the user file."""
    found: dict[str, DeviceSpec] = {"local": builtin_local()}
    folder = devices_dir or settings.devices_dir()
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")) if folder.is_dir() else []
    user = user_file or settings.user_inventory()
    if user.is_file():
        files.append(user)
    for path in files:
        for spec in _load_file(path):
            found[spec.name] = spec
    return found


def get_device(name: str, devices_dir: Path | None = None, user_file: Path | None = None) -> DeviceSpec:
    inventory = load_inventory(devices_dir, user_file)
    if name not in inventory:
        raise EdgebenchError(
            f"unknown device '{name}': expected one of {sorted(inventory)} (see `edgebench devices list`)"
        )
    return inventory[name]


def add_device(spec: DeviceSpec, user_file: Path | None = None, replace: bool = False) -> Path:
    """Add *spec* to the user-level inventory (``settings.user_inventory()``), atomically.

    The file keeps a ``devices:`` list; an existing device of the same name is an error
    unless *replace*. Fields equal to their defaults are left out, so the file stays short.
    """
    import yaml

    from edgebench.util.io import atomic_write_text

    path = Path(user_file or settings.user_inventory()).expanduser()
    if spec.name == "local" and spec.kind != "local":
        raise EdgebenchError("device name 'local' is reserved for this host; choose another name")
    entries: list[dict] = []
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise EdgebenchError(f"{path}: not valid YAML: {exc}") from None
        if data is None:
            entries = []
        elif isinstance(data, dict) and "devices" in data:
            entries = list(data["devices"] or [])
        elif isinstance(data, dict):
            entries = [data]
        else:
            raise EdgebenchError(f"{path}: expected a mapping with a 'devices' list, found {type(data).__name__}")
    for entry in entries:  # validate what is there before rewriting it
        spec_from_mapping(entry, str(path))
    if any(e.get("name") == spec.name for e in entries) and not replace:
        raise EdgebenchError(f"{path}: a device named '{spec.name}' already exists (use --replace to overwrite it)")
    defaults = DeviceSpec(name=spec.name)
    row = {}
    for f in dataclasses.fields(DeviceSpec):
        if f.name == "source":
            continue
        value = getattr(spec, f.name)
        if f.name == "name" or value != getattr(defaults, f.name):
            row[f.name] = list(value) if isinstance(value, tuple) else value
    spec_from_mapping(row, str(path))  # the new entry must load back
    entries = [e for e in entries if e.get("name") != spec.name] + [row]
    text = "# edgebench device inventory (edgebench devices add)\n" + yaml.safe_dump(
        {"devices": entries}, sort_keys=False, default_flow_style=False
    )
    atomic_write_text(path, text)
    log.info("wrote device '%s' to %s", spec.name, path)
    return path
