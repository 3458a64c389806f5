"""QEMU's ``-drive`` options follow the disk's kind, not the look of its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.drivers.hypervisor.base import GuestDisk, GuestSpec, HypervisorError
from onestack.drivers.hypervisor.qemu import QemuDriver, spec_from_json, spec_to_json


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
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
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
