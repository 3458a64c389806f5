"""What a host can do, by name: declared by its drivers, reported in ``HostReport``,
filtered on by the scheduler and asked by the API before promising an operation.

Each driver declares one ``capabilities`` dict (Nova's ``ComputeDriver.capabilities``);
a host's capabilities are the union of its drivers' (a name missing means False).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# hypervisor
LIVE_MIGRATION = "live_migration"
ATTACH_INTERFACE = "attach_interface"
VOLUME_HOTPLUG = "volume_hotplug"
PAUSE = "pause"
SUSPEND = "suspend"
SNAPSHOT = "snapshot"
RESIZE = "resize"
SERIAL_CONSOLE = "serial_console"
CONFIG_DRIVE = "config_drive"
DIAGNOSTICS = "diagnostics"
RESCUE = "rescue"
# storage
IMAGE_DISKS = "image_disks"
RBD_DISKS = "rbd_disks"
VOLUMES = "volumes"

#: Every name a driver may declare.
ALL = frozenset({
    LIVE_MIGRATION, ATTACH_INTERFACE, VOLUME_HOTPLUG, PAUSE, SUSPEND, SNAPSHOT, RESIZE,
    SERIAL_CONSOLE, CONFIG_DRIVE, DIAGNOSTICS, RESCUE, IMAGE_DISKS, RBD_DISKS, VOLUMES,
})

Capabilities = dict[str, bool]


def merge(*declared: Mapping[str, bool]) -> Capabilities:
    """One host's capabilities from its drivers' declarations (any True wins)."""
    merged: Capabilities = {}
    for caps in declared:
        for name, value in caps.items():
            merged[name] = merged.get(name, False) or bool(value)
    return merged


def missing(have: Mapping[str, bool] | None, required: Iterable[str]) -> list[str]:
    """The ``required`` capabilities ``have`` lacks, sorted."""
    have = have or {}
    return sorted(name for name in set(required) if not have.get(name, False))
