"""QEMU's ``-drive`` options follow the disk's kind, not the look of its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.drivers.hypervisor.base import GuestDisk, GuestSpec, HypervisorError
from onestack.drivers.hypervisor.qemu import (
    HOTPLUG_PORTS,
    QemuDriver,
    _blockdev,
    spec_from_json,
    spec_to_json,
)


def spec(*disks: GuestDisk) -> GuestSpec:
    return GuestSpec(uuid="u1", name="vm", vcpus=1, memory_mib=128, disks=list(disks))


def test_file_and_rbd_disks(tmp_path: Path) -> None:
    boot = tmp_path / "a:b" / "disk.qcow2"  # a colon in a file path is still a file
    boot.parent.mkdir()
    boot.write_bytes(b"")
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    args = driver._drive_args(spec(
        GuestDisk.file(boot),
        GuestDisk(kind="rbd", source="volumes/volume-1", format="raw", boot_index=None,
                  user="cinder")))
    drives = [args[i + 1] for i, a in enumerate(args) if a == "-drive"]
    devices = [args[i + 1] for i, a in enumerate(args)
               if a == "-device" and args[i + 1].startswith("virtio-blk")]
    assert drives[0].startswith(f"file={boot.resolve()},format=qcow2,if=none,id=disk0,")
    assert drives[1].startswith("file=rbd:volumes/volume-1:id=cinder,format=raw,if=none,"
                                "id=disk1,cache=writeback")
    assert devices == ["virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0",
                       "virtio-blk-pci,drive=disk1,id=virtio-disk1"]


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    with pytest.raises(HypervisorError, match="does not exist"):
        driver._drive_args(spec(GuestDisk.file(tmp_path / "nope.qcow2")))
    with pytest.raises(HypervisorError, match="no disk"):
        driver._drive_args(spec())


def test_spec_round_trip_and_old_specs() -> None:
    s = spec(GuestDisk.file("/x/disk.qcow2"))
    assert spec_from_json(spec_to_json(s)) == s
    old = {"uuid": "u1", "name": "vm", "vcpus": 1, "memory_mib": 128,
           "disk_path": "/x/disk.qcow2", "disk_format": "qcow2", "nics": [],
           "config_drive": None, "smbios": {}}
    assert spec_from_json(old) == s


VOLUME = "0b6c1b2e-7d51-4f4e-9a57-3c2f1d9e8a10"


def test_volumes_are_blockdev_nodes_with_their_serial_on_root_ports(tmp_path: Path) -> None:
    boot = tmp_path / "disk.qcow2"
    vol = tmp_path / "volume.qcow2"
    boot.write_bytes(b"")
    vol.write_bytes(b"")
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    args = driver._drive_args(spec(
        GuestDisk.file(boot),
        GuestDisk(kind="file", source=str(vol), format="qcow2", boot_index=None,
                  volume_id=VOLUME)))
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    ports = [d for d in devices if d.startswith("pcie-root-port")]
    # one port for the volume it starts with, and HOTPLUG_PORTS free ones
    assert len(ports) == HOTPLUG_PORTS + 1
    assert len({p.split("chassis=")[1] for p in ports}) == len(ports)
    blockdevs = [args[i + 1] for i, a in enumerate(args) if a == "-blockdev"]
    assert len(blockdevs) == 1 and f'"filename": "{vol}"' in blockdevs[0]
    volume_device = [d for d in devices if d.startswith("virtio-blk-pci,id=volume-")]
    assert volume_device == [f"virtio-blk-pci,id=volume-{VOLUME},drive=vol"
                             f"{VOLUME.replace('-', '')[:28]},serial={VOLUME[:20]},"
                             "bus=hotplug0"]
    # the root disk stays a -drive on the root bus
    assert [d for d in devices if "bootindex=0" in d] == [
        "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0"]


def test_boot_volume_is_on_the_root_bus_with_bootindex(tmp_path: Path) -> None:
    vol = tmp_path / "volume.raw"
    vol.write_bytes(b"")
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    args = driver._drive_args(spec(GuestDisk(kind="file", source=str(vol), format="raw",
                                             boot_index=0, volume_id=VOLUME)))
    assert "-drive" not in args
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    assert devices[-1].endswith(f"serial={VOLUME[:20]},bootindex=0")
    assert "bus=" not in devices[-1]


def test_rbd_volume_blockdev() -> None:
    node = _blockdev(GuestDisk(kind="rbd", source="volumes/volume-x", format="raw",
                               boot_index=None, user="cinder", volume_id=VOLUME,
                               conf="/etc/ceph/ceph.conf"), "n1")
    assert node["driver"] == "raw" and node["node-name"] == "n1"
    assert node["file"] == {"driver": "rbd", "pool": "volumes", "image": "volume-x",
                            "user": "cinder", "conf": "/etc/ceph/ceph.conf"}
    with pytest.raises(HypervisorError, match="pool"):
        _blockdev(GuestDisk(kind="rbd", source="nopool", volume_id=VOLUME), "n2")


def test_spec_with_volumes_round_trips() -> None:
    s = spec(GuestDisk.file("/x/disk.qcow2"),
             GuestDisk(kind="file", source="/v", format="raw", boot_index=None,
                       volume_id=VOLUME))
    assert spec_from_json(spec_to_json(s)) == s
    assert s.disks[1].serial == VOLUME[:20]
