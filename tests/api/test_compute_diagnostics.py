"""GET /compute/v2.1/servers/{id}/diagnostics: measured by the server's host (the fake
hypervisor's own figures here; QEMU's in tests/host/test_qemu_guest.py), in Nova's 2.48
shape and the older flat one; and the QEMU driver's readers of /proc, sysfs and QMP
answers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from onestack.drivers.hypervisor import qemu_diagnostics
from tests.api.compute_helpers import (
    action,
    boot,
    boot_env,
    nova,
    nova_error,
    ok,
    tenant,
    wait_for,
)

V248_KEYS = {"state", "driver", "hypervisor", "hypervisor_os", "uptime", "config_drive",
             "num_cpus", "num_nics", "num_disks", "memory_details", "cpu_details",
             "nic_details", "disk_details"}
NIC_KEYS = {"mac_address", "rx_octets", "rx_errors", "rx_drop", "rx_packets", "rx_rate",
            "tx_octets", "tx_errors", "tx_drop", "tx_packets", "tx_rate"}


def test_diagnostics_of_a_running_server(cloud):
    env = boot_env(cloud)
    sid = boot(cloud, env, flavorRef="2", config_drive=True)["id"]
    wait_for(cloud, sid, "ACTIVE")
    port = ok(cloud.request("GET", f"/network/v2.0/ports?device_id={sid}"))["ports"][0]
    time.sleep(1.1)
    body = ok(nova(cloud, "GET", f"/servers/{sid}/diagnostics", microversion="2.48"))
    assert set(body) == V248_KEYS
    assert (body["state"], body["driver"], body["hypervisor"], body["hypervisor_os"]) == (
        "running", "libvirt", "fake", "linux")
    assert body["config_drive"] is True and body["uptime"] >= 1
    assert (body["num_cpus"], body["num_nics"], body["num_disks"]) == (1, 1, 1)
    assert body["memory_details"] == {"maximum": 2048, "used": 2048}
    assert body["cpu_details"][0]["id"] == 0 and body["cpu_details"][0]["time"] >= 10**9
    assert set(body["nic_details"][0]) == NIC_KEYS
    assert body["nic_details"][0]["mac_address"] == port["mac_address"]
    assert set(body["disk_details"][0]) == {"read_bytes", "read_requests", "write_bytes",
                                            "write_requests", "errors_count"}
    # before 2.48: libvirt's flat dict
    legacy = ok(nova(cloud, "GET", f"/servers/{sid}/diagnostics", microversion="2.47"))
    assert legacy["memory"] == 2048 * 1024 and legacy["cpu0_time"] >= 10**9
    assert legacy["disk0_read_req"] == 0 and legacy["tap0_rx"] == 0
    # not running: Nova's 409 from its manager
    assert action(cloud, sid, {"os-stop": None}).status_code == 202
    wait_for(cloud, sid, "SHUTOFF")
    nova_error(nova(cloud, "GET", f"/servers/{sid}/diagnostics"), 409,
               "in power_state shutdown", "Cannot get_diagnostics")


def test_diagnostics_are_for_admins_and_existing_servers(quiet, env):
    sid = boot(quiet, env)["id"]
    nova_error(nova(quiet, "GET", "/servers/nope/diagnostics"), 404)
    other = tenant(quiet, "other")
    nova_error(nova(quiet, "GET", f"/servers/{sid}/diagnostics", token=other.token), 403)
    own = tenant(quiet, "own")
    own_env = boot_env(quiet, token=own.token, cidr="10.7.0.0/24", name="own")
    own_sid = boot(quiet, own_env)["id"]
    nova_error(nova(quiet, "GET", f"/servers/{own_sid}/diagnostics", token=own.token),
               403, "os_compute_api:os-server-diagnostics")
    # still building (nothing runs yet)
    nova_error(nova(quiet, "GET", f"/servers/{sid}/diagnostics"), 409,
               "in power_state pending")


# -- the QEMU driver's readers ---------------------------------------------------------------


def test_thread_cpu_time_and_process_figures_are_read_from_proc():
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass  # burn some CPU on this thread
    ns = qemu_diagnostics.thread_cpu_ns(os.getpid(), threading.get_native_id())
    assert ns is not None and ns >= 10_000_000
    assert qemu_diagnostics.thread_cpu_ns(os.getpid(), 2**31 - 1) is None
    assert qemu_diagnostics.process_uptime(os.getpid()) is not None
    rss = qemu_diagnostics.process_rss_mib(os.getpid())
    assert rss is not None and rss > 10
    assert qemu_diagnostics.process_rss_mib(2**31 - 1) is None


def test_tap_counters_are_turned_to_the_guest_side(tmp_path: Path):
    stats = tmp_path / "tap-x" / "statistics"
    stats.mkdir(parents=True)
    for name, value in {"rx_bytes": 100, "rx_packets": 2, "rx_errors": 0,
                        "rx_dropped": 1, "tx_bytes": 900, "tx_packets": 9,
                        "tx_errors": 3, "tx_dropped": 0}.items():
        (stats / name).write_text(f"{value}\n")
    got = qemu_diagnostics.tap_counters("tap-x", sysfs=tmp_path)
    assert got == {"rx_octets": 900, "rx_packets": 9, "rx_errors": 3, "rx_drop": 0,
                   "tx_octets": 100, "tx_packets": 2, "tx_errors": 0, "tx_drop": 1}
    assert set(qemu_diagnostics.tap_counters("gone", sysfs=tmp_path).values()) == {None}


def test_blockstats_become_disks():
    blockstats = [
        {"device": "disk0", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
         "stats": {"rd_bytes": 4096, "rd_operations": 2, "wr_bytes": 512,
                   "wr_operations": 1, "failed_rd_operations": 1,
                   "failed_wr_operations": 0, "failed_flush_operations": 0}},
        {"device": "", "node-name": "volume-abc",
         "qdev": "/machine/peripheral/volume-abc/virtio-backend",
         "stats": {"rd_bytes": 1, "rd_operations": 1, "wr_bytes": 0, "wr_operations": 0}},
        {"device": "", "node-name": "#block123", "stats": {"rd_bytes": 5}},  # no device
    ]
    disks = qemu_diagnostics.disk_stats(blockstats)
    assert [(d.name, d.read_bytes, d.read_requests, d.write_bytes, d.write_requests,
             d.errors_count) for d in disks] == [
        ("disk0", 4096, 2, 512, 1, 1), ("volume-abc", 1, 1, 0, 0, None)]


def test_diagnostics_cross_the_http_host_link():
    """A remote host's agent answers ``GET /diagnostics/{uuid}`` (JSON on the wire; a
    guest it does not have is FileNotFoundError again on the server's side)."""
    from starlette.testclient import TestClient

    from onestack.hostlink.credentials import digest
    from onestack.hostlink.diagnostics import CpuStats, GuestDiagnostics, NicStats
    from onestack.hostlink.http import HttpHost, host_app

    measured = GuestDiagnostics(power_state=1, hypervisor="qemu", uptime=5,
                                memory_max_mib=512, memory_used_mib=300,
                                cpus=[CpuStats(id=0, time=7)],
                                nics=[NicStats(mac_address="fa:16:3e:00:00:01",
                                               name="tap1", rx_octets=3)])

    class Handle:
        host = "remote"

        def diagnostics(self, uuid: str) -> dict:
            if uuid != "g1":
                raise FileNotFoundError(f"No guest {uuid} on this host")
            return measured.to_wire()

    client = TestClient(host_app(Handle(), "s3cret"))  # type: ignore[arg-type]
    link = HttpHost("remote", "http://testserver", digest("s3cret"),
                    transport=client._transport)
    assert GuestDiagnostics.from_wire(link.diagnostics("g1")) == measured
    try:
        link.diagnostics("g2")
    except FileNotFoundError as exc:
        assert "No guest g2" in str(exc)
    else:
        raise AssertionError("a missing guest must be FileNotFoundError")
