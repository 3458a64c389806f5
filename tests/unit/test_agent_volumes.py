"""The agent's volume attachments (onestack/agent/volumes.py) against the fake
hypervisor: plug what is desired, unplug what is not, grow what grew, report."""

from __future__ import annotations

from typing import Any

import pytest

from onestack.agent.volumes import VolumeAttacher, guest_disk
from onestack.drivers.hypervisor.base import GuestDisk, GuestSpec, HypervisorError
from onestack.drivers.hypervisor.fake import FakeDriver
from onestack.hostlink.types import DesiredInstance, VolumeAttachment, VolumeDisk

GiB = 1 << 30
UUID = "8d3f2a5e-1111-4b4b-9c9c-000000000001"
VOL_A = "aaaaaaaa-0000-4000-8000-00000000000a"
VOL_B = "bbbbbbbb-0000-4000-8000-00000000000b"


class Reports:
    """A HostToServer stand-in that keeps what is reported."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.grown: list[tuple[str, str, int, str | None]] = []

    def report_attachments(self, uuid: str, attachment_ids: list[str]) -> None:
        self.calls.append((uuid, list(attachment_ids)))

    def volume_extended(self, uuid: str, volume_id: str, size_gb: int,
                        error: str | None) -> None:
        self.grown.append((uuid, volume_id, size_gb, error))


def desired(task: str | None = None, disks: list[Any] | None = None) -> DesiredInstance:
    return DesiredInstance(uuid=UUID, name="vm", hostname="vm", vm_state="active",
                           task_state=task, task_args={}, power_state=1, vcpus=1,
                           memory_mb=128, root_gb=1, disks=disks or [], ports=[])


def attachment(volume_id: str, size_gb: int = 1) -> VolumeAttachment:
    return VolumeAttachment(
        attachment_id="att-" + volume_id[:8], volume_id=volume_id, instance_uuid=UUID,
        connection={"driver_volume_type": "file",
                    "data": {"path": f"/volumes/volume-{volume_id}", "format": "qcow2"}},
        size_gb=size_gb)


@pytest.fixture
def setup() -> tuple[FakeDriver, Reports, VolumeAttacher]:
    driver = FakeDriver()
    driver.spawn(GuestSpec(uuid=UUID, name="vm", vcpus=1, memory_mib=128,
                           disks=[GuestDisk.file("/disks/root.qcow2")]))
    reports = Reports()
    return driver, reports, VolumeAttacher(driver, reports)  # type: ignore[arg-type]


def test_plugs_unplugs_and_reports(setup: tuple[FakeDriver, Reports, VolumeAttacher]
                                   ) -> None:
    driver, reports, attacher = setup
    a, b = attachment(VOL_A), attachment(VOL_B)
    attacher.converge(desired(), [a, b])
    assert set(driver.attached_volumes(UUID)) == {VOL_A, VOL_B}
    assert reports.calls == [(UUID, sorted([a.attachment_id, b.attachment_id]))]
    # the same again: nothing to do, nothing reported again (it did not change)
    attacher.converge(desired(), [a, b])
    assert len(reports.calls) == 1
    # B no longer desired: unplugged, and the report says so
    attacher.converge(desired(), [a])
    assert set(driver.attached_volumes(UUID)) == {VOL_A}
    assert reports.calls[-1] == (UUID, [a.attachment_id])
    assert f"virtio-blk {VOL_B[:20]} detached" in driver.console_log(UUID)


def test_grows_an_extended_volume(setup: tuple[FakeDriver, Reports, VolumeAttacher]
                                  ) -> None:
    driver, reports, attacher = setup
    attacher.converge(desired(), [attachment(VOL_A, size_gb=1)])
    assert reports.grown == []
    attacher.converge(desired(), [attachment(VOL_A, size_gb=3)])
    assert driver.attached_volumes(UUID)[VOL_A] == 3 * GiB
    # the server hears that the guest's disk grew, once
    assert reports.grown == [(UUID, VOL_A, 3, None)]
    attacher.converge(desired(), [attachment(VOL_A, size_gb=3)])
    assert len(reports.grown) == 1


def test_a_task_owns_the_guest_and_a_stopped_guest_counts_its_spec(
        setup: tuple[FakeDriver, Reports, VolumeAttacher]) -> None:
    driver, reports, attacher = setup
    attacher.converge(desired(task="rebooting"), [attachment(VOL_A)])
    assert driver.attached_volumes(UUID) == {} and reports.calls == []
    driver.power_off(UUID)
    attacher.converge(desired(), [attachment(VOL_A)])
    # nothing plugged into a guest that does not run, yet it counts as attached
    assert driver.attached_volumes(UUID) == {}
    assert reports.calls == [(UUID, [attachment(VOL_A).attachment_id])]


def test_a_paused_guest_keeps_its_volumes_until_it_runs(
        setup: tuple[FakeDriver, Reports, VolumeAttacher]) -> None:
    driver, _, attacher = setup
    attacher.converge(desired(), [attachment(VOL_A)])
    driver.pause(UUID)
    attacher.converge(desired(), [])
    assert VOL_A in driver.attached_volumes(UUID)
    driver.unpause(UUID)
    attacher.converge(desired(), [])
    assert driver.attached_volumes(UUID) == {}


def test_the_boot_volume_is_never_unplugged(
        setup: tuple[FakeDriver, Reports, VolumeAttacher]) -> None:
    driver, _, attacher = setup
    boot = attachment(VOL_A)
    attacher.converge(desired(), [boot])
    root = VolumeDisk(volume_id=VOL_A, attachment_id=boot.attachment_id,
                      connection=boot.connection, boot_index=0)
    attacher.converge(desired(disks=[root]), [])
    assert VOL_A in driver.attached_volumes(UUID)


def test_connection_info_to_guest_disks() -> None:
    disk = guest_disk(VOL_A, {"driver_volume_type": "file",
                              "data": {"path": "/v/volume-a", "format": "qcow2",
                                       "access_mode": "ro"}})
    assert (disk.kind, disk.source, disk.format, disk.read_only) == (
        "file", "/v/volume-a", "qcow2", True)
    assert disk.serial == VOL_A[:20] and disk.boot_index is None
    rbd = guest_disk(VOL_B, {"driver_volume_type": "rbd",
                             "data": {"name": "volumes/volume-b", "auth_username": "cinder",
                                      "hosts": ["127.0.0.1"], "ports": ["6789"]}}, 0)
    assert (rbd.kind, rbd.source, rbd.user, rbd.format, rbd.boot_index) == (
        "rbd", "volumes/volume-b", "cinder", "raw", 0)
    with pytest.raises(HypervisorError, match="iscsi"):
        guest_disk(VOL_A, {"driver_volume_type": "iscsi", "data": {}})
    with pytest.raises(HypervisorError, match="no path"):
        guest_disk(VOL_A, {"driver_volume_type": "file", "data": {}})
