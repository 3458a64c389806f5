"""Security group rule programming: from ``security group rule create`` to the rule in
the host's iptables, with 1, 100 and 1000 rules in the group and 50 ports using it.

Two parts, each in a network namespace of its own (random ``ofb`` prefix; nothing is
made in the root namespace, everything is removed at the end, also on failure):

- **driver**: the Linux firewall driver alone (br_netfilter + iptables-nft physdev),
  50 ports with taps that need not exist (``physdev`` matches by name), the group's N
  rules on each; the time of one ``apply`` that adds a rule to the group (what the
  agent does when a rule is created), median of ``--repeat``. Shows how the cost
  grows with N (and the iptables rules the kernel then holds).
- **end to end**: ``onestack up`` with the fake hypervisor and fake storage but the
  real Linux network drivers (real bridge, taps, dnsmasq, iptables), 50 servers whose
  ports are in group ``bench``; the group is filled to N-1 rules, then a rule is
  created through the Networking API and timed from the API's answer until the agent
  has applied it (its log line) and it is in the kernel (``iptables -S`` of the rules
  chain the last port's chain goes to). Median of ``--repeat`` creations per N. No
  guest runs: traffic passing after a rule create is timed by
  tests/host/test_security_groups.py.

    heavy .venv/bin/python bench/network_firewall.py [--ports 50] [--rules 1,100,1000]

Needs root. Prints markdown for docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from harness import cpu_model, machine_busy  # noqa: E402

from onestack.drivers.network.firewall.base import PortRules, SecurityGroupRule  # noqa: E402
from onestack.drivers.network.firewall.linux import Chains, LinuxFirewall  # noqa: E402
from onestack.drivers.network.names import Names  # noqa: E402
from onestack.drivers.storage.fake import write_empty_qcow2  # noqa: E402
from tests.host.harness import NetnsHost  # noqa: E402

CLONE_NEWNET = 0x40000000


def rule(k: int) -> SecurityGroupRule:
    """The k-th distinct rule (a /24 and a port of its own)."""
    return SecurityGroupRule("ingress", "IPv4", "tcp", 1000 + k, 1000 + k,
                             f"10.{k // 250}.{k % 250}.0/24")


def rule_body(group: str, k: int) -> dict[str, Any]:
    r = rule(k)
    return {"security_group_rule": {
        "security_group_id": group, "direction": r.direction, "ethertype": r.ethertype,
        "protocol": r.protocol, "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max, "remote_ip_prefix": r.remote_ip_prefix}}


@contextlib.contextmanager
def namespace(name: str) -> Iterator[None]:
    """This thread in a fresh namespace ``name`` (removed at the end)."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        os.close(fd)
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
        subprocess.run(["ip", "netns", "del", name], check=False)


def kernel_rules() -> int:
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def bench_driver(ports: int, counts: list[int], repeat: int) -> list[dict[str, Any]]:
    prefix = "ofb" + secrets.token_hex(2)[:3]
    results = []
    with namespace(f"{prefix}drv"):
        driver = LinuxFirewall(name_prefix=prefix)
        try:
            ids = [str(uuid.uuid4()) for _ in range(ports)]
            for n in counts:
                def port_set(rules: list[SecurityGroupRule]) -> list[PortRules]:
                    return [PortRules(port_id=pid, network_id="bench-net",
                                      mac=f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}",
                                      ips=[f"10.250.{i // 250}.{i % 250 + 1}"],
                                      rules=[SecurityGroupRule("egress", "IPv4"), *rules])
                            for i, pid in enumerate(ids)]
                base = [rule(k) for k in range(n - 1)]
                driver.apply(port_set(base), {})
                times = []
                for r in range(repeat):
                    started = time.perf_counter()
                    driver.apply(port_set([*base, rule(n - 1 + r)]), {})
                    times.append(time.perf_counter() - started)
                    driver.apply(port_set(base), {})  # back to N-1
                driver.apply(port_set([*base, rule(n - 1)]), {})
                results.append({"rules": n, "median": statistics.median(times),
                                "max": max(times), "kernel_rules": kernel_rules()})
                print(f"driver: {n} rules x {ports} ports: apply median "
                      f"{statistics.median(times):.3f} s", file=sys.stderr)
        finally:
            driver.cleanup()
    return results


def rules_chain(port_chain: str) -> str:
    """The lines of the ingress rules chain a port's chain goes to (``-g``)."""
    out = subprocess.run(["iptables", "-w", "-S", port_chain], capture_output=True,
                         text=True).stdout
    target = next((line.split()[-1] for line in out.splitlines() if " -g " in line), "")
    if not target:
        return ""
    return subprocess.run(["iptables", "-w", "-S", target], capture_output=True,
                          text=True).stdout


class Cloud:
    def __init__(self, host: NetnsHost) -> None:
        self.client = httpx.Client(base_url=host.url, timeout=120)
        auth = yaml.safe_load(host.clouds_yaml.read_text())["clouds"]["onestack"]["auth"]
        r = self.client.post("/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": auth["password"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        r.raise_for_status()
        self.client.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
        self.project = r.json()["token"]["project"]["id"]

    def unlimited(self) -> None:
        """No quota in the way of 50 servers and 1000 rules."""
        self.call("PUT", f"/compute/v2.1/os-quota-sets/{self.project}", json={
            "quota_set": {"instances": -1, "cores": -1, "ram": -1}})
        self.call("PUT", f"/network/v2.0/quotas/{self.project}", json={
            "quota": {"security_group_rule": -1, "port": -1, "security_group": -1}})

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.client.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else None


def bench_end_to_end(ports: int, counts: list[int], repeat: int, tmp: Path
                     ) -> list[dict[str, Any]]:
    host = NetnsHost(tmp / "host", env={"ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
                                        "ONESTACK_HOST_STORAGE_DRIVER": "fake",
                                        "ONESTACK_HOST_POLL_INTERVAL": "5.0"})
    host.prefix = "ofb" + secrets.token_hex(2)[:3]
    results = []
    try:
        host.create()
        host.start()
        cloud = Cloud(host)
        cloud.unlimited()
        image_file = tmp / "empty.qcow2"
        write_empty_qcow2(image_file, 1 << 30)
        image = cloud.call("POST", "/image/v2/images", json={
            "name": "bench", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"})
        cloud.call("PUT", f"/image/v2/images/{image['id']}/file",
                   content=image_file.read_bytes(),
                   headers={"Content-Type": "application/octet-stream"})
        net = cloud.call("POST", "/network/v2.0/networks",
                         json={"network": {"name": "bench"}})["network"]["id"]
        cloud.call("POST", "/network/v2.0/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "cidr": "10.251.0.0/22"}})
        group = cloud.call("POST", "/network/v2.0/security-groups", json={
            "security_group": {"name": "bench"}})["security_group"]["id"]
        port_ids = []
        for i in range(ports):
            port = cloud.call("POST", "/network/v2.0/ports", json={"port": {
                "network_id": net, "security_groups": [group]}})["port"]
            port_ids.append(port["id"])
            cloud.call("POST", "/compute/v2.1/servers", json={"server": {
                "name": f"b{i}", "imageRef": image["id"], "flavorRef": "42",
                "networks": [{"port": port["id"]}]}})
        deadline = time.monotonic() + 600
        while True:
            servers = cloud.call("GET", "/compute/v2.1/servers/detail")["servers"]
            if sum(s["status"] == "ACTIVE" for s in servers) >= ports:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("servers did not become ACTIVE")
            time.sleep(1)
        chain = Chains(Names(host.prefix)).port("i", sorted(port_ids)[-1])
        made = 0  # rules 0..made-1 exist in the group
        log = host.log_path
        for n in counts:
            while made < n - 1:
                cloud.call("POST", "/network/v2.0/security-group-rules",
                           json=rule_body(group, made))
                made += 1
            time.sleep(3)  # the agent catches up with the fill
            times = []
            for r in range(repeat):
                dport = 50000 + n + r  # a port no filling rule has
                needle = f"-s 192.0.2.{r + 1}/32 -p tcp -m tcp --dport {dport} -j RETURN"
                body = rule_body(group, 0)
                body["security_group_rule"].update(
                    port_range_min=dport, port_range_max=dport,
                    remote_ip_prefix=f"192.0.2.{r + 1}/32")
                seen = log.read_text().count("security groups: applied")
                created = cloud.call("POST", "/network/v2.0/security-group-rules",
                                     json=body)["security_group_rule"]["id"]
                answered = time.perf_counter()
                while True:
                    count = log.read_text().count("security groups: applied")
                    if count > seen:
                        seen = count
                        if needle in rules_chain(chain):
                            break
                    if time.perf_counter() - answered > 60:
                        raise RuntimeError(f"the rule never reached iptables; see "
                                           f"{log} (kept)")
                    time.sleep(0.005)
                times.append(time.perf_counter() - answered)
                cloud.call("DELETE", f"/network/v2.0/security-group-rules/{created}")
                time.sleep(1.5)
            applied = re.findall(r"security groups: applied the firewall of \d+ port\(s\) "
                                 r"\(\d+ filtered, (\d+) rule\(s\)\) in ([0-9.]+) s",
                                 log.read_text())
            results.append({"rules": n, "median": statistics.median(times),
                            "max": max(times), "kernel_rules": kernel_rules(),
                            "agent_apply": float(applied[-1][1]) if applied else 0.0})
            print(f"end to end: {n} rules x {ports} ports: median "
                  f"{statistics.median(times):.3f} s", file=sys.stderr)
    finally:
        host.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=50)
    parser.add_argument("--rules", default="1,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces, iptables)")
    counts = [int(c) for c in args.rules.split(",")]
    busy = machine_busy()
    driver = bench_driver(args.ports, counts, args.repeat)
    e2e: list[dict[str, Any]] = []
    if not args.skip_end_to_end:
        with tempfile.TemporaryDirectory(prefix="onestack-bench-fw-") as tmp:
            e2e = bench_end_to_end(args.ports, counts, args.repeat, Path(tmp))
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; machine {busy:.0%} busy at start")
    print(f"{args.ports} ports in the group; median of {args.repeat}\n")
    print("| rules in the group | driver apply (one rule added) | API create -> in "
          "iptables (agent) | agent's apply | iptables rules in the kernel |")
    print("|---|---|---|---|---|")
    for d in driver:
        e = next((x for x in e2e if x["rules"] == d["rules"]), None)
        print(f"| {d['rules']} | {d['median']:.3f} s (max {d['max']:.3f}) | "
              + (f"{e['median']:.3f} s (max {e['max']:.3f}) | {e['agent_apply']:.3f} s | "
                 if e else "- | - | ")
              + f"{d['kernel_rules']} |")


if __name__ == "__main__":
    main()
