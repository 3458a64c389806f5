"""The reconciler against the fake drivers and an in-memory control plane."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.agent.reconciler import Agent
from onestack.drivers import network
from onestack.drivers.hypervisor.base import PowerState
from onestack.drivers.hypervisor.fake import FakeDriver
from onestack.drivers.storage.fake import FakeStorage, write_empty_qcow2
from onestack.hostlink.types import (
    DesiredInstance,
    DhcpHost,
    FloatingIPSpec,
    HostReport,
    HostState,
    ImageDisk,
    ImageRef,
    NetworkSpec,
    PortInfo,
    RouterPort,
    RouterSpec,
    SubnetSpec,
)


class Control:
    """The server side (``hostlink.HostToServer``), as plain dicts: instances by uuid,
    what the agent reported."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.instances: dict[str, DesiredInstance] = {}
        self.faults: dict[str, str] = {}
        self.deleted: list[str] = []
        self.reports: list[HostReport] = []
        self.port_status: dict[str, str] = {}
        self.uploads: dict[str, int] = {}
        #: Networks deleted from the cloud (every other network exists).
        self.deleted_networks: set[str] = set()
        #: Routers in the desired state, and the networks they need besides.
        self.routers: list[RouterSpec] = []
        self.extra_networks: list[NetworkSpec] = []
        #: What the agent reported of its routers: (applied, failed) per pass.
        self.router_reports: list[tuple[dict[str, dict[str, str]], list[str]]] = []

    def register(self, report: HostReport) -> None:
        self.reports.append(report)

    def desired_state(self, host: str) -> HostState:
        networks = self.networks(host)
        return HostState(host=host, instances=self.desired_instances(host),
                         networks=networks + [n for n in self.extra_networks
                                              if n.id not in {m.id for m in networks}],
                         routers=list(self.routers))

    def desired_instances(self, host: str) -> list[DesiredInstance]:
        return [DesiredInstance(**vars(d)) for d in self.instances.values()]

    def networks(self, host: str) -> list[NetworkSpec]:
        nets: dict[str, NetworkSpec] = {}
        for d in self.instances.values():
            for p in d.ports:
                spec = nets.setdefault(p.network_id, NetworkSpec(
                    id=p.network_id, mtu=p.mtu, subnets=[SubnetSpec(
                        id="s1", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1",
                        enable_dhcp=True)], dhcp_mac="fa:16:3e:00:00:01",
                    dhcp_ips=["10.0.0.2"]))
                spec.hosts.append(DhcpHost(port_id=p.id, mac=p.mac, ips=p.ips))
        return list(nets.values())

    def existing_networks(self, network_ids: list[str]) -> list[str]:
        return sorted(set(network_ids) - self.deleted_networks)

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        return {"openstack/latest/meta_data.json": b'{"uuid": "%s"}' % uuid.encode()}

    def open_image(self, image_id: str) -> Iterator[bytes]:
        yield self.image

    def upload_snapshot(self, image_id: str, path: Path) -> None:
        self.uploads[image_id] = path.stat().st_size

    def start_event(self, uuid: str, event: str) -> None:
        pass

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        d = self.instances.get(uuid)
        if d is None or d.task_state != expected_task_state:
            return False
        for key, value in changes.items():
            if hasattr(d, key):
                setattr(d, key, value)
        d.task_state = None
        d.task_args = {}
        return True

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        d = self.instances[uuid]
        self.faults[uuid] = message
        d.vm_state = vm_state or ("error" if expected_task_state == "spawning"
                                  else d.vm_state)
        d.task_state = None
        return True

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        d = self.instances[uuid]
        d.power_state = power_state
        if vm_state:
            d.vm_state = vm_state

    def report_routers(self, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
        self.router_reports.append((applied, failed))

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        for p in port_ids:
            self.port_status[p] = status

    def instance_deleted(self, uuid: str) -> None:
        self.instances.pop(uuid)
        self.deleted.append(uuid)

    def metadata_secret(self) -> bytes:
        return b"secret"

    def instance_for_address(self, network_id: str, ip: str) -> tuple[str, str] | None:
        return None


@pytest.fixture
def image(tmp_path: Path) -> bytes:
    path = tmp_path / "img.qcow2"
    write_empty_qcow2(path, 1 << 30)
    return path.read_bytes()


def make_agent(root: Path, control: Control) -> Agent:
    return Agent("host-1", control, FakeDriver(instances_dir=root / "instances"),
                 FakeStorage(root=root / "disks"),
                 network.load("fake", state_dir=root / "net"),
                 poll_interval=0.05, shutdown_timeout=0, network_idle_seconds=0)


def instance(image: bytes, uuid: str = "11111111-2222-3333-4444-555555555555",
             task: str | None = "spawning", vm_state: str = "building") -> DesiredInstance:
    return DesiredInstance(
        uuid=uuid, name="vm", hostname="vm", vm_state=vm_state, task_state=task,
        task_args={}, power_state=0, vcpus=1, memory_mb=128, root_gb=1,
        disks=[ImageDisk(image=ImageRef(
            id="img", disk_format="qcow2", size=len(image), hash_algo="sha512",
            hash_value=hashlib.sha512(image).hexdigest()), size_gb=1)],
        ports=[PortInfo(id="port-" + uuid[:4], network_id="net-1", mac="fa:16:3e:11:22:33",
                        mtu=1450, ips=["10.0.0.5"])])


def test_build_then_steady(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    assert d.vm_state == "active" and d.task_state is None
    assert d.power_state == PowerState.RUNNING
    assert agent.hypervisor.power_state(d.uuid) == PowerState.RUNNING
    assert agent.storage.disk(d.uuid) is not None
    assert control.port_status == {d.ports[0].id: "ACTIVE"}
    assert control.reports[-1].host == "host-1"
    assert "net-1" in agent.network.list_networks()


def test_stop_start_delete_release_everything(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    d.task_state = "powering-off"
    agent.run_once(wait=True)
    assert d.vm_state == "stopped"
    assert agent.hypervisor.power_state(d.uuid) == PowerState.SHUTDOWN
    d.task_state = "powering-on"
    agent.run_once(wait=True)
    assert d.vm_state == "active"
    d.task_state = "deleting"
    agent.run_once(wait=True)
    assert control.deleted == [d.uuid]
    assert agent.storage.list_disks() == []
    assert agent.hypervisor.list_guests() == {}
    assert agent.network.list_ports() == []
    agent.run_once(wait=True)  # the network nobody uses any more goes too
    assert agent.network.list_networks() == []


def test_failed_build_is_error_with_reason_and_releases(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    d.image.hash_value = "0" * 128  # the fetched image won't match its checksum
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    assert d.vm_state == "error"
    assert "checksum" in control.faults[d.uuid].lower()
    assert agent.storage.list_disks() == []
    assert agent.network.list_ports() == []


def test_restarted_agent_adopts_and_restarts_what_should_run(tmp_path: Path,
                                                               image: bytes) -> None:
    control = Control(image)
    a, b = instance(image, "aaaaaaaa-0000-0000-0000-000000000000"), \
        instance(image, "bbbbbbbb-0000-0000-0000-000000000000")
    control.instances = {a.uuid: a, b.uuid: b}
    first = make_agent(tmp_path, control)
    first.run_once(wait=True)
    # The host "reboots": b's guest is gone; a new agent starts over the same state.
    first.hypervisor.power_off(b.uuid, 0)
    second = make_agent(tmp_path, control)
    assert second.hypervisor.power_state(a.uuid) == PowerState.RUNNING
    second.run_once(wait=True)
    assert second.hypervisor.power_state(b.uuid) == PowerState.RUNNING
    assert b.vm_state == "active"
    # Later a guest that powers itself off is reported stopped, not restarted.
    second.hypervisor.power_off(a.uuid, 0)
    second.run_once(wait=True)
    assert a.vm_state == "stopped"
    assert second.hypervisor.power_state(a.uuid) == PowerState.SHUTDOWN


def test_leftover_guests_and_disks_are_removed(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    control.instances.clear()  # deleted elsewhere while this agent was away
    agent.run_once(wait=True)
    assert agent.hypervisor.list_guests() == {}
    assert agent.storage.list_disks() == []
    assert agent.network.list_ports() == []


def test_snapshot_pauses_and_uploads(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    d.task_state, d.task_args = "image_snapshot", {"image_id": "snap-1"}
    agent.run_once(wait=True)
    assert control.uploads["snap-1"] > 0
    assert d.task_state is None
    assert agent.hypervisor.power_state(d.uuid) == PowerState.RUNNING


def test_background_loop_wakes_on_notify(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    agent = make_agent(tmp_path, control)
    agent.poll_interval = 30
    agent.start()
    try:
        d = instance(image)
        control.instances[d.uuid] = d
        agent.wake("host-1")
        import time
        deadline = time.monotonic() + 5
        while d.vm_state != "active" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert d.vm_state == "active"
    finally:
        agent.stop()


def test_unused_network_stays_a_while_then_goes(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.network_idle_seconds = 0.3
    agent.run_once(wait=True)
    d.task_state = "deleting"
    agent.run_once(wait=True)
    agent.run_once(wait=True)
    assert agent.network.list_networks() == ["net-1"]  # the next boot finds it ready
    assert agent.network.dhcp.hosts("net-1") == []  # but no DHCP entry (nor lease) is left
    import time
    time.sleep(0.35)
    agent.run_once(wait=True)
    assert agent.network.list_networks() == []


def test_deleted_network_goes_at_once(tmp_path: Path, image: bytes) -> None:
    """Idle networks are kept a while for the next server; a network deleted from the
    cloud has no next server."""
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = make_agent(tmp_path, control)
    agent.network_idle_seconds = 3600
    agent.run_once(wait=True)
    d.task_state = "deleting"
    agent.run_once(wait=True)
    agent.run_once(wait=True)
    assert agent.network.list_networks() == ["net-1"]  # idle, kept
    control.deleted_networks.add("net-1")
    agent.run_once(wait=True)
    assert agent.network.list_networks() == []


def two_networks(image: bytes, control: Control) -> tuple[DesiredInstance, DesiredInstance]:
    live, gone = instance(image, "aaaaaaaa-0000-0000-0000-000000000000"), \
        instance(image, "bbbbbbbb-0000-0000-0000-000000000000")
    gone.ports[0].network_id = "net-2"
    gone.ports[0].mac = "fa:16:3e:11:22:44"
    control.instances = {live.uuid: live, gone.uuid: gone}
    return live, gone


def test_clean_stop_finishes_due_removals_only(tmp_path: Path, image: bytes) -> None:
    """Stopping right after a network was deleted removes it; the guest and the network
    in use, and a network merely idle, stay for the next start."""
    control = Control(image)
    live, gone = two_networks(image, control)
    idle = instance(image, "cccccccc-0000-0000-0000-000000000000")
    idle.ports[0].network_id = "net-3"
    idle.ports[0].mac = "fa:16:3e:11:22:55"
    control.instances[idle.uuid] = idle
    agent = make_agent(tmp_path, control)
    agent.network_idle_seconds = 3600
    agent.poll_interval = 3600  # only the first pass runs by itself
    agent.run_once(wait=True)
    for d in (gone, idle):
        d.task_state = "deleting"
    agent.run_once(wait=True)
    agent.run_once(wait=True)
    assert agent.network.list_networks() == ["net-1", "net-2", "net-3"]
    control.deleted_networks.add("net-2")  # then the server is stopped before a pass
    agent.stop()
    assert agent.network.list_networks() == ["net-1", "net-3"]
    assert agent.hypervisor.list_guests() == {live.uuid: PowerState.RUNNING}
    assert agent.network.dhcp.hosts("net-1") != []  # DHCP of the live guest untouched
    # A restarted agent adopts what stayed.
    again = make_agent(tmp_path, control)
    assert again.network.list_networks() == ["net-1", "net-3"]
    assert again.hypervisor.power_state(live.uuid) == PowerState.RUNNING


def test_stop_keeps_everything_when_the_cloud_cannot_tell(tmp_path: Path,
                                                          image: bytes) -> None:
    control = Control(image)
    live, _ = two_networks(image, control)
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)

    def broken(network_ids: list[str]) -> set[str]:
        raise RuntimeError("database closed")

    control.existing_networks = broken  # type: ignore[method-assign]
    agent.network_idle_seconds = 3600
    agent.stop()
    assert agent.network.list_networks() == ["net-1", "net-2"]


PUBLIC = NetworkSpec(id="public", mtu=1500, external=True, subnets=[SubnetSpec(
    id="pub4", cidr="203.0.113.0/24", ip_version=4, gateway_ip="203.0.113.1",
    enable_dhcp=False)])


def a_router(fips: list[FloatingIPSpec] | None = None) -> RouterSpec:
    return RouterSpec(
        id="router-1",
        interfaces=[RouterPort(port_id="rp-1", network_id="net-1", mac="fa:16:3e:00:00:0a",
                               ips=["10.0.0.1"], subnet_ids=["s1"])],
        gateway=RouterPort(port_id="gw-1", network_id="public", mac="fa:16:3e:00:00:0b",
                           ips=["203.0.113.2"], subnet_ids=["pub4"]),
        routes=[{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}],
        floating_ips=fips or [])


def test_routers_follow_the_desired_state(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    control.extra_networks = [PUBLIC]
    control.routers = [a_router()]
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    l3 = agent.network.l3
    spec = l3.routers["router-1"]
    assert spec.interfaces[0].addresses == ["10.0.0.1/24"]
    assert spec.interfaces[0].mtu == 1450
    assert spec.gateway is not None and spec.gateway.addresses == ["203.0.113.2/24"]
    assert spec.external_gateways == ["203.0.113.1"]
    assert [(r.destination, r.nexthop) for r in spec.routes] == [("10.9.0.0/16", "10.0.0.9")]
    # The external network has its bridge, and the host holds its gateway address.
    assert agent.network.l2.networks["public"].host_addresses == ["203.0.113.1/24"]
    # Reported to the server as in place (the router ACTIVE there).
    assert control.router_reports[-1] == ({"router-1": {}}, [])
    # Unchanged: not applied again; a floating IP: applied at the next pass.
    calls = len(l3.record.calls)
    agent.run_once(wait=True)
    assert len(l3.record.calls) == calls
    control.routers = [a_router([FloatingIPSpec(floating_ip="203.0.113.9",
                                                fixed_ip="10.0.0.5", port_id=d.ports[0].id)])]
    agent.run_once(wait=True)
    assert [(f.floating_ip, f.fixed_ip) for f in l3.routers["router-1"].floating_ips] == \
        [("203.0.113.9", "10.0.0.5")]
    assert control.router_reports[-1] == ({"router-1": {"203.0.113.9": "10.0.0.5"}}, [])
    # A restarted agent applies each router once more (re-adoption), nothing else.
    again = make_agent(tmp_path, control)
    again.run_once(wait=True)
    assert again.network.l3.list_routers() == ["router-1"]
    # No longer desired: removed.
    control.routers = []
    again.run_once(wait=True)
    assert again.network.l3.list_routers() == []


def test_leftover_router_goes_and_clean_stop_removes_undesired(tmp_path: Path,
                                                                image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    control.extra_networks = [PUBLIC]
    control.routers = [a_router()]
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    # A router this host has but the cloud no longer wants, found at start.
    stale = a_router()
    stale.id = "router-old"
    from onestack.agent.reconciler import _router_spec
    agent.network.l3.ensure_router(_router_spec(stale, {"net-1": control.networks("h")[0],
                                                        "public": PUBLIC}))
    restarted = make_agent(tmp_path, control)
    restarted.run_once(wait=True)
    assert restarted.network.l3.list_routers() == ["router-1"]
    control.routers = []
    restarted._stop.set()
    restarted._wanted_routers = set()
    restarted.stop()
    assert restarted.network.l3.list_routers() == []


def test_router_on_an_unknown_network_is_skipped(tmp_path: Path, image: bytes) -> None:
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    control.routers = [a_router()]  # its external network is not in the desired state
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    assert agent.network.l3.list_routers() == []
    assert control.router_reports[-1] == ({}, ["router-1"])  # ERROR on the server
    assert d.vm_state == "active"
    # One that exists and cannot be translated now is kept as it is, not removed.
    control.extra_networks = [PUBLIC]
    agent.run_once(wait=True)
    assert agent.network.l3.list_routers() == ["router-1"]
    control.extra_networks = []
    agent.run_once(wait=True)
    assert agent.network.l3.list_routers() == ["router-1"]


def test_external_interface_replaces_the_host_gateway(tmp_path: Path, image: bytes) -> None:
    """``[host] external_interface``: the external network's bridge gets that interface
    (the driver's ``uplink``), and the host holds no gateway address and masquerades
    nothing; tenant networks get no uplink."""
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    control.extra_networks = [PUBLIC]
    control.routers = [a_router()]
    agent = Agent("host-1", control, FakeDriver(instances_dir=tmp_path / "instances"),
                  FakeStorage(root=tmp_path / "disks"),
                  network.load("fake", state_dir=tmp_path / "net"),
                  poll_interval=0.05, shutdown_timeout=0, network_idle_seconds=0,
                  external_masquerade=True, external_interface="eth9")
    agent.run_once(wait=True)
    public = agent.network.l2.networks["public"]
    assert (public.uplink, public.host_addresses, public.masquerade) == ("eth9", [], False)
    assert agent.network.l2.networks["net-1"].uplink == ""
    assert control.router_reports[-1] == ({"router-1": {}}, [])
