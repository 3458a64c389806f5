"""Real guests, driven with the stock ``openstack`` CLI, on a host inside a namespace.

One ``onestack up`` with the real drivers (QEMU under TCG, qcow2 overlays, a Linux
bridge, dnsmasq in a DHCP namespace, the metadata proxy) runs in a namespace of the
test's own. The test image's init prints ``ONESTACK-TEST: ...`` lines on the serial
console for each step (DHCP, metadata, SLAAC, user data, the ACPI power button), which
the tests read back with ``openstack console log show``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from onestack.drivers.hypervisor.qmp import connect_unix
from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host, openstack, wait_for

pytestmark = [
    pytest.mark.root, pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None, reason="needs QEMU and dnsmasq"),
]

BOOT_TIMEOUT = 240
USER_DATA = """#!/bin/sh
key=$(wget -qO- http://169.254.169.254/openstack/latest/meta_data.json \\
      | sed -n 's|.*"\\(ssh-ed25519 [A-Za-z0-9+/=]*\\).*|\\1|p')
echo "ONESTACK-USERDATA ran on $(hostname) key=[$key]"
# Report a second NIC as it is hot-plugged and unplugged (test_attach_detach_interface):
# its MAC, and the address DHCP leases it (eth0's routes are left alone).
echo '#!/bin/sh' > /tmp/nic-lease.sh
echo '[ "$1" = bound ] && echo "ONESTACK-NIC eth1 lease $ip" >/dev/console' \\
    >> /tmp/nic-lease.sh
chmod +x /tmp/nic-lease.sh
(
last=""
while true; do
    if [ -e /sys/class/net/eth1 ]; then
        if [ -z "$last" ]; then
            last=$(cat /sys/class/net/eth1/address)
            echo "ONESTACK-NIC eth1 up mac=$last" >/dev/console
            ip link set eth1 up
            udhcpc -i eth1 -s /tmp/nic-lease.sh -t 10 -T 2 -n -q >/dev/null 2>&1 \\
                || echo "ONESTACK-NIC eth1 no lease" >/dev/console
        fi
    elif [ -n "$last" ]; then
        echo "ONESTACK-NIC eth1 gone" >/dev/console
        last=""
    fi
    sleep 0.2
done
) </dev/null >/dev/null 2>&1 &
"""


@pytest.fixture(scope="module")
def image_file() -> Path:
    return build_test_image()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, image_file: Path) -> Iterator[NetnsHost]:
    # The image is built (it downloads Debian packages) before this thread moves into the
    # host's namespace, which has no way out.
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def cloud(host: NetnsHost, image_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """Image, network with IPv4 and IPv6 (SLAAC) subnets, and a key pair."""
    tmp = tmp_path_factory.mktemp("cloud")
    image = openstack(host, "image", "create", "--disk-format", "qcow2",
                      "--container-format", "bare", "--file", str(image_file), "--public",
                      "testimg")
    net = openstack(host, "network", "create", "net1")
    openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
              "10.20.0.0/24", "sub4")
    openstack(host, "subnet", "create", "--network", "net1", "--ip-version", "6",
              "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "--subnet-range",
              "fd00:20::/64", "sub6")
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    (tmp / "key.pub").write_text(key + "\n")
    openstack(host, "keypair", "create", "--public-key", str(tmp / "key.pub"), "key1")
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    return {"image": image["id"], "network": net["id"], "key": key, "user_data": user_data}


def console(host: NetnsHost, server: str) -> str:
    return openstack(host, "console", "log", "show", server, json_output=False)


def wait_console(host: NetnsHost, server: str, pattern: str, count: int = 1,
                 timeout: float = BOOT_TIMEOUT) -> str:
    def seen() -> str | None:
        text = console(host, server)
        return text if len(re.findall(pattern, text)) >= count else None
    try:
        return wait_for(seen, timeout, interval=2, what=f"{pattern!r} x{count} on {server}")
    except AssertionError:
        print(console(host, server)[-3000:])
        print(host.log_tail())
        raise


def wait_status(host: NetnsHost, server: str, status: str, timeout: float = 120) -> dict:
    def reached() -> dict | None:
        s = openstack(host, "server", "show", server)
        if s["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"{server} went to ERROR: {s.get('fault')}")
        return s if s["status"] == status else None
    return wait_for(reached, timeout, interval=1, what=f"{server} {status}")


def addresses(server: dict) -> tuple[str, str]:
    """(IPv4, IPv6) of the server as the API shows them."""
    addrs = server["addresses"]
    if isinstance(addrs, dict):  # newer clients give {"net1": ["10.20.0.5", "fd00::..."]}
        flat = [a if isinstance(a, str) else a["addr"] for v in addrs.values() for a in v]
    else:
        flat = re.findall(r"[0-9a-f:.]{7,}", str(addrs))
    v4 = next(a for a in flat if "." in a)
    v6 = next(a for a in flat if ":" in a)
    return v4, v6


def alive(pid: int) -> bool:
    """Running (a zombie is not: this machine's PID 1 may never reap daemons' ends)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def qemu_pids(host: NetnsHost) -> dict[str, int]:
    """Instance uuid -> QEMU PID, from the pidfiles."""
    return {p.parent.name: pid for p, pid in host.pidfile_processes().items()
            if p.parent.parent.name == "instances"}


def test_boot_addresses_metadata_user_data(host: NetnsHost, cloud: dict) -> None:
    created = openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
                        "--network", "net1", "--key-name", "key1", "--user-data",
                        str(cloud["user_data"]), "--wait", "vm1", timeout=300)
    assert created["status"] == "ACTIVE"
    server = openstack(host, "server", "show", "vm1")
    v4, v6 = addresses(server)
    text = wait_console(host, "vm1", r"ONESTACK-TEST: done")
    assert f"dhcp ok {v4}" in text, text[-2000:]
    assert "mtu 1450" in text  # the tenant network's MTU, handed out by DHCP
    assert re.search(rf"ipv6 ok {re.escape(v6)}/64", text), text[-2000:]
    assert f"metadata ok uuid={server['id']}" in text, text[-2000:]
    assert "user-data ran rc=0" in text
    assert f"key=[{cloud['key']}]" in text, text[-2000:]
    assert "ONESTACK-USERDATA ran on vm1" in text


def test_attach_detach_interface(host: NetnsHost, cloud: dict) -> None:
    """A port hot-plugged into the running guest: its eth1 appears with the port's MAC
    and gets the port's address from DHCP (tap on the bridge, filters, DHCP host entry);
    unplugged, eth1 goes and the port compute made for it is deleted."""
    first = [p["ID"] for p in openstack(host, "port", "list", "--server", "vm1")]
    openstack(host, "server", "add", "network", "vm1", "net1", json_output=False)
    ports = openstack(host, "port", "list", "--server", "vm1", "--long")
    (new,) = [p for p in ports if p["ID"] not in first]
    mac = new["MAC Address"]
    fixed = re.findall(r"ip_address='([0-9.]+)'", str(new["Fixed IP Addresses"])) or \
        re.findall(r"'ip_address': '([0-9.]+)'", str(new["Fixed IP Addresses"]))
    text = wait_console(host, "vm1", r"ONESTACK-NIC eth1 (lease \S+|no lease)",
                        timeout=120)
    assert f"ONESTACK-NIC eth1 up mac={mac}" in text, text[-2000:]
    assert f"ONESTACK-NIC eth1 lease {fixed[0]}" in text, (fixed, text[-2000:])
    wait_for(lambda: openstack(host, "port", "show", new["ID"])["status"] == "ACTIVE", 30,
             interval=1, what="the attached port ACTIVE")
    actions = [a["Action"] for a in openstack(host, "server", "event", "list", "vm1")]
    assert "attach_interface" in actions
    openstack(host, "server", "remove", "port", "vm1", new["ID"], json_output=False)
    wait_console(host, "vm1", r"ONESTACK-NIC eth1 gone", timeout=90)

    def deleted() -> bool:
        try:
            openstack(host, "port", "show", new["ID"])
        except AssertionError:
            return True
        return False
    wait_for(deleted, 30, interval=1, what="the port compute made deleted")
    assert [p["ID"] for p in openstack(host, "port", "list", "--server", "vm1")] == first


def test_stop_start_reboot(host: NetnsHost, cloud: dict) -> None:
    openstack(host, "server", "stop", "vm1", json_output=False)
    wait_status(host, "vm1", "SHUTOFF")
    assert server_pid(host, "vm1") is None
    # The guest powered itself off on the ACPI button (not forced after the timeout).
    wait_console(host, "vm1", r"ONESTACK-TEST: acpi power button, powering off", timeout=10)
    openstack(host, "server", "start", "vm1", json_output=False)
    wait_status(host, "vm1", "ACTIVE")
    wait_console(host, "vm1", r"ONESTACK-TEST: init started", count=2)
    openstack(host, "server", "reboot", "--hard", "--wait", "vm1", json_output=False)
    wait_console(host, "vm1", r"ONESTACK-TEST: init started", count=3)
    openstack(host, "server", "reboot", "--soft", "--wait", "vm1", json_output=False)
    wait_console(host, "vm1", r"ONESTACK-TEST: init started", count=4)
    assert openstack(host, "server", "show", "vm1")["status"] == "ACTIVE"


def server_pid(host: NetnsHost, name: str) -> int | None:
    server_id = openstack(host, "server", "show", name)["id"]
    return qemu_pids(host).get(server_id)


def test_rebuild_and_snapshot(host: NetnsHost, cloud: dict) -> None:
    openstack(host, "server", "rebuild", "--image", "testimg", "--wait", "vm1",
              json_output=False, timeout=300)
    wait_status(host, "vm1", "ACTIVE")
    openstack(host, "server", "image", "create", "--name", "snap1", "--wait", "vm1",
              json_output=False, timeout=300)
    snap = openstack(host, "image", "show", "snap1")
    assert snap["status"] == "active"
    assert snap["disk_format"] == "qcow2" and snap["size"] > 0
    assert openstack(host, "server", "show", "vm1")["status"] == "ACTIVE"


def run_in_guest(host: NetnsHost, server_id: str, command: str, expect: str,
                 timeout: float = 60) -> re.Match[str]:
    """Type ``command`` into the guest's serial shell (its console socket on the host)
    until ``expect`` (a regex) shows in the console log after it; the match."""
    gdir = host.state_dir / "instances" / server_id
    log = gdir / "console.log"
    before = log.stat().st_size
    deadline = time.monotonic() + timeout
    with connect_unix(gdir / "console.sock", timeout=5) as sock:
        while time.monotonic() < deadline:
            sock.sendall(command.encode() + b"\n")
            resend = time.monotonic() + 5  # the shell may not be there yet
            while time.monotonic() < resend:
                with log.open("rb") as f:
                    f.seek(before)
                    match = re.search(expect, f.read().decode(errors="replace"))
                if match:
                    return match
                time.sleep(0.2)
    pytest.fail(f"no {expect!r} after {command!r}:\n{log.read_text(errors='replace')[-2000:]}")


def test_rescue_and_unrescue(host: NetnsHost, cloud: dict) -> None:
    """Rescue: the guest boots from a fresh copy-on-write disk of its image and sees its
    own disk second (/dev/vdb, with what the guest wrote to it); unrescue: it boots its
    own disk again and the rescue disk is gone. The server's disk (m1.nano: 1 GiB) is
    told from the rescue disk (the image's 25 MiB) by its size and by a mark the guest
    writes in its last sector, past the image's partition."""
    server_id = openstack(host, "server", "show", "vm1")["id"]
    done = r"ONESTACK-TEST: done"  # init is over: a shell waits on ttyS0
    probe = ('for d in vda vdb; do [ -e /sys/block/$d ] && n=$(cat /sys/block/$d/size) && '
             'echo "$d=$n:$(dd if=/dev/$d bs=512 skip=$((n - 1)) count=1 2>/dev/null '
             '| grep -c ONESTACK-DISK-MARK)"; done; echo "probe-end=$((40 + 2))"')
    wait_console(host, "vm1", done)
    assert run_in_guest(host, server_id, 'echo ONESTACK-DISK-MARK | dd of=/dev/vda bs=512 '
                        'seek=$(($(cat /sys/block/vda/size) - 1)) conv=notrunc,fsync '
                        '2>/dev/null; echo "marked=$((1 + $?))"', r"marked=\d").group(0) \
        == "marked=1"
    boots = len(re.findall(done, console(host, "vm1")))
    own_disk = host.state_dir / "disks" / server_id / "disk"
    rescue_disk = host.state_dir / "disks" / f"{server_id}-rescue" / "disk"

    openstack(host, "server", "rescue", "vm1", json_output=False)
    wait_status(host, "vm1", "RESCUE")
    assert rescue_disk.is_file() and own_disk.is_file()
    spec = json.loads((host.state_dir / "instances" / server_id / "spec.json").read_text())
    assert [(d["source"], d["boot_index"]) for d in spec["disks"]] == [
        (str(rescue_disk), 0), (str(own_disk), None)]
    wait_console(host, "vm1", done, count=boots + 1)
    seen = run_in_guest(host, server_id, probe, r"vda=\d+:\d\s+vdb=\d+:\d\s+probe-end=42")
    # booted from the rescue disk (image size, no mark), its own disk second
    assert re.search(r"vda=51200:0\s+vdb=2097152:1", seen.group(0)), seen.group(0)

    openstack(host, "server", "unrescue", "vm1", json_output=False)
    wait_status(host, "vm1", "ACTIVE")
    assert not rescue_disk.parent.exists()  # nothing leaked
    wait_console(host, "vm1", done, count=boots + 2)
    seen = run_in_guest(host, server_id, probe, r"vda=\d+:\d\s+probe-end=42")
    assert re.search(r"vda=2097152:1\s+probe-end", seen.group(0)), seen.group(0)
    actions = [a["Action"] for a in openstack(host, "server", "event", "list", "vm1")]
    assert "rescue" in actions and "unrescue" in actions


def test_shelve_and_unshelve(host: NetnsHost, cloud: dict) -> None:
    """Shelve: the guest powers off, its disk is uploaded to ``vm1-shelved`` and it is
    offloaded at once (no QEMU, no disk, no tap; the port stays, unbound). Unshelve: it
    boots from a disk made from that image - a mark the guest wrote in its
    second-to-last sector before is read back - and the image is deleted."""
    server_id = openstack(host, "server", "show", "vm1")["id"]
    done = r"ONESTACK-TEST: done"
    wait_console(host, "vm1", done)
    mark = ('echo ONESTACK-SHELVE-MARK | dd of=/dev/vda bs=512 '
            'seek=$(($(cat /sys/block/vda/size) - 2)) conv=notrunc,fsync 2>/dev/null; '
            'echo "shelve-marked=$((1 + $?))"')
    assert run_in_guest(host, server_id, mark, r"shelve-marked=\d").group(0) \
        == "shelve-marked=1"
    [port] = openstack(host, "port", "list", "--device-id", server_id)

    openstack(host, "server", "shelve", "vm1", json_output=False)
    shelved = wait_status(host, "vm1", "SHELVED_OFFLOADED", timeout=180)
    assert shelved.get("OS-EXT-SRV-ATTR:host") in (None, "")
    assert server_id not in qemu_pids(host)
    assert not (host.state_dir / "disks" / server_id).exists()
    assert not (host.state_dir / "instances" / server_id).exists()
    assert not any(port["ID"][:8] in link for link in host.links())
    kept = openstack(host, "port", "show", port["ID"])
    assert kept["device_id"] == server_id and not kept.get("binding_host_id")
    image = openstack(host, "image", "show", "vm1-shelved")
    assert image["status"] == "active" and image["size"] > 0
    assert image["disk_format"] == "qcow2"

    openstack(host, "server", "unshelve", "vm1", json_output=False)
    wait_status(host, "vm1", "ACTIVE", timeout=180)
    assert server_id in qemu_pids(host)
    wait_console(host, "vm1", done)  # a new console log: the guest booted afresh
    probe = ('n=$(cat /sys/block/vda/size); dd if=/dev/vda bs=512 skip=$((n - 2)) '
             'count=1 2>/dev/null | grep -c ONESTACK-SHELVE-MARK | sed "s/^/found=/"; '
             'echo "probe-end=$((40 + 2))"')
    seen = run_in_guest(host, server_id, probe, r"found=\d\s+probe-end=42")
    assert "found=1" in seen.group(0), seen.group(0)
    assert openstack(host, "port", "show", port["ID"])["binding_host_id"]
    assert openstack(host, "image", "list", "--name", "vm1-shelved") == []
    actions = [a["Action"] for a in openstack(host, "server", "event", "list", "vm1")]
    assert "shelve" in actions and "unshelve" in actions


def test_delete_leaves_nothing_behind(host: NetnsHost, cloud: dict) -> None:
    server = openstack(host, "server", "show", "vm1")
    server_id = server["id"]
    v4, _ = addresses(server)
    ports = openstack(host, "port", "list", "--device-id", server_id)
    assert len(ports) == 1
    mac = ports[0]["MAC Address"]
    tap = next(link for link in host.links() if "tap" in link and
               ports[0]["ID"][:6] in link)
    assert tap
    openstack(host, "server", "delete", "--wait", "vm1", json_output=False, timeout=180)
    assert server_id not in qemu_pids(host)
    assert not any(ports[0]["ID"][:8] in link for link in host.links())
    assert not (host.state_dir / "disks" / server_id).exists()
    assert not (host.state_dir / "instances" / server_id).exists()
    assert openstack(host, "port", "list", "--device-id", server_id) == []
    leases = "".join(p.read_text() for p in (host.state_dir / "dhcp").rglob("*lease*")
                     if p.is_file())
    assert mac not in leases and v4 not in leases


def test_kill_9_server_then_restart(host: NetnsHost, cloud: dict) -> None:
    openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
              "--network", "net1", "--wait", "vm2", json_output=False, timeout=300)
    vm2 = openstack(host, "server", "show", "vm2")["id"]
    pid_before = qemu_pids(host)[vm2]
    # A server half-built when the process dies.
    openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
              "--network", "net1", "vm3")
    host.kill()
    assert alive(pid_before)  # the guest outlived the server
    host.start()
    wait_status(host, "vm2", "ACTIVE")
    assert qemu_pids(host)[vm2] == pid_before  # adopted, not restarted
    vm3 = wait_for(lambda: (s := openstack(host, "server", "show", "vm3"))["status"]
                   in ("ACTIVE", "ERROR") and s, 180, what="vm3 settles")
    if vm3["status"] == "ERROR":
        assert vm3.get("fault"), vm3
    # Managed again: the adopted guest stops and starts on request.
    openstack(host, "server", "stop", "vm2", json_output=False)
    wait_status(host, "vm2", "SHUTOFF")
    assert not alive(pid_before)
    openstack(host, "server", "delete", "--wait", "vm2", "vm3", json_output=False,
              timeout=180)


def test_host_restart_starts_guests_again(host: NetnsHost, cloud: dict) -> None:
    """A host reboot: the server and every guest die; at start the guest that should run
    runs again."""
    openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
              "--network", "net1", "--wait", "vm4", json_output=False, timeout=300)
    vm4 = openstack(host, "server", "show", "vm4")["id"]
    # The first boot must have got as far as init (the count below needs its marker):
    # waited for, not assumed after ACTIVE (TCG on a loaded machine takes its time).
    wait_console(host, "vm4", r"ONESTACK-TEST: init started")
    host.kill()
    pid = qemu_pids(host)[vm4]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, what="QEMU gone")
    host.start()
    wait_for(lambda: qemu_pids(host).get(vm4) not in (None, pid), 60,
             what="vm4 started again")
    assert openstack(host, "server", "show", "vm4")["status"] == "ACTIVE"
    wait_console(host, "vm4", r"ONESTACK-TEST: init started", count=2)
    openstack(host, "server", "delete", "--wait", "vm4", json_output=False, timeout=180)
    assert not [link for link in host.links() if "tap" in link]


def test_config_drive(host: NetnsHost, cloud: dict) -> None:
    openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
              "--network", "net1", "--key-name", "key1", "--config-drive", "true",
              "--user-data", str(cloud["user_data"]), "--wait", "vm5", json_output=False,
              timeout=300)
    server = openstack(host, "server", "show", "vm5")
    iso = host.state_dir / "disks" / server["id"] / "disk.config"
    assert iso.exists()
    meta = subprocess.run(["isoinfo", "-J", "-i", str(iso), "-x",
                           "/openstack/latest/meta_data.json"], capture_output=True,
                          check=True).stdout
    assert json.loads(meta)["uuid"] == server["id"]
    assert cloud["key"] in json.loads(meta)["public_keys"]["key1"]
    pid = qemu_pids(host)[server["id"]]
    assert str(iso) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    openstack(host, "server", "delete", "--wait", "vm5", json_output=False, timeout=180)
    assert not iso.exists()
