"""Volumes in real guests, driven with the stock ``openstack`` CLI: hot-plugged over QMP
into running QEMU (TCG) guests, and booted from.

One ``onestack up`` with the real drivers and the local volume backend (qcow2 files)
runs in a namespace of the test's own. Each guest's user data starts a watcher that
prints a ``VOLTEST`` line on the serial console whenever ``/dev/vdb`` appears, changes
size or goes, with its size in sectors, its serial, where
``/dev/disk/by-id/virtio-<serial>`` points (the test image's mdev makes that link as
udev does) and the md5 of its first MiB; the first guest writes a known pattern there.
At most two guests run at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host, openstack, wait_for

pytestmark = [
    # two TCG guests boot while others' tests share the machine's two cores
    pytest.mark.root, pytest.mark.qemu, pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None, reason="needs QEMU and dnsmasq"),
]

BOOT_TIMEOUT = 240
MiB = 1 << 20
#: What the writing guest puts in the volume's first MiB (``yes ONESTACK``).
PATTERN = (b"ONESTACK\n" * (MiB // 9 + 1))[:MiB]
PATTERN_MD5 = hashlib.md5(PATTERN).hexdigest()

WATCHER = r"""#!/bin/sh
# Report /dev/vdb on the console as it comes, grows and goes (in the background).
WRITE=%(write)s
(
last=""
while true; do
    if [ -e /sys/block/vdb ]; then
        # empty when the disk went between the test and the read: not a new size
        s=$(cat /sys/block/vdb/size 2>/dev/null)
        if [ -n "$s" ] && [ "$s" != "$last" ] && [ "$s" != 0 ]; then
            if [ "$WRITE" = 1 ] && [ -z "$wrote" ]; then
                yes ONESTACK | head -c 1048576 | dd of=/dev/vdb bs=65536 conv=fsync \
                    2>/dev/null
                wrote=1
            fi
            sum=$(dd if=/dev/vdb bs=65536 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
            serial=$(cat /sys/block/vdb/serial)
            i=0  # mdev makes the by-id link as the disk comes: give it a second
            while [ ! -L "/dev/disk/by-id/virtio-$serial" ] && [ $i -lt 20 ]; do
                sleep 0.05; i=$((i + 1))
            done
            byid=$(readlink "/dev/disk/by-id/virtio-$serial" || echo none)
            echo "VOLTEST vdb sectors=$s serial=$serial byid=$byid md5=$sum" \
                 "up=$(cut -d' ' -f1 /proc/uptime)" >/dev/console
            last=$s
        fi
    elif [ -n "$last" ]; then
        i=0
        while [ -L "/dev/disk/by-id/virtio-$serial" ] && [ $i -lt 20 ]; do
            sleep 0.05; i=$((i + 1))
        done
        links=$(ls /dev/disk/by-id 2>/dev/null | grep -c .)
        echo "VOLTEST vdb gone links=$links up=$(cut -d' ' -f1 /proc/uptime)" >/dev/console
        last=""
    fi
    sleep 0.05
done
) </dev/null >/dev/null 2>&1 &
echo "VOLTEST watching"
"""


@pytest.fixture(scope="module")
def image_file() -> Path:
    return build_test_image()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, image_file: Path) -> Iterator[NetnsHost]:
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def cloud(host: NetnsHost, image_file: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cloud")
    image = openstack(host, "image", "create", "--disk-format", "qcow2",
                      "--container-format", "bare", "--file", str(image_file), "--public",
                      "testimg")
    net = openstack(host, "network", "create", "net1")
    openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
              "10.30.0.0/24", "sub4")
    writer, reader = tmp / "writer.sh", tmp / "reader.sh"
    writer.write_text(WATCHER % {"write": 1})
    reader.write_text(WATCHER % {"write": 0})
    return {"image": image["id"], "network": net["id"], "writer": writer, "reader": reader}


def console(host: NetnsHost, server: str) -> str:
    return openstack(host, "console", "log", "show", server, json_output=False)


def wait_console(host: NetnsHost, server: str, pattern: str, count: int = 1,
                 timeout: float = BOOT_TIMEOUT, interval: float = 1.0) -> str:
    def seen() -> str | None:
        text = console(host, server)
        return text if len(re.findall(pattern, text)) >= count else None
    try:
        return wait_for(seen, timeout, interval=interval,
                        what=f"{pattern!r} x{count} on {server}")
    except AssertionError:
        print(console(host, server)[-3000:])
        print(host.log_tail())
        raise


def wait_status(host: NetnsHost, server: str, status: str, timeout: float = 180) -> dict:
    def reached() -> dict | None:
        s = openstack(host, "server", "show", server)
        if s["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"{server} went to ERROR: {s.get('fault')}")
        return s if s["status"] == status else None
    return wait_for(reached, timeout, interval=1, what=f"{server} {status}")


def volume_status(host: NetnsHost, volume: str) -> str:
    return str(openstack(host, "volume", "show", volume)["status"])


def wait_volume(host: NetnsHost, volume: str, status: str, timeout: float = 120) -> None:
    wait_for(lambda: volume_status(host, volume) == status, timeout, interval=1,
             what=f"volume {volume} {status}")


def gone(host: NetnsHost, *args: str) -> bool:
    try:
        openstack(host, *args)
    except AssertionError as exc:
        return "No " in str(exc) or "could not be found" in str(exc) or "404" in str(exc)
    return False


def boot(host: NetnsHost, cloud: dict, name: str, user_data: Path, *extra: str) -> str:
    args = ["server", "create", "--flavor", "m1.nano", "--network", cloud["network"],
            "--user-data", str(user_data), *extra, name]
    if not any(a.startswith("--image") or a.startswith("--volume")
               or a.startswith("--block-device") for a in extra):
        args[2:2] = ["--image", cloud["image"]]
    return str(openstack(host, *args)["id"])


def vdb_lines(text: str) -> list[dict[str, str]]:
    return [dict(re.findall(r"(\w+)=(\S+)", line))
            for line in text.splitlines() if "VOLTEST vdb sectors=" in line]


def test_attach_write_detach_attach_read_snapshot_extend(host: NetnsHost, cloud: dict) -> None:
    vol = openstack(host, "volume", "create", "--size", "1", "data1")
    wait_volume(host, vol["id"], "available")
    serial = vol["id"][:20]
    first = boot(host, cloud, "writer", cloud["writer"])
    second = boot(host, cloud, "reader", cloud["reader"])
    for server in (first, second):
        wait_status(host, server, "ACTIVE")
    for server in (first, second):
        wait_console(host, server, r"VOLTEST watching")

    # attach to the first guest: it sees a 1 GiB disk with the volume's serial, writes
    attached = time.monotonic()
    openstack(host, "server", "add", "volume", first, vol["id"], json_output=False)
    text = wait_console(host, first, r"VOLTEST vdb sectors=\d+ ", interval=0.2)
    seen_after = time.monotonic() - attached
    line = vdb_lines(text)[-1]
    assert line["sectors"] == str((1 << 30) // 512)
    assert line["serial"] == serial
    assert line["byid"] == "../../vdb", "no /dev/disk/by-id/virtio-<volume id prefix>"
    assert line["md5"] == PATTERN_MD5, "the writer's pattern is not on the disk"
    print(f"attach -> guest sees the disk: {seen_after:.2f} s (CLI round trips included)")
    wait_volume(host, vol["id"], "in-use")
    listed = openstack(host, "server", "volume", "list", first)
    assert [(v["Volume ID"], v["Device"]) for v in listed] == [(vol["id"], "/dev/vdb")]
    shown = openstack(host, "server", "show", first)
    assert vol["id"] in str(shown["volumes_attached"])

    # detach: the guest lets it go, the volume is available
    openstack(host, "server", "remove", "volume", first, vol["id"], json_output=False)
    text = wait_console(host, first, r"VOLTEST vdb gone", interval=0.5)
    assert "VOLTEST vdb gone links=0 " in text, "the by-id link outlived the disk"
    wait_volume(host, vol["id"], "available")

    # a snapshot of the detached volume, and a new volume from it (attached to the
    # first guest below, while the second reads the original)
    snap = openstack(host, "volume", "snapshot", "create", "--volume", vol["id"], "snap1")
    wait_for(lambda: openstack(host, "volume", "snapshot", "show", snap["id"])["status"]
             == "available", 60, interval=1, what="snapshot available")
    clone = openstack(host, "volume", "create", "--snapshot", snap["id"], "data2")
    wait_volume(host, clone["id"], "available")
    assert openstack(host, "volume", "show", clone["id"])["snapshot_id"] == snap["id"]

    # the second guest reads the first's pattern back
    openstack(host, "server", "add", "volume", second, vol["id"], json_output=False)
    text = wait_console(host, second, r"VOLTEST vdb sectors=\d+ ", interval=0.5)
    line = vdb_lines(text)[-1]
    assert line["md5"] == PATTERN_MD5 and line["serial"] == serial
    assert line["byid"] == "../../vdb"
    wait_volume(host, vol["id"], "in-use")

    # the volume made from the snapshot holds the pattern (the writer writes only once)
    openstack(host, "server", "add", "volume", first, clone["id"], json_output=False)
    text = wait_console(host, first, r"VOLTEST vdb sectors=\d+ ", count=2, interval=0.5)
    line = vdb_lines(text)[-1]
    assert line["serial"] == clone["id"][:20] and line["byid"] == "../../vdb"
    assert line["md5"] == PATTERN_MD5, "the snapshot's volume lacks the pattern"
    wait_volume(host, clone["id"], "in-use")

    # extend while attached: the guest sees 2 GiB
    openstack(host, "--os-volume-api-version", "3.42", "volume", "set", "--size", "2",
              vol["id"], json_output=False)
    text = wait_console(host, second, rf"VOLTEST vdb sectors={(2 << 30) // 512} ",
                        timeout=60, interval=0.5)
    assert vdb_lines(text)[-1]["md5"] == PATTERN_MD5
    assert openstack(host, "volume", "show", vol["id"])["size"] == 2

    # deleting the servers keeps the volume (delete_on_termination false), available
    openstack(host, "server", "delete", "--wait", second, json_output=False)
    wait_volume(host, vol["id"], "available")
    openstack(host, "server", "delete", "--wait", first, json_output=False)
    assert volume_status(host, vol["id"]) == "available"
    wait_volume(host, clone["id"], "available")
    openstack(host, "volume", "delete", clone["id"], json_output=False)
    openstack(host, "volume", "snapshot", "delete", snap["id"], json_output=False)
    wait_for(lambda: gone(host, "volume", "snapshot", "show", snap["id"]), 60, interval=1,
             what="snapshot deleted")
    openstack(host, "volume", "delete", vol["id"], json_output=False)


def test_boot_from_volume(host: NetnsHost, cloud: dict) -> None:
    # delete_on_termination true: the volume goes with the server
    bdm = (f"uuid={cloud['image']},source_type=image,destination_type=volume,"
           "volume_size=1,boot_index=0,delete_on_termination=true")
    server = boot(host, cloud, "bfv-true", cloud["reader"], "--block-device", bdm)
    shown = wait_status(host, server, "ACTIVE")
    assert not shown["image"] or "booted from volume" in str(shown["image"]).lower()
    wait_console(host, server, r"VOLTEST watching")  # it booted, network and metadata
    volumes = openstack(host, "server", "volume", "list", server)
    assert len(volumes) == 1 and volumes[0]["Device"] == "/dev/vda"
    root = volumes[0]["Volume ID"]
    assert volume_status(host, root) == "in-use"
    # no local disk was made for it: its guest opens the volume's file
    disks = host.state_dir / "disks"
    assert not any(server in str(p) for p in disks.rglob("*")) if disks.exists() else True
    assert (host.state_dir / "instances" / server).is_dir()
    openstack(host, "server", "delete", "--wait", server, json_output=False)
    wait_for(lambda: gone(host, "volume", "show", root), 60, interval=1,
             what="the root volume deleted with its server")

    # --boot-from-volume: delete_on_termination false, the volume stays
    server = boot(host, cloud, "bfv-false", cloud["reader"], "--image", cloud["image"],
                  "--boot-from-volume", "1")
    wait_status(host, server, "ACTIVE")
    wait_console(host, server, r"VOLTEST watching")
    root = openstack(host, "server", "volume", "list", server)[0]["Volume ID"]
    openstack(host, "server", "delete", "--wait", server, json_output=False)
    wait_volume(host, root, "available")
    assert openstack(host, "volume", "show", root)["bootable"] in (True, "true")
    openstack(host, "volume", "delete", root, json_output=False)


def test_driver_keeps_volumes_across_reboot_and_restart(tmp_path: Path,
                                                        image_file: Path) -> None:
    """The QEMU driver alone (no cloud): a hot-plugged volume stays on the guest's
    command line, so a hard reboot and a power off and start keep it on the same root
    port; the guest answers the unplug (DEVICE_DELETED) and the spec loses it."""
    import json
    import subprocess

    from onestack.drivers.hypervisor.base import GuestDisk, GuestSpec
    from onestack.drivers.hypervisor.qemu import QemuDriver

    root = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image_file), "-F",
                    "qcow2", str(root)], check=True)
    vol = tmp_path / "volume.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vol), "1G"], check=True)
    driver = QemuDriver(tmp_path / "instances", accel="tcg", name_prefix="voltest-")
    uuid = "5e0b6a52-7c1d-4f55-9a0e-3d1f8c2b7a61"
    volume_id = "c0ffee00-1111-4222-8333-444455556666"
    disk = GuestDisk(kind="file", source=str(vol), format="qcow2", boot_index=None,
                     volume_id=volume_id)
    base = dict(uuid=uuid, name="voltest", vcpus=1, memory_mib=128)
    try:
        driver.spawn(GuestSpec(**base, disks=[GuestDisk.file(root)]))  # type: ignore[arg-type]
        wait_for(lambda: "ONESTACK-TEST: init started" in driver.console_log(uuid), 120,
                 what="the guest's init")
        time.sleep(1)  # its ACPI hot-plug handler is set up by now
        driver.attach_volume(uuid, disk)
        driver.attach_volume(uuid, disk)  # idempotent
        assert driver.attached_volumes(uuid) == {volume_id: 1 << 30}
        spec = GuestSpec(**base, disks=[GuestDisk.file(root), disk])  # type: ignore[arg-type]
        saved = json.loads((tmp_path / "instances" / uuid / "spec.json").read_text())
        assert [d["volume_id"] for d in saved["disks"]] == ["", volume_id]
        driver.reboot(spec, hard=True)
        assert driver.attached_volumes(uuid) == {volume_id: 1 << 30}
        wait_for(lambda: driver.console_log(uuid).count("ONESTACK-TEST: init started") >= 2,
                 120, what="the rebooted guest's init")
        driver.resize_volume(uuid, volume_id, 2 << 30)
        driver.power_off(uuid, 0)
        assert driver.attached_volumes(uuid) == {}
        spec.disks[1] = disk
        driver.spawn(spec)
        assert driver.attached_volumes(uuid) == {volume_id: 2 << 30}  # the file grew
        ports = json.loads((tmp_path / "instances" / uuid / "volumes.json").read_text())
        assert ports == {volume_id: "hotplug0"}
        wait_for(lambda: driver.console_log(uuid).count("ONESTACK-TEST: init started") >= 3,
                 120, what="the restarted guest's init")
        time.sleep(1)
        started = time.monotonic()
        driver.detach_volume(uuid, volume_id)  # raises unless the guest lets it go
        print(f"detach (device_del -> DEVICE_DELETED -> blockdev-del): "
              f"{time.monotonic() - started:.2f} s")
        assert driver.attached_volumes(uuid) == {}
        saved = json.loads((tmp_path / "instances" / uuid / "spec.json").read_text())
        assert [d["volume_id"] for d in saved["disks"]] == [""]
    finally:
        driver.destroy(uuid)


#: User data timing 4 MiB of O_DIRECT writes to each /dev/vdb that comes (by serial).
QOS_WRITER = r"""#!/bin/sh
(
seen=""
while true; do
    serial=$(cat /sys/block/vdb/serial 2>/dev/null)
    if [ -b /dev/vdb ] && [ -n "$serial" ] && [ "$serial" != "$seen" ]; then
        t0=$(cut -d' ' -f1 /proc/uptime)
        dd if=/dev/zero of=/dev/vdb bs=65536 count=64 oflag=direct 2>/dev/null
        rc=$?
        t1=$(cut -d' ' -f1 /proc/uptime)
        echo "QOSTEST serial=$serial rc=$rc t0=$t0 t1=$t1" >/dev/console
        seen=$serial
    elif [ -z "$serial" ]; then
        seen=""
    fi
    sleep 0.1
done
) </dev/null >/dev/null 2>&1 &
echo "QOSTEST watching"
"""


def qos_writes(text: str, serial: str) -> list[float]:
    """Seconds each timed 4 MiB write to the volume with ``serial`` took (rc 0 only)."""
    return [float(t1) - float(t0) for s, rc, t0, t1 in re.findall(
        r"QOSTEST serial=(\S+) rc=(\d+) t0=(\S+) t1=(\S+)", text)
        if s == serial and rc == "0"]


def guest_qmp(host: NetnsHost, server: str) -> dict:
    """What the guest's QEMU says of its volumes' throttling: the throttle nodes
    (``query-named-block-nodes``) and each throttle group's limits (``qom-get``)."""
    from onestack.drivers.hypervisor.qmp import QmpClient

    with QmpClient(host.state_dir / "instances" / server / "qmp.sock") as qmp:
        nodes = qmp.execute("query-named-block-nodes", {"flat": True})
        groups = [o["name"] for o in qmp.execute("qom-list", {"path": "/objects"})
                  if str(o.get("type", "")).startswith("child<throttle-group")]
        limits = {g: qmp.execute("qom-get", {"path": f"/objects/{g}",
                                             "property": "limits"}) for g in groups}
    return {"throttle_nodes": sorted(n["node-name"] for n in nodes
                                     if n.get("drv") == "throttle"),
            "limits": limits}


def test_front_end_qos_throttles_the_guest_disk(host: NetnsHost, cloud: dict,
                                                tmp_path: Path) -> None:
    """A volume of a type with a front-end QoS spec (write_bytes_sec=524288) is written
    at that rate in a real guest: 4 MiB with O_DIRECT take about 8 s, on a volume
    without one far less; QEMU has the throttle group on hot-plug and after a hard
    reboot (the command line), and loses it on detach."""
    qos = openstack(host, "volume", "qos", "create", "--consumer", "front-end",
                    "--property", "write_bytes_sec=524288", "slowqos")
    openstack(host, "volume", "type", "create", "slow")
    openstack(host, "volume", "qos", "associate", "slowqos", "slow", json_output=False)
    slow = openstack(host, "volume", "create", "--size", "1", "--type", "slow", "slow")
    fast = openstack(host, "volume", "create", "--size", "1", "fast")
    for vol in (slow, fast):
        wait_volume(host, vol["id"], "available")
    writer = tmp_path / "qos.sh"
    writer.write_text(QOS_WRITER)
    server = boot(host, cloud, "qos", writer)
    wait_status(host, server, "ACTIVE")
    wait_console(host, server, r"QOSTEST watching")
    time.sleep(1)  # the guest's hot-plug handler is up

    # hot-plugged: throttled in QEMU, and the guest's writes take their time
    openstack(host, "server", "add", "volume", server, slow["id"], json_output=False)
    text = wait_console(host, server, rf"QOSTEST serial={slow['id'][:20]} ", timeout=120,
                        interval=1)
    throttled = qos_writes(text, slow["id"][:20])
    seen = guest_qmp(host, server)
    digits = slow["id"].replace("-", "")
    assert seen["throttle_nodes"] == ["thr" + digits[:28]]
    assert seen["limits"]["qos" + digits]["bps-write"] == 524288
    assert seen["limits"]["qos" + digits]["bps-total"] == 0
    assert throttled and throttled[0] >= 6.0, f"4 MiB took {throttled} s at 512 KiB/s"
    openstack(host, "server", "remove", "volume", server, slow["id"], json_output=False)
    wait_volume(host, slow["id"], "available")
    assert guest_qmp(host, server) == {"throttle_nodes": [], "limits": {}}

    # a volume without QoS: no throttle, and the same writes are quick
    openstack(host, "server", "add", "volume", server, fast["id"], json_output=False)
    text = wait_console(host, server, rf"QOSTEST serial={fast['id'][:20]} ", timeout=120,
                        interval=1)
    quick = qos_writes(text, fast["id"][:20])
    assert guest_qmp(host, server)["throttle_nodes"] == []
    assert quick and quick[0] < throttled[0] / 3, f"unthrottled {quick}, throttled {throttled}"
    openstack(host, "server", "remove", "volume", server, fast["id"], json_output=False)
    wait_volume(host, fast["id"], "available")

    # attached when QEMU starts (a hard reboot): on the command line, still throttled
    openstack(host, "server", "add", "volume", server, slow["id"], json_output=False)
    wait_console(host, server, rf"QOSTEST serial={slow['id'][:20]} ", count=2,
                 timeout=120, interval=1)
    openstack(host, "server", "reboot", "--hard", server, json_output=False)
    wait_status(host, server, "ACTIVE")
    text = wait_console(host, server, rf"QOSTEST serial={slow['id'][:20]} ", count=3,
                        interval=1)
    after = qos_writes(text, slow["id"][:20])
    seen = guest_qmp(host, server)
    assert seen["throttle_nodes"] == ["thr" + digits[:28]]
    assert seen["limits"]["qos" + digits]["bps-write"] == 524288
    assert len(after) == 3 and after[2] >= 6.0, f"after the reboot: {after}"
    print(f"4 MiB O_DIRECT writes: write_bytes_sec=524288 {throttled[0]:.2f} s (hot-plugged)"
          f", {after[2]:.2f} s (at start); no QoS {quick[0]:.2f} s")
    openstack(host, "server", "delete", "--wait", server, json_output=False)
    wait_volume(host, slow["id"], "available")
    for vol in (slow, fast):
        openstack(host, "volume", "delete", vol["id"], json_output=False)
    for vol in (slow, fast):
        wait_for(lambda v=vol: gone(host, "volume", "show", v["id"]), 60, interval=1,
                 what="volume deleted")
    openstack(host, "volume", "type", "delete", "slow", json_output=False)
    openstack(host, "volume", "qos", "delete", qos["id"], json_output=False)
