"""Two projects with the same CIDR, each behind its own router: isolated but for the
floating IPs their security groups allow.

One ``onestack up`` with the real drivers in a namespace of the test's own, which also
plays the outside (it holds the external gateway address 203.0.113.1 on ``public``'s
bridge, as in the all-in-one mode). As admin the test creates two projects and a member
user in each; each user then builds, with its own credentials, the same thing: network
``10.0.0.0/24``, a router with its gateway on ``public``, a security group allowing
tcp/22 and ICMP, a keypair, a guest (busybox ``httpd`` on port 80) and a floating IP.
The guests get distinct fixed addresses (10.0.0.11 and 10.0.0.12) so that "reaching the
other's fixed IP" is a meaningful question.

Everything is checked from inside the guests over SSH through their floating IPs: both
reach the outside through SNAT (the outside sees each router's own gateway address,
and once a guest has its floating IP, that address);
neither reaches the other's fixed IP; project 1's guest reaches project 2's floating IP
on tcp/80 only once project 2's group allows it, and the other way round stays shut.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host, openstack, wait_for

pytestmark = [
    pytest.mark.root, pytest.mark.qemu, pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None or shutil.which("ssh") is None,
                       reason="needs QEMU, dnsmasq and openssh-client"),
]

BOOT_TIMEOUT = 300
OUTSIDE = "203.0.113.1"
LISTEN_PORT = 8081
PASSWORD = "s3cret-pw"
FIXED = {"p1": "10.0.0.11", "p2": "10.0.0.12"}
USER_DATA = f"""#!/bin/sh
mkdir -p /www && echo "hello from $(hostname)" > /www/index.html
httpd -p 80 -h /www
i=0
while [ $i -lt 60 ]; do
    if out=$(timeout 5 wget -q -O - http://{OUTSIDE}:{LISTEN_PORT}/ 2>/dev/null); then
        echo "ONESTACK-SNAT got [$out]"; break
    fi
    i=$((i + 1)); sleep 1
done
[ $i -lt 60 ] || echo "ONESTACK-SNAT failed"
"""


class Outside(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the peer address it saw."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f"peer={self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsHost]:
    build_test_image()  # before entering the namespace (apt needs the outside)
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def outside(host: NetnsHost) -> Iterator[None]:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", LISTEN_PORT), Outside)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def as_user(host: NetnsHost, project: str, *args: str, json_output: bool = True) -> Any:
    return openstack(host, "--os-username", f"u-{project}", "--os-password", PASSWORD,
                     "--os-project-name", project, *args, json_output=json_output)


@pytest.fixture(scope="module")
def projects(host: NetnsHost, outside: None,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("projects")
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(build_test_image()), "--public", "testimg")
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    found: dict[str, dict[str, Any]] = {}
    for project in FIXED:
        openstack(host, "project", "create", project)
        openstack(host, "user", "create", "--project", project, "--password", PASSWORD,
                  f"u-{project}")
        openstack(host, "role", "add", "--user", f"u-{project}", "--project", project,
                  "member", json_output=False)
        key = tmp / f"key-{project}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        as_user(host, project, "keypair", "create", "--public-key", f"{key}.pub", "key")
        as_user(host, project, "network", "create", "net")
        subnet = as_user(host, project, "subnet", "create", "--network", "net",
                         "--subnet-range", "10.0.0.0/24", "sub")
        as_user(host, project, "router", "create", "r")
        as_user(host, project, "router", "set", "--external-gateway", "public", "r",
                json_output=False)
        as_user(host, project, "router", "add", "subnet", "r", subnet["id"],
                json_output=False)
        gateway = as_user(host, project, "router", "show", "r")["external_gateway_info"]
        group = as_user(host, project, "security", "group", "create", "sg")
        for rule in (["--protocol", "tcp", "--dst-port", "22"], ["--protocol", "icmp"]):
            as_user(host, project, "security", "group", "rule", "create", "--ingress",
                    *rule, "sg")
        port = as_user(host, project, "port", "create", "--network", "net",
                       "--fixed-ip", f"subnet=sub,ip-address={FIXED[project]}",
                       "--security-group", "sg", "port")
        as_user(host, project, "server", "create", "--image", "testimg", "--flavor",
                "m1.nano", "--port", port["id"], "--key-name", "key", "--user-data",
                str(user_data), f"vm-{project}")
        fip = as_user(host, project, "floating", "ip", "create", "public")
        found[project] = {"key": key, "group": group["id"], "fip":
                          fip["floating_ip_address"], "gateway_ip":
                          gateway["external_fixed_ips"][0]["ip_address"]}
    for project in found:
        try:
            wait_for(lambda p=project: as_user(host, p, "server", "show", f"vm-{p}")[
                "status"] in ("ACTIVE", "ERROR"), 120, interval=2, what=f"vm-{project}")
        finally:
            server = as_user(host, project, "server", "show", f"vm-{project}")
            if server["status"] != "ACTIVE":
                print(server, host.log_tail(100))
        assert server["status"] == "ACTIVE"
    for project, info in found.items():
        # The floating IP comes once the guest has been out through the router's SNAT
        # (with one, its traffic leaves from the floating IP instead).
        info["snat"] = wait_for(lambda p=project: re.search(
            r"ONESTACK-SNAT (got \[.*?\]|failed)", console(host, p)), BOOT_TIMEOUT,
            interval=2, what=f"SNAT marker of vm-{project}").group(1)
        as_user(host, project, "server", "add", "floating", "ip", f"vm-{project}",
                info["fip"], json_output=False)
    for project, info in found.items():
        try:
            wait_for(lambda i=info: ssh(i, "true").returncode == 0, BOOT_TIMEOUT,
                     interval=2, what=f"ssh to vm-{project}")
        except AssertionError:
            print(console(host, project)[-3000:])
            print(host.log_tail())
            raise
    return found


def console(host: NetnsHost, project: str) -> str:
    return str(as_user(host, project, "console", "log", "show", f"vm-{project}",
                       json_output=False))


def ssh(info: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(info["key"]), "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         f"cirros@{info['fip']}", command],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def fetch(info: dict[str, Any], url: str, seconds: int = 3) -> str | None:
    """A page fetched by the guest (busybox wget, bounded by timeout), or None."""
    done = ssh(info, f"timeout {seconds} wget -q -O - {url}")
    return done.stdout if done.returncode == 0 else None


def test_same_cidr_both_reach_the_outside_through_their_own_router(
        projects: dict[str, dict[str, Any]]) -> None:
    gateways = set()
    for project, info in projects.items():
        # Before its floating IP: out through its router's SNAT (the gateway address).
        assert info["snat"] == f"got [peer={info['gateway_ip']}]", (project, info["snat"])
        gateways.add(info["gateway_ip"])
        # With its floating IP: out from that address (1:1 NAT).
        page = fetch(info, f"http://{OUTSIDE}:{LISTEN_PORT}/", seconds=10)
        assert page == f"peer={info['fip']}", (project, page)
        address = ssh(info, "ip -4 -o addr show dev eth0").stdout
        assert f"inet {FIXED[project]}/24" in address
    assert len(gateways) == 2


def allow_http(host: NetnsHost, project: str) -> str:
    rule = as_user(host, project, "security", "group", "rule", "create", "--ingress",
                   "--protocol", "tcp", "--dst-port", "80", "sg")
    return str(rule["id"])


def test_floating_ip_reachable_from_the_other_project_only_as_its_rules_allow(
        host: NetnsHost, projects: dict[str, dict[str, Any]]) -> None:
    p1, p2 = projects["p1"], projects["p2"]
    # Neither group allows tcp/80 yet: each guest's httpd is shut to the other.
    assert fetch(p1, f"http://{p2['fip']}/") is None
    assert fetch(p2, f"http://{p1['fip']}/") is None
    rule = allow_http(host, "p2")
    page = wait_for(lambda: fetch(p1, f"http://{p2['fip']}/"), 15, interval=0.5,
                    what="p2's floating IP from p1 once p2 allows tcp/80")
    assert "hello from vm-p2" in page
    # p1's group still does not allow it: the other way stays shut.
    assert fetch(p2, f"http://{p1['fip']}/") is None
    as_user(host, "p2", "security", "group", "rule", "delete", rule, json_output=False)
    wait_for(lambda: fetch(p1, f"http://{p2['fip']}/", seconds=2) is None, 15, interval=0.5,
             what="p2's floating IP shut again once the rule is gone")


def test_no_way_to_the_other_projects_fixed_ip(
        host: NetnsHost, projects: dict[str, dict[str, Any]]) -> None:
    p1, p2 = projects["p1"], projects["p2"]
    # Both groups open tcp/80 to anyone, so only the isolation can stop what follows.
    for project in projects:
        allow_http(host, project)
    assert wait_for(lambda: fetch(p1, f"http://{p2['fip']}/"), 15, interval=0.5,
                    what="p2's floating IP from p1")
    assert wait_for(lambda: fetch(p2, f"http://{p1['fip']}/"), 15, interval=0.5,
                    what="p1's floating IP from p2")
    # 10.0.0.12 is p2's guest's address, but on p1's network nobody holds it (and the
    # other way round).
    assert fetch(p1, f"http://{FIXED['p2']}/") is None
    assert fetch(p2, f"http://{FIXED['p1']}/") is None
    unreachable = ssh(p1, f"ping -c 2 -W 1 {FIXED['p2']}")
    assert unreachable.returncode != 0, unreachable.stdout
    # Each reaches its own fixed address (the check itself works).
    assert "hello from vm-p1" in (fetch(p1, f"http://{FIXED['p1']}/") or "")
    assert "hello from vm-p2" in (fetch(p2, f"http://{FIXED['p2']}/") or "")
