"""The agent's interface hot-plug (onestack/agent/nics.py) against the fake hypervisor:
plug the desired ports' taps and NICs, unplug the others, report each port once."""

from __future__ import annotations

import pytest

from onestack.agent.nics import NicAttacher
from onestack.drivers.hypervisor.base import GuestDisk, GuestNic, GuestSpec
from onestack.drivers.hypervisor.fake import FakeDriver
from onestack.drivers.network.base import NetworkDriverError
from onestack.hostlink.types import DesiredInstance, PortInfo

UUID = "8d3f2a5e-2222-4b4b-9c9c-000000000001"
BOOT = PortInfo(id="p-boot", network_id="n1", mac="fa:16:3e:00:00:01", mtu=1450)
EXTRA = PortInfo(id="p-extra", network_id="n1", mac="fa:16:3e:00:00:02", mtu=1450)
BROKEN = PortInfo(id="p-broken", network_id="n-missing", mac="fa:16:3e:00:00:03", mtu=1450)


class Host:
    """The agent's plug path and the server's port status, as stand-ins."""

    def __init__(self) -> None:
        self.taps: set[str] = set()
        self.reports: list[tuple[list[str], str]] = []

    def plug(self, port: PortInfo) -> str:
        if port.network_id == "n-missing":
            raise NetworkDriverError(f"Network {port.network_id} is not set up")
        self.taps.add(port.id)
        return "tap" + port.id

    def unplug(self, port_id: str) -> None:
        self.taps.discard(port_id)

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        self.reports.append((list(port_ids), status))


def desired(*ports: PortInfo, task: str | None = None) -> DesiredInstance:
    return DesiredInstance(uuid=UUID, name="vm", hostname="vm", vm_state="active",
                           task_state=task, task_args={}, power_state=1, vcpus=1,
                           memory_mb=128, root_gb=1, disks=[], ports=list(ports))


@pytest.fixture
def setup() -> tuple[FakeDriver, Host, NicAttacher]:
    driver = FakeDriver()
    driver.spawn(GuestSpec(uuid=UUID, name="vm", vcpus=1, memory_mib=128,
                           disks=[GuestDisk.file("/disks/root.qcow2")],
                           nics=[GuestNic(port_id=BOOT.id, mac=BOOT.mac, tap="tapboot")]))
    host = Host()
    return driver, host, NicAttacher(driver, host, host.plug, host.unplug)  # type: ignore[arg-type]


def test_plug_report_unplug(setup: tuple[FakeDriver, Host, NicAttacher]) -> None:
    driver, host, nics = setup
    nics.converge(desired(BOOT, EXTRA))
    assert driver.attached_nics(UUID) == [BOOT.id, EXTRA.id]
    assert host.taps == {EXTRA.id}  # the boot port's tap was made by the boot
    assert host.reports == [([BOOT.id, EXTRA.id], "ACTIVE")]
    nics.converge(desired(BOOT, EXTRA))  # steady: nothing again
    assert len(host.reports) == 1
    nics.converge(desired(BOOT))  # detached: out of the guest, tap gone, DOWN
    assert driver.attached_nics(UUID) == [BOOT.id]
    assert host.taps == set()
    assert host.reports[-1] == ([EXTRA.id], "DOWN")
    assert f"virtio-net {EXTRA.mac} detached" in driver.console_log(UUID)


def test_a_task_owns_the_guest_and_failures_are_retried(
        setup: tuple[FakeDriver, Host, NicAttacher]) -> None:
    driver, host, nics = setup
    nics.converge(desired(BOOT, EXTRA, task="rebooting"))
    assert driver.attached_nics(UUID) == [BOOT.id] and host.reports == []
    nics.converge(desired(BOOT, BROKEN))  # its network is not here: not plugged
    assert driver.attached_nics(UUID) == [BOOT.id]
    assert host.reports == [([BOOT.id], "ACTIVE")]


def test_paused_guest_plugs_but_unplugs_when_it_runs(
        setup: tuple[FakeDriver, Host, NicAttacher]) -> None:
    driver, host, nics = setup
    driver.pause(UUID)
    nics.converge(desired(BOOT, EXTRA))
    assert driver.attached_nics(UUID) == [BOOT.id, EXTRA.id]
    nics.converge(desired(BOOT))
    assert EXTRA.id in driver.attached_nics(UUID)  # a paused guest cannot let go
    driver.unpause(UUID)
    nics.converge(desired(BOOT))
    assert driver.attached_nics(UUID) == [BOOT.id]
    assert host.reports[-1] == ([EXTRA.id], "DOWN")


def test_a_guest_stopped_before_the_unplug_reports_the_port_down(
        setup: tuple[FakeDriver, Host, NicAttacher]) -> None:
    driver, host, nics = setup
    nics.converge(desired(BOOT, EXTRA))
    driver.power_off(UUID)
    nics.converge(desired(BOOT))  # detached while it does not run: in no guest
    assert host.reports[-1] == ([EXTRA.id], "DOWN")
    nics.converge(desired(BOOT))
    assert host.reports[-1] == ([EXTRA.id], "DOWN") and len(host.reports) == 2
