"""TCP throughput between two guests: no filtering, security groups, a router, a
floating IP. Each figure is also given as a ratio to the first (the baseline).

    heavy .venv/bin/python bench/network_throughput.py [--mib 64] [--repeat 3]

``onestack up`` with the real drivers (QEMU under TCG, Linux bridges, dnsmasq, the
Linux router and firewall drivers) runs in a namespace of its own (tests/host/harness.py:
random prefix, everything removed at the end, also on failure). Three guests of the
test image: ``a1`` and ``a2`` on network A, ``b1`` on network B, one router joining A
and B with its gateway on ``public``; each has a floating IP the benchmark reaches it by
over SSH (the keypair's key, user ``cirros``). Each guest's user data starts a
persistent busybox ``nc`` listener on tcp/5001 whose handler, ``dd of=/dev/null bs=64k``
reading the socket itself, counts the bytes of one connection and stamps the guest's
uptime when it was accepted and when it ended (on the console as ``ONESTACK-TEST: recv
...`` and in /run/recv.log). The sender runs ``nc <target> 5001 -e dd if=/dev/zero
bs=64k count=N`` over SSH (dd writes to the socket itself: no pipe, no copy by nc's
small buffer, which held a first version to 2-3 MiB/s); throughput is the receiver's
bytes over the receiver's time. The cases are measured in rounds (each case once per
round, port security switched on and off between them) so that the machine's changing
load falls on all of them alike. Cases:

1. **baseline**: a1 -> a2, same network, both ports with port security disabled (no
   iptables rules for them at all);
2. **security groups**: a1 -> a2, both ports in group ``bench`` (stateful rules:
   ingress tcp/22, tcp/5001, ICMP);
3. **router**: a1 -> b1 (network B, group ``bench``), through the router's namespace;
4. **floating IP**: a1 -> b1's floating IP: out through the router's SNAT and back in
   through its DNAT (hairpin on the one router).

Under TCG the guests' virtio-net and TCP stacks run on emulated CPUs: throughput is
bound by the guests' CPU (and by whatever else the machine runs), not by the host's
datapath, so the ratios are the meaningful part. Prints markdown for
docs/performance.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import cpu_model, machine_busy  # noqa: E402

from onestack.services.image.testimage import build_test_image  # noqa: E402
from tests.host.harness import NetnsHost, netns_host, openstack, wait_for  # noqa: E402

PORT = 5001
USER_DATA = f"""#!/bin/sh
cat > /run/recv.sh <<'EOF'
#!/bin/sh
read -r s _ </proc/uptime
dd of=/dev/null bs=65536 iflag=fullblock 2>/run/recv.dd
read -r e _ </proc/uptime
full=$(awk -F'[+ ]' '/records in/ {{print $1, $2}}' /run/recv.dd)
set -- $full
n=$(($1 * 65536)); [ "$2" = 0 ] || n="$n+partial"
echo "bytes=$n start=$s end=$e" >> /run/recv.log
echo "[$e] ONESTACK-TEST: recv bytes=$n start=$s end=$e" > /dev/console
EOF
chmod 755 /run/recv.sh
touch /run/recv.log && chmod 644 /run/recv.log
(nc -ll -p {PORT} -e /run/recv.sh </dev/null >/dev/null 2>&1 &)
"""
GROUP_RULES = (["--protocol", "tcp", "--dst-port", "22"],
               ["--protocol", "tcp", "--dst-port", str(PORT)], ["--protocol", "icmp"])


def ssh(key: Path, address: str, command: str, timeout: float = 300,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         "-o", "LogLevel=ERROR", f"cirros@{address}", command],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def setup(host: NetnsHost, tmp: Path) -> dict[str, Any]:
    key = tmp / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True)
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(build_test_image()), "--public", "testimg")
    openstack(host, "keypair", "create", "--public-key", f"{key}.pub", "key")
    openstack(host, "security", "group", "create", "bench")
    for rule in GROUP_RULES:
        openstack(host, "security", "group", "rule", "create", "--ingress", *rule, "bench")
    openstack(host, "router", "create", "r")
    openstack(host, "router", "set", "--external-gateway", "public", "r", json_output=False)
    for net, cidr in (("A", "10.50.0.0/24"), ("B", "10.51.0.0/24")):
        openstack(host, "network", "create", f"net{net}")
        subnet = openstack(host, "subnet", "create", "--network", f"net{net}",
                           "--subnet-range", cidr, f"sub{net}")
        openstack(host, "router", "add", "subnet", "r", subnet["id"], json_output=False)
    guests: dict[str, dict[str, Any]] = {}
    for name, net in (("a1", "netA"), ("a2", "netA"), ("b1", "netB")):
        port = openstack(host, "port", "create", "--network", net, "--security-group",
                         "bench", f"port-{name}")
        openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
                  "--port", port["id"], "--key-name", "key", "--user-data", str(user_data),
                  name)
        guests[name] = {"port": port["id"],
                        "fixed": port["fixed_ips"][0]["ip_address"]}
    for name, guest in guests.items():
        wait_for(lambda n=name: openstack(host, "server", "show", n)["status"] == "ACTIVE",
                 300, interval=2, what=f"{name} ACTIVE")
        fip = openstack(host, "floating", "ip", "create", "--port", guest["port"],
                        "public")
        guest["fip"] = fip["floating_ip_address"]
    for name, guest in guests.items():
        wait_for(lambda g=guest: ssh(key, g["fip"], "test -x /run/recv.sh",
                                     timeout=30).returncode == 0,
                 300, interval=2, what=f"{name} reachable by ssh, receiver started")
    return {"key": key, "guests": guests}


def port_security(host: NetnsHost, port: str, enabled: bool) -> None:
    if enabled:
        openstack(host, "port", "set", "--enable-port-security", "--security-group",
                  "bench", port, json_output=False)
    else:
        openstack(host, "port", "set", "--no-security-group", "--disable-port-security",
                  port, json_output=False)


def measure(cloud: dict[str, Any], sender: str, receiver: str, target: str,
            mib: int) -> float:
    """MiB/s of one transfer of ``mib`` MiB, as the receiver timed it."""
    key, guests = cloud["key"], cloud["guests"]
    before = ssh(key, guests[receiver]["fip"], "wc -l < /run/recv.log").stdout.strip()
    sent = ssh(key, guests[sender]["fip"],
               f"nc {target} {PORT} -e dd if=/dev/zero bs=65536 count={mib * 16} 2>/dev/null")
    if sent.returncode != 0:
        raise RuntimeError(f"{sender} -> {target}: {sent.stderr.strip()}")

    def line() -> str | None:
        out = ssh(key, guests[receiver]["fip"],
                  f"sed -n '{int(before) + 1}p' /run/recv.log").stdout.strip()
        return out or None

    result = wait_for(line, 60, interval=0.5, what=f"{receiver}'s receive record")
    found = re.fullmatch(r"bytes=(\d+) start=([\d.]+) end=([\d.]+)", result)
    if not found:
        raise RuntimeError(f"{receiver}: {result}")
    size, start, end = int(found[1]), float(found[2]), float(found[3])
    if size != mib << 20:
        raise RuntimeError(f"{receiver} got {size} bytes of {mib << 20}")
    return size / (1 << 20) / max(end - start, 0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    build_test_image()
    busy = machine_busy()
    with tempfile.TemporaryDirectory(prefix="onestack-bench-tput-") as scratch, \
            netns_host(Path(scratch) / "host", ONESTACK_HOST_ACCEL="tcg") as host:
        started = time.monotonic()
        cloud = setup(host, Path(scratch))
        print(f"set up in {time.monotonic() - started:.0f} s", file=sys.stderr)
        guests = cloud["guests"]
        cases: list[tuple[str, str, str, str, bool]] = [
            ("same network, port security disabled (baseline)", "a1", "a2",
             guests["a2"]["fixed"], False),
            ("same network, security groups", "a1", "a2", guests["a2"]["fixed"], True),
            ("across the router (two networks), security groups", "a1", "b1",
             guests["b1"]["fixed"], True),
            ("via the floating IP (SNAT + DNAT, hairpin), security groups", "a1", "b1",
             guests["b1"]["fip"], True),
        ]
        results: list[tuple[str, list[float]]] = [(c[0], []) for c in cases]
        state: bool | None = None
        for round_ in range(args.repeat):
            for (label, sender, receiver, target, secured), (_, rates) in zip(
                    cases, results, strict=True):
                if secured != state:
                    for name in ("a1", "a2"):
                        port_security(host, guests[name]["port"], secured)
                    time.sleep(3)  # the agent's pass (woken; a margin for a busy CPU)
                    state = secured
                if round_ == 0:
                    measure(cloud, sender, receiver, target, 1)  # warm-up (ARP)
                rates.append(measure(cloud, sender, receiver, target, args.mib))
                print(f"{label}: {rates[-1]:.1f} MiB/s", file=sys.stderr)
    base = statistics.median(results[0][1])
    print(f"\nCPU: {cpu_model()}; machine busy before the run: {busy:.0%}; guests under TCG "
          f"(1 vCPU, m1.nano); {args.mib} MiB per transfer, median of {args.repeat}\n")
    print("| path | MiB/s (median) | min-max | ratio to baseline | same-round ratios |")
    print("|---|---|---|---|---|")
    for label, rates in results:
        med = statistics.median(rates)
        # Each round's figure over that round's baseline: less of the machine's drift.
        rounds = [r / b for r, b in zip(rates, results[0][1], strict=True)]
        print(f"| {label} | {med:.1f} | {min(rates):.1f}-{max(rates):.1f} | "
              f"{med / base:.2f}x | {', '.join(f'{r:.2f}' for r in rounds)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
