"""Device kinds by name, imported only when a device of that kind is opened.

Adding a device kind is adding one module with a :class:`~edgebench.devices.base.Device`
subclass and one line here; nothing else chooses between kinds.
"""

from __future__ import annotations

import importlib

from edgebench.devices.base import Device
from edgebench.devices.inventory import DeviceSpec
from edgebench.errors import EdgebenchError

# kind (the inventory's ``kind:``) -> (module, class)
DEVICE_KINDS: dict[str, tuple[str, str]] = {
    "local": ("edgebench.devices.local", "LocalDevice"),
    "ssh": ("edgebench.devices.ssh", "SshDevice"),
}


def open_device(spec: DeviceSpec) -> Device:
    """A device object for *spec* (connections open lazily, on first use)."""
    if spec.kind not in DEVICE_KINDS:
        raise EdgebenchError(
            f"device '{spec.name}': unknown kind '{spec.kind}', expected one of {', '.join(sorted(DEVICE_KINDS))}"
        )
    module, cls = DEVICE_KINDS[spec.kind]
    device_class: type[Device] = getattr(importlib.import_module(module), cls)
    return device_class(spec)
