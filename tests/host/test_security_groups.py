"""Security groups and anti-spoofing from the API to real guests.

One ``onestack up`` with the real drivers (QEMU under TCG, Linux bridges, dnsmasq, the
Linux L3 and firewall drivers) runs in a namespace of the test's own, which is also
"the outside" (203.0.113.1 on ``public``'s bridge, as in test_router_datapath.py).
Three guests on one network behind a router, each on a port made beforehand (so every
script knows the others' addresses):

- alice (default group): busybox ``httpd`` on 80, an ``nc`` echo on 7000, pings bob,
  and re-runs ``udhcpc`` every few seconds, printing the lease and its server;
- bob (default group, plus ``dhcp-open`` which lets DHCP requests in, so that only
  the anti-spoofing rules stop what follows): reaches alice, then runs a rogue DHCP
  server (busybox ``udhcpd``) and keeps pinging alice from an address that is not his
  and from a MAC that is not his;
- carol (group ``web``): keeps trying alice's port 80.

The default group also allows ICMP from anywhere (so pings show that a path exists
where TCP is refused). The test watches alice's and bob's taps with packet sockets: what
leaves the host on alice's tap is what alice receives. Rules are created and deleted
through the Networking API with httpx, and timed from the API's answer.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from onestack.drivers.network.names import Names
from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host, openstack, run, wait_for

pytestmark = [
    pytest.mark.root, pytest.mark.qemu, pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None or shutil.which("nft") is None or
                       shutil.which("iptables-restore") is None,
                       reason="needs QEMU, dnsmasq, nft and iptables"),
]

BOOT_TIMEOUT = 300
CIDR = "10.40.0.0/24"
ALICE, BOB, CAROL = "10.40.0.11", "10.40.0.12", "10.40.0.13"
#: The test's namespace on ``public`` (the external network's gateway address).
OUTSIDE = "203.0.113.1"
SPOOF_IP, SPOOF_MAC = "10.40.0.77", "fa:16:3e:de:ad:77"
ROGUE_RANGE = ("10.40.0.200", "10.40.0.210")

MARK = 'mark() { read -r up _ </proc/uptime; echo "[$up] ONESTACK-SG: $*" >/dev/console; }'

ALICE_DATA = f"""#!/bin/sh
{MARK}
mkdir -p /www && echo "hello from alice" > /www/index.html
httpd -p 80 -h /www
(nc -ll -p 7000 -e /bin/cat </dev/null >/dev/null 2>&1 &)
i=0
while [ $i -lt 240 ]; do
    ping -c 1 -W 1 {BOB} >/dev/null 2>&1 && {{ mark "alice->bob ok"; break; }}
    i=$((i + 1)); sleep 0.5
done
cat > /run/show.sh <<'EOF'
#!/bin/sh
[ "$1" = bound ] && echo "ONESTACK-LEASE ip=$ip server=$serverid" >/dev/console
exit 0
EOF
chmod +x /run/show.sh
(while true; do
    udhcpc -i eth0 -n -q -t 2 -T 1 -s /run/show.sh >/dev/null 2>&1
    sleep 2
done &)
mark "alice ready"
"""

BOB_DATA = f"""#!/bin/sh
{MARK}
mkdir -p /www && echo "hello from bob" > /www/index.html
httpd -p 80 -h /www
i=0
while [ $i -lt 240 ]; do
    timeout 2 wget -q -O /dev/null http://{ALICE}/ && {{ mark "bob->alice ok"; break; }}
    i=$((i + 1)); sleep 0.5
done
cat > /run/udhcpd.conf <<'EOF'
start {ROGUE_RANGE[0]}
end {ROGUE_RANGE[1]}
interface eth0
lease_file /run/udhcpd.leases
option subnet 255.255.255.0
option router {SPOOF_IP}
EOF
touch /run/udhcpd.leases
udhcpd /run/udhcpd.conf && mark "rogue dhcp started"
ip addr add {SPOOF_IP}/24 dev eth0
own=$(cat /sys/class/net/eth0/address)
setmac() {{
    ip link set dev eth0 address "$1" 2>/dev/null || {{
        ip link set eth0 down; ip link set dev eth0 address "$1"; ip link set eth0 up; }}
}}
(while true; do
    ping -c 1 -W 1 -I {SPOOF_IP} {ALICE} >/dev/null 2>&1
    setmac {SPOOF_MAC}; ping -c 1 -W 1 {ALICE} >/dev/null 2>&1; setmac "$own"
    ping -c 1 -W 1 {ALICE} >/dev/null 2>&1  # as himself
    sleep 0.3
done &)
mark "spoofing from {SPOOF_IP} and {SPOOF_MAC}"
"""

CAROL_DATA = f"""#!/bin/sh
{MARK}
try() {{
    while true; do
        if timeout 1 wget -q -O /dev/null http://{ALICE}/; then
            [ -e /run/ok ] || {{ touch /run/ok; mark "carol->alice ok"; }}
        else
            [ -e /run/blocked ] || {{ touch /run/blocked; mark "carol->alice blocked"; }}
        fi
        sleep 0.2
    done
}}
(try &)
sleep 0.4
(try &)
mark "carol trying"
"""

# -- watching a tap ---------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@dataclass
class Frame:
    at: float
    #: True: the host sent it into the tap (the guest receives it).
    to_guest: bool
    src_mac: str
    ethertype: int
    src: str = ""
    dst: str = ""
    proto: int = 0
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0


class Sniffer:
    """Every frame through one tap, with the time it was seen (a packet socket)."""

    def __init__(self, ifname: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.2)
        self.frames: list[Frame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            frame = parse(data, addr[2] == PACKET_OUTGOING)
            if frame is not None:
                self.frames.append(frame)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def seen(self, since: float = 0.0, **match: Any) -> list[Frame]:
        return [f for f in list(self.frames) if f.at >= since
                and all(getattr(f, k) == v for k, v in match.items())]


def parse(data: bytes, to_guest: bool) -> Frame | None:
    if len(data) < 14:
        return None
    src_mac = ":".join(f"{b:02x}" for b in data[6:12])
    (ethertype,) = struct.unpack("!H", data[12:14])
    frame = Frame(time.monotonic(), to_guest, src_mac, ethertype)
    if ethertype != 0x0800 or len(data) < 34:
        return frame
    ihl = (data[14] & 0x0F) * 4
    frame.proto = data[23]
    frame.src, frame.dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
    l4 = 14 + ihl
    if frame.proto in (6, 17) and len(data) >= l4 + 4:
        frame.sport, frame.dport = struct.unpack("!HH", data[l4:l4 + 4])
    if frame.proto == 6 and len(data) >= l4 + 14:
        frame.tcp_flags = data[l4 + 13]
    return frame


SYN, ACK = 0x02, 0x10

# -- the cloud ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_file() -> Path:
    return build_test_image()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, image_file: Path) -> Iterator[NetnsHost]:
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


class Api:
    """The Networking API with the admin's token (timed calls, no CLI start-up)."""

    def __init__(self, host: NetnsHost) -> None:
        token = openstack(host, "token", "issue")["id"]
        self.client = httpx.Client(base_url=f"{host.url}/network/v2.0", timeout=30,
                                   headers={"X-Auth-Token": token})

    def create_rule(self, group: str, **rule: Any) -> str:
        r = self.client.post("/security-group-rules", json={"security_group_rule": {
            "security_group_id": group, **rule}})
        assert r.status_code == 201, r.text
        return str(r.json()["security_group_rule"]["id"])

    def delete_rule(self, rule_id: str) -> None:
        r = self.client.delete(f"/security-group-rules/{rule_id}")
        assert r.status_code == 204, r.text


@dataclass
class Cloud:
    api: Api
    ports: dict[str, dict[str, Any]]
    default: str
    web: str
    router: str
    dhcp_ips: list[str]
    taps: dict[str, Sniffer]


@pytest.fixture(scope="module")
def cloud(host: NetnsHost, image_file: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("cloud")
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(image_file), "--public", "testimg")
    openstack(host, "network", "create", "net1")
    subnet = openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
                       CIDR, "sub1")
    router = openstack(host, "router", "create", "r1")
    openstack(host, "router", "set", "--external-gateway", "public", "r1",
              json_output=False)
    openstack(host, "router", "add", "subnet", "r1", subnet["id"], json_output=False)
    web = openstack(host, "security", "group", "create", "web")["id"]
    dhcp_open = openstack(host, "security", "group", "create", "dhcp-open")["id"]
    openstack(host, "security", "group", "rule", "create", "--ingress", "--protocol", "udp",
              "--dst-port", "67", dhcp_open)
    ports = {"alice": openstack(host, "port", "create", "--network", "net1", "--fixed-ip",
                                f"subnet=sub1,ip-address={ALICE}", "alice-port")}
    default = ports["alice"]["security_group_ids"][0]
    ports["bob"] = openstack(host, "port", "create", "--network", "net1", "--fixed-ip",
                             f"subnet=sub1,ip-address={BOB}", "--security-group", default,
                             "--security-group", dhcp_open, "bob-port")
    ports["carol"] = openstack(host, "port", "create", "--network", "net1", "--fixed-ip",
                               f"subnet=sub1,ip-address={CAROL}", "--security-group", web,
                               "carol-port")
    openstack(host, "security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
              default)
    for name, script in (("alice", ALICE_DATA), ("bob", BOB_DATA), ("carol", CAROL_DATA)):
        path = tmp / f"{name}.sh"
        path.write_text(script)
        openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
                  "--port", ports[name]["id"], "--user-data", str(path), name)
    for name in ports:
        wait_for(lambda n=name: openstack(host, "server", "show", n)["status"] == "ACTIVE",
                 BOOT_TIMEOUT, interval=2, what=f"{name} ACTIVE")
    dhcp = openstack(host, "port", "list", "--network", "net1", "--device-owner",
                     "network:dhcp")
    dhcp_ips = [ip["ip_address"] for p in dhcp for ip in p["Fixed IP Addresses"]]
    names = Names(host.prefix)
    taps = {n: Sniffer(names.tap(ports[n]["id"])) for n in ("alice", "bob")}
    try:
        yield Cloud(api=Api(host), ports=ports, default=default, web=web,
                    router=router["id"], dhcp_ips=dhcp_ips, taps=taps)
    finally:
        for sniffer in taps.values():
            sniffer.close()


def console(host: NetnsHost, name: str) -> str:
    return openstack(host, "console", "log", "show", name, json_output=False)


def wait_console(host: NetnsHost, name: str, pattern: str,
                 timeout: float = BOOT_TIMEOUT) -> str:
    def seen() -> str | None:
        text = console(host, name)
        return text if re.search(pattern, text) else None
    try:
        return wait_for(seen, timeout, interval=2, what=f"{pattern!r} on {name}")
    except AssertionError:
        print(console(host, name)[-3000:])
        print(host.log_tail())
        raise


def reachable(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def rule_in_kernel(needle: str) -> bool:
    return needle in run("iptables", "-w", "-S").stdout


# -- proofs -----------------------------------------------------------------------------


def test_default_group_members_reach_each_other(host: NetnsHost, cloud: Cloud) -> None:
    wait_console(host, "alice", r"alice->bob ok")
    wait_console(host, "bob", r"bob->alice ok")


def test_other_group_blocked_until_a_rule_allows_it(host: NetnsHost, cloud: Cloud) -> None:
    text = wait_console(host, "carol", r"carol->alice (blocked|ok)")
    assert "carol->alice blocked" in text and "carol->alice ok" not in text, text[-2000:]
    # Carol keeps trying; nothing of hers reaches alice.
    time.sleep(3)
    alice = cloud.taps["alice"]
    assert not alice.seen(to_guest=True, src=CAROL, proto=6)

    rule = cloud.api.create_rule(cloud.default, direction="ingress", ethertype="IPv4",
                                 protocol="tcp", port_range_min=80, port_range_max=80,
                                 remote_group_id=cloud.web)
    created = time.monotonic()
    # The rule is in the host's iptables (the remote group expanded to carol's address)...
    wait_for(lambda: rule_in_kernel(f"-s {CAROL}/32 -p tcp -m tcp --dport 80 "
                                    "-j RETURN"), 5, interval=0.02, what="rule in iptables")
    in_kernel = time.monotonic() - created
    # ... and alice answers carol's next attempt.
    wait_for(lambda: alice.seen(since=created, to_guest=False, src=ALICE, dst=CAROL,
                                tcp_flags=SYN | ACK), 10, interval=0.02,
             what="alice answering carol")
    answered = alice.seen(since=created, to_guest=False, src=ALICE, dst=CAROL,
                          tcp_flags=SYN | ACK)[0].at - created
    print(f"rule create -> in iptables {in_kernel:.2f} s, -> alice answers carol "
          f"{answered:.2f} s (carol tries every ~0.3 s, under TCG)")
    # Within a second is the aim; the margin is for a machine shared with other work.
    assert in_kernel < 1.5
    assert answered < 3.0
    wait_console(host, "carol", r"carol->alice ok", timeout=30)
    cloud.api.delete_rule(rule)


def test_floating_ip_answers_tcp_80_only_while_a_rule_allows_it(host: NetnsHost,
                                                                 cloud: Cloud) -> None:
    fip = openstack(host, "floating", "ip", "create", "public")["floating_ip_address"]
    openstack(host, "server", "add", "floating", "ip", "alice", fip, json_output=False)
    # The path exists (ICMP is allowed from anywhere)...
    wait_for(lambda: subprocess.run(["ping", "-c", "1", "-W", "1", fip],
                                    capture_output=True).returncode == 0,
             30, interval=0.2, what=f"ping {fip}")
    # ... but no rule lets the outside (OUTSIDE) in on TCP.
    assert not any(reachable(fip, 80, timeout=0.5) for _ in range(3))

    rule = cloud.api.create_rule(cloud.default, direction="ingress", ethertype="IPv4",
                                 protocol="tcp", port_range_min=80, port_range_max=7000,
                                 remote_ip_prefix="0.0.0.0/0")
    created = time.monotonic()
    wait_for(lambda: reachable(fip, 80, timeout=0.2), 5, interval=0.02,
             what=f"{fip}:80 open")
    opened = time.monotonic() - created
    page = httpx.get(f"http://{fip}/", timeout=5).text
    assert "hello from alice" in page

    # An established flow the rule allowed (the echo on 7000) ...
    flow = socket.create_connection((fip, 7000), timeout=5)
    try:
        flow.sendall(b"before\n")
        assert _read_line(flow) == b"before\n"
        # ... which a second, narrower rule also allows: deleting the wide one deletes
        # the flow's conntrack entry (no port filter for a range that wide), and its next
        # packet is judged again and let in by the narrow rule (TCP picked up mid-stream).
        narrow = cloud.api.create_rule(cloud.default, direction="ingress",
                                       ethertype="IPv4", protocol="tcp",
                                       port_range_min=7000, port_range_max=7000,
                                       remote_ip_prefix=f"{OUTSIDE}/32")
        narrow_line = f"-s {OUTSIDE}/32 -p tcp -m tcp --dport 7000 -j RETURN"
        wait_for(lambda: rule_in_kernel(narrow_line), 5, interval=0.02,
                 what="the narrow rule in iptables")
        cloud.api.delete_rule(rule)
        deleted = time.monotonic()
        wait_for(lambda: not reachable(fip, 80, timeout=0.2), 5, interval=0.02,
                 what=f"{fip}:80 closed")
        closed = time.monotonic() - deleted
        time.sleep(0.5)
        assert not reachable(fip, 80, timeout=1.0)
        # The flow's entry really went (the host's conntrack table is this namespace's).
        if shutil.which("conntrack"):
            entries = run("conntrack", "-L", "-f", "ipv4", "-p", "tcp", "-d", ALICE,
                          "--dport", "7000").stdout
            assert "ESTABLISHED" not in entries, entries
        flow.sendall(b"still allowed\n")
        assert _read_line(flow) == b"still allowed\n"
        # The narrow rule deleted: nothing allows the flow any more, and Neutron's
        # behaviour (conntrack entries of a removed rule deleted) cuts it.
        cloud.api.delete_rule(narrow)
        wait_for(lambda: not rule_in_kernel(narrow_line), 5, interval=0.02,
                 what="the narrow rule out of iptables")
        time.sleep(0.5)  # the same apply deletes the conntrack entries right after
        assert not reachable(fip, 7000, timeout=1.0)  # a new connection is refused
        flow.sendall(b"after\n")
        flow.settimeout(4)
        try:
            echoed: bytes | None = _read_line(flow)
        except TimeoutError:
            echoed = None
        assert echoed is None, f"the flow lives on after its only rule went: {echoed!r}"
    finally:
        flow.close()
    print(f"floating IP tcp/80: open {opened:.2f} s after rule create, closed "
          f"{closed:.2f} s after rule delete")
    assert opened < 1.5 and closed < 1.5


def test_spoofing_and_rogue_dhcp_are_not_heard_until_port_security_is_off(
        host: NetnsHost, cloud: Cloud) -> None:
    wait_console(host, "bob", r"spoofing from")
    wait_console(host, "bob", r"rogue dhcp started")
    start = time.monotonic()
    alice, bob = cloud.taps["alice"], cloud.taps["bob"]
    bob_mac = cloud.ports["bob"]["mac_address"]
    # Bob really sends spoofed frames and rogue DHCP offers (seen on his tap) ...
    wait_for(lambda: bob.seen(since=start, to_guest=False, src=SPOOF_IP), 30,
             what="bob sending from the spoofed address")
    wait_for(lambda: bob.seen(since=start, to_guest=False, src_mac=SPOOF_MAC), 30,
             what="bob sending from the spoofed MAC")
    wait_for(lambda: bob.seen(since=start, to_guest=False, proto=17, sport=67), 30,
             what="bob's rogue DHCP server answering")
    time.sleep(3)
    # ... and alice receives none of it, while she still hears bob himself.
    assert alice.seen(since=start, to_guest=True, src=BOB, proto=1)
    assert not alice.seen(since=start, to_guest=True, src=SPOOF_IP)
    assert not alice.seen(since=start, to_guest=True, src_mac=SPOOF_MAC, ethertype=0x0800)
    assert not alice.seen(since=start, to_guest=True, src_mac=bob_mac, proto=17, sport=67)
    # Alice's udhcpc keeps getting the real lease, never the rogue one.
    leases_at_start = len(re.findall(r"ONESTACK-LEASE", console(host, "alice")))
    text = wait_for(lambda: (t := console(host, "alice")) and
                    len(re.findall(r"ONESTACK-LEASE", t)) >= leases_at_start + 2 and t,
                    60, interval=2, what="alice renewing")
    leases = re.findall(r"ONESTACK-LEASE ip=(\S+) server=(\S+)", text)
    assert leases and all(ip == ALICE and server in cloud.dhcp_ips for ip, server in leases), \
        leases

    # Port security off on bob's port: his spoofed traffic reaches alice (the off switch).
    openstack(host, "port", "set", "--no-security-group", "--disable-port-security",
              cloud.ports["bob"]["id"], json_output=False)
    off = time.monotonic()
    wait_for(lambda: alice.seen(since=off, to_guest=True, src=SPOOF_IP), 20,
             interval=0.1, what="spoofed address reaching alice with port security off")
    wait_for(lambda: alice.seen(since=off, to_guest=True, src_mac=SPOOF_MAC,
                                ethertype=0x0800), 20, interval=0.1,
             what="spoofed MAC reaching alice with port security off")
    wait_for(lambda: alice.seen(since=off, to_guest=True, proto=17, sport=67,
                                src=BOB), 30, interval=0.1,
             what="the rogue DHCP server heard with port security off")


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(64)
        if not chunk:
            break
        data += chunk
    return data
