"""The fake hypervisor moves power states as QemuDriver does, and re-adopts from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.drivers.hypervisor import (
    GuestDisk,
    GuestNic,
    GuestSpec,
    HypervisorError,
    PowerState,
    load,
)
from onestack.drivers.hypervisor.fake import FakeDriver

UUID = "0f2b8f56-5c1a-4d4e-9c39-3d1c1d0b7a11"


def spec(uuid: str = UUID) -> GuestSpec:
    return GuestSpec(uuid=uuid, name="vm", vcpus=1, memory_mib=128,
                     disks=[GuestDisk.file("/nonexistent/disk.qcow2")],
                     nics=[GuestNic(port_id="p1", mac="fa:16:3e:00:00:01", tap="tapp1")])


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


def boots(driver: FakeDriver, uuid: str = UUID) -> int:
    return driver.console_log(uuid).count("started")


def test_load_by_name_accepts_the_qemu_driver_arguments(tmp_path: Path) -> None:
    d = load("fake", instances_dir=tmp_path, accel="kvm", name_prefix="h1-",
             qemu_binary="/bin/false", probe_kernel=None)
    assert isinstance(d, FakeDriver)
    info = d.host_info()
    assert (info.hypervisor_type, info.accel) == ("QEMU", "kvm")
    assert info.hypervisor_version == 7_002_000
    assert FakeDriver(vcpus=2, memory_mib=1024).host_info().vcpus == 2
    assert FakeDriver().host_info().accel == "tcg"


def test_unknown_guest(driver: FakeDriver) -> None:
    assert driver.power_state(UUID) == PowerState.NOSTATE
    assert driver.list_guests() == {}
    driver.power_off(UUID)
    driver.destroy(UUID)
    with pytest.raises(HypervisorError):
        driver.pause(UUID)
    with pytest.raises(HypervisorError):
        driver.console_log(UUID)


def test_spawn_is_idempotent_and_logs_a_boot(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.spawn(spec())
    assert driver.power_state(UUID) == PowerState.RUNNING
    assert driver.list_guests() == {UUID: PowerState.RUNNING}
    assert boots(driver) == 1
    assert UUID in driver.console_log(UUID)
    assert driver.console_log(UUID, lines=1).count("\n") == 1
    assert driver.console_log(UUID, lines=0) == ""
    assert driver.serial_socket(UUID).name == "console.sock"


def test_pause_and_unpause(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.pause(UUID)
    driver.pause(UUID)
    assert driver.power_state(UUID) == PowerState.PAUSED
    driver.spawn(spec())  # a paused guest runs: spawn leaves it alone
    assert driver.power_state(UUID) == PowerState.PAUSED
    driver.unpause(UUID)
    driver.unpause(UUID)
    assert driver.power_state(UUID) == PowerState.RUNNING


def test_power_off_and_start_again(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.power_off(UUID, timeout=30)
    driver.power_off(UUID)
    assert driver.power_state(UUID) == PowerState.SHUTDOWN
    assert driver.list_guests() == {UUID: PowerState.SHUTDOWN}
    for verb in (driver.pause, driver.unpause, driver.suspend):
        with pytest.raises(HypervisorError, match="not running"):
            verb(UUID)
    with pytest.raises(HypervisorError, match="saved state"):
        driver.resume(spec())
    driver.spawn(spec())
    assert driver.power_state(UUID) == PowerState.RUNNING
    assert boots(driver) == 2


def test_reboot(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.reboot(spec(), hard=True)
    driver.reboot(spec(), hard=False, timeout=5)
    assert driver.power_state(UUID) == PowerState.RUNNING
    assert boots(driver) == 3
    driver.pause(UUID)
    driver.reboot(spec(), hard=True)
    assert driver.power_state(UUID) == PowerState.RUNNING
    driver.power_off(UUID)
    driver.reboot(spec(), hard=True)  # a stopped guest is started
    assert driver.power_state(UUID) == PowerState.RUNNING
    other = spec("5d0f9a51-6a2f-4f57-8f3e-9b6c2f3f4e01")
    driver.reboot(other, hard=False)  # even one never seen before
    assert driver.power_state(other.uuid) == PowerState.RUNNING


def test_suspend_and_resume(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.suspend(UUID)
    driver.suspend(UUID)
    assert driver.power_state(UUID) == PowerState.SUSPENDED
    with pytest.raises(HypervisorError):
        driver.pause(UUID)
    driver.resume(spec())
    driver.resume(spec())
    assert driver.power_state(UUID) == PowerState.RUNNING
    assert boots(driver) == 1  # the same boot continues
    driver.suspend(UUID)
    driver.spawn(spec())  # starting a suspended guest restores it
    assert driver.power_state(UUID) == PowerState.RUNNING
    assert boots(driver) == 1
    driver.suspend(UUID)
    driver.power_off(UUID)  # drops the saved memory
    assert driver.power_state(UUID) == PowerState.SHUTDOWN


def test_destroy(driver: FakeDriver) -> None:
    driver.spawn(spec())
    driver.destroy(UUID)
    driver.destroy(UUID)
    assert driver.power_state(UUID) == PowerState.NOSTATE
    assert driver.list_guests() == {}


def test_a_second_driver_over_the_same_dir_readopts(tmp_path: Path) -> None:
    first = FakeDriver(tmp_path)
    second_uuid = "5d0f9a51-6a2f-4f57-8f3e-9b6c2f3f4e01"
    first.spawn(spec())
    first.spawn(spec(second_uuid))
    first.pause(second_uuid)

    again = FakeDriver(instances_dir=tmp_path, accel="auto")
    assert again.list_guests() == {UUID: PowerState.RUNNING, second_uuid: PowerState.PAUSED}
    again.spawn(spec())
    assert boots(again) == 1  # adopted, not restarted
    # Both see each other's changes: the state is the host's, not the object's.
    again.power_off(UUID)
    assert first.power_state(UUID) == PowerState.SHUTDOWN
    first.destroy(second_uuid)
    assert again.list_guests() == {UUID: PowerState.SHUTDOWN}
    # Without a directory nothing is shared.
    assert FakeDriver().list_guests() == {}
