"""Rescue in the hypervisor drivers: the rescue spec boots the rescue disk and keeps the
guest's own disks after it, the fake records it, QEMU's command line boots it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onestack.drivers.hypervisor import GuestDisk, GuestSpec, PowerState
from onestack.drivers.hypervisor.base import rescue_spec
from onestack.drivers.hypervisor.fake import FakeDriver
from onestack.drivers.hypervisor.qemu import QemuDriver

UUID = "5d0c3a44-1b8e-4a57-a2f4-0c9e8f1b2a33"
VOLUME = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def spec(own: Path, volume: Path) -> GuestSpec:
    return GuestSpec(uuid=UUID, name="vm", vcpus=1, memory_mib=128, disks=[
        GuestDisk.file(own),
        GuestDisk(kind="file", source=str(volume), format="raw", boot_index=None,
                  volume_id=VOLUME)])


def test_rescue_spec_boots_the_rescue_disk_first(tmp_path: Path) -> None:
    own = spec(tmp_path / "disk", tmp_path / "vol")
    rescued = rescue_spec(own, GuestDisk.file(tmp_path / "rescue", boot_index=None))
    assert [(d.source, d.boot_index) for d in rescued.disks] == [
        (str(tmp_path / "rescue"), 0), (str(tmp_path / "disk"), None),
        (str(tmp_path / "vol"), None)]
    assert rescued.disks[2].volume_id == VOLUME
    assert own.disks[0].boot_index == 0  # the guest's own spec is left as it was


def test_fake_records_rescue_and_unrescue(tmp_path: Path) -> None:
    driver = FakeDriver(tmp_path)
    own = spec(tmp_path / "disk", tmp_path / "vol")
    driver.spawn(own)
    driver.rescue(own, GuestDisk.file(tmp_path / "rescue"))
    assert driver.rescued(UUID) == f"file:{tmp_path / 'rescue'}"
    # another driver over the same directory (a restarted agent) sees it
    again = FakeDriver(tmp_path)
    assert again.rescued(UUID) == f"file:{tmp_path / 'rescue'}"
    assert again.power_state(UUID) == PowerState.RUNNING
    guest = again._get(UUID)
    assert guest is not None
    assert guest["spec"]["disks"][:2] == [f"file:{tmp_path / 'rescue'}",
                                          f"file:{tmp_path / 'disk'}"]
    again.unrescue(own)
    assert driver.rescued(UUID) is None
    guest = driver._get(UUID)
    assert guest is not None
    assert guest["spec"]["disks"][0] == f"file:{tmp_path / 'disk'}"
    assert guest["boots"] == 3
    assert "rescue: booting from" in driver.console_log(UUID)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                    reason="qemu-system-x86 not installed")
def test_qemu_command_line_boots_the_rescue_disk(tmp_path: Path) -> None:
    for name in ("disk", "vol", "rescue"):
        (tmp_path / name).write_bytes(b"")
    driver = QemuDriver(tmp_path / "instances", accel="tcg")
    rescued = rescue_spec(spec(tmp_path / "disk", tmp_path / "vol"),
                          GuestDisk.file(tmp_path / "rescue"))
    args = driver._command_line(rescued, "tcg", None)
    drives = [a for a in args if a.startswith("file=")]
    devices = [a for a in args if a.startswith("virtio-blk-pci,drive=disk")]
    assert drives[0].startswith(f"file={tmp_path / 'rescue'},")
    assert drives[1].startswith(f"file={tmp_path / 'disk'},")
    assert devices == ["virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0",
                       "virtio-blk-pci,drive=disk1,id=virtio-disk1"]
    assert sum("bootindex" in a for a in args) == 1  # the volume boots neither
    assert QemuDriver.capabilities["rescue"] is True
