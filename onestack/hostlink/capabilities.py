"""What a host can do, by name: declared by its drivers, reported in ``HostReport``,
filtered on by the scheduler and asked by the API before promising an operation.

Each driver declares one ``capabilities`` dict (Nova's ``ComputeDriver.capabilities``);
a host's capabilities are its drivers' together: a name some driver declares is True
when every driver that declares it says True (a snapshot needs the hypervisor to hold
the guest still and the storage to copy the disk); a name no driver declares is False.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# hypervisor
LIVE_MIGRATION = "live_migration"
ATTACH_INTERFACE = "attach_interface"
VOLUME_HOTPLUG = "volume_hotplug"
RBD_DISKS = "rbd_disks"  # QEMU opens rbd: disks itself
PAUSE = "pause"
SUSPEND = "suspend"
RESIZE = "resize"
SERIAL_CONSOLE = "serial_console"
CONFIG_DRIVE = "config_drive"
DIAGNOSTICS = "diagnostics"
RESCUE = "rescue"
# hypervisor and storage
SNAPSHOT = "snapshot"
# storage
RBD = "rbd"  # boot disks and volumes as RBD images
VOLUMES = "volumes"

#: Every name a driver may declare.
ALL = frozenset({
    LIVE_MIGRATION, ATTACH_INTERFACE, VOLUME_HOTPLUG, RBD_DISKS, PAUSE, SUSPEND, RESIZE,
    SERIAL_CONSOLE, CONFIG_DRIVE, DIAGNOSTICS, RESCUE, SNAPSHOT, RBD, VOLUMES,
})

Capabilities = dict[str, bool]


def merge(*declared: Mapping[str, bool]) -> Capabilities:
    """One host's capabilities from its drivers' declarations (a name is True when every
    driver declaring it says True)."""
    merged: Capabilities = {}
    for caps in declared:
        for name, value in caps.items():
            merged[name] = merged.get(name, True) and bool(value)
    return merged


def missing(have: Mapping[str, bool] | None, required: Iterable[str]) -> list[str]:
    """The ``required`` capabilities ``have`` lacks, sorted."""
    have = have or {}
    return sorted(name for name in set(required) if not have.get(name, False))
