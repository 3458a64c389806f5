"""Floating IP associate -> first packet through (and disassociate -> dead), from the
Networking API to a TCP connection from the outside.

    heavy .venv/bin/python bench/network_fip.py [--rounds 10] [--reassociate]

``onestack up`` with the real drivers (QEMU under TCG, Linux bridges, dnsmasq, the
Linux router and firewall drivers) runs in a namespace of its own (tests/host/harness.py:
random prefix, everything removed at the end, also on failure); that namespace holds the
external gateway address 203.0.113.1 on ``public``'s bridge and plays the outside, as in
tests/host/test_router_datapath.py. One guest (``vm1``) of the test image on a tenant
network behind a router whose gateway is on ``public``; its user data starts busybox
``httpd`` on port 80 and its security group allows tcp/80 in. A floating IP is made
once; each round:

- **associate**: ``PUT /v2.0/floatingips/<id>`` with the guest's port, timed from just
  before the request; meanwhile a fresh non-blocking TCP connect to <floating IP>:80 is
  started every 10 ms (each a new source port, so a new conntrack entry; each given up
  after 0.5 s) until one completes: the figure is the time of that completion. Beside
  it: the API's answer alone, and when the agent's log says the router is set up (the
  log file is followed as it grows);
- **disassociate**: ``PUT`` with ``port_id: null``; the figure is the start of the
  first connect that fails (timeout or refusal) after which none succeeds.

With ``--reassociate`` a second guest (``vm2``) boots too, and each round also moves the
address from vm1 to vm2 in one ``PUT``: the figure is the first HTTP answer from vm2
(``hello from vm2``) through the address, polled every 10 ms.

Needs root. Prints markdown for docs/performance.md.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
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

import httpx  # noqa: E402
import yaml  # noqa: E402
from harness import cpu_model, machine_busy  # noqa: E402

from onestack.services.image.testimage import build_test_image  # noqa: E402
from tests.host.harness import NetnsHost, netns_host, openstack, wait_for  # noqa: E402

USER_DATA = """#!/bin/sh
mkdir -p /www && echo "hello from $(hostname)" > /www/index.html
httpd -p 80 -h /www
"""
STEP = 0.010  # a new connect attempt every 10 ms
ATTEMPT_TIMEOUT = 0.5
GIVE_UP = 30.0


class Api:
    """The Networking API with the admin's token (httpx, as any client)."""

    def __init__(self, host: NetnsHost) -> None:
        self.client = httpx.Client(base_url=host.url, timeout=60)
        auth = yaml.safe_load(host.clouds_yaml.read_text())["clouds"]["onestack"]["auth"]
        r = self.client.post("/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": auth["password"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        r.raise_for_status()
        self.client.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]

    def associate(self, fip_id: str, port_id: str | None) -> None:
        r = self.client.put(f"/network/v2.0/floatingips/{fip_id}",
                            json={"floatingip": {"port_id": port_id}})
        if r.status_code != 200:
            raise RuntimeError(f"PUT floatingip: {r.status_code} {r.text}")


class LogFollower:
    """New lines of the server's log since the last look (cheap: reads only the tail)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def skip(self) -> None:
        self.offset = self.path.stat().st_size

    def new_text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode(errors="replace")


def probe(address: str, port: int, until_up: bool, t0: float,
          watch: tuple[LogFollower, str] | None = None) -> tuple[float, float | None]:
    """Connect attempts every STEP from ``t0`` on. ``until_up``: the time (from t0) the
    first one completed. Otherwise: the start of the first failing attempt after which
    none succeeded, once 1 s of attempts have all failed. Also the time the log line
    ``watch[1]`` appeared (None: not seen)."""
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, float] = {}
    results: list[tuple[float, bool]] = []
    seen: float | None = None
    next_start = time.perf_counter()
    try:
        while True:
            now = time.perf_counter()
            if now - t0 > GIVE_UP:
                raise RuntimeError(f"{address}:{port} never {'up' if until_up else 'dead'}")
            if watch is not None and seen is None and watch[1] in watch[0].new_text():
                seen = now - t0
            if now >= next_start:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                code = s.connect_ex((address, port))
                if code in (0, errno.EINPROGRESS):
                    pending[s] = now
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    s.close()
                    results.append((now, False))
                next_start = now + STEP
            for key, _ in sel.select(timeout=max(0.0, next_start - time.perf_counter())):
                s = key.fileobj  # type: ignore[assignment]
                assert isinstance(s, socket.socket)
                ok = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                started = pending.pop(s)
                sel.unregister(s)
                s.close()
                results.append((started, ok))
                if ok and until_up:
                    return time.perf_counter() - t0, seen
            now = time.perf_counter()
            for s, started in list(pending.items()):
                if now - started > ATTEMPT_TIMEOUT:
                    pending.pop(s)
                    sel.unregister(s)
                    s.close()
                    results.append((started, False))
            if not until_up and results:
                last_ok = max((st for st, ok in results if ok), default=float("-inf"))
                failed = sorted(st for st, ok in results if not ok and st > last_ok)
                if failed and now - failed[0] > 1.0 + ATTEMPT_TIMEOUT:
                    return failed[0] - t0, seen
    finally:
        for s in pending:
            s.close()
        sel.close()


def http_get(address: str) -> str | None:
    try:
        with socket.create_connection((address, 80), timeout=0.3) as s:
            s.settimeout(1.0)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.decode(errors="replace")
    except OSError:
        return None


def setup(host: NetnsHost, tmp: Path, guests: list[str]) -> dict[str, Any]:
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(build_test_image()), "--public", "testimg")
    openstack(host, "security", "group", "create", "web")
    openstack(host, "security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
              "--dst-port", "80", "web")
    openstack(host, "network", "create", "net1")
    subnet = openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
                       "10.60.0.0/24", "sub1")
    router = openstack(host, "router", "create", "r1")
    openstack(host, "router", "set", "--external-gateway", "public", "r1", json_output=False)
    openstack(host, "router", "add", "subnet", "r1", subnet["id"], json_output=False)
    ports = {}
    for name in guests:
        port = openstack(host, "port", "create", "--network", "net1", "--security-group",
                         "web", f"port-{name}")
        openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
                  "--port", port["id"], "--user-data", str(user_data), name)
        ports[name] = port["id"]
    for name in guests:
        wait_for(lambda n=name: openstack(host, "server", "show", n)["status"] == "ACTIVE",
                 300, interval=2, what=f"{name} ACTIVE")
    fip = openstack(host, "floating", "ip", "create", "public")
    return {"router": router["id"], "ports": ports, "fip_id": fip["id"],
            "fip": fip["floating_ip_address"]}


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (f"{statistics.median(ordered):.3f} | {p90:.3f} | {ordered[-1]:.3f} | "
            f"{ordered[0]:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reassociate", action="store_true",
                        help="boot a second guest and move the address to it too")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces, bridges, taps)")
    build_test_image()
    busy = machine_busy()
    guests = ["vm1", "vm2"] if args.reassociate else ["vm1"]
    rows: dict[str, list[float]] = {k: [] for k in (
        "api_assoc", "agent_assoc", "up", "api_dis", "agent_dis", "dead", "moved")}
    with tempfile.TemporaryDirectory(prefix="onestack-bench-fip-") as scratch, \
            netns_host(Path(scratch) / "host", ONESTACK_HOST_ACCEL="tcg") as host:
        started = time.monotonic()
        cloud = setup(host, Path(scratch), guests)
        api = Api(host)
        fip, fip_id, ports = cloud["fip"], cloud["fip_id"], cloud["ports"]
        set_up = f"router {cloud['router']}: set up"
        log = LogFollower(host.log_path)
        # Warm-up: the guest booted and serves (httpd up), then back to unassociated.
        api.associate(fip_id, ports["vm1"])
        wait_for(lambda: "hello from vm1" in (http_get(fip) or ""), 400, interval=1,
                 what=f"http://{fip}/ from vm1")
        if args.reassociate:
            api.associate(fip_id, ports["vm2"])
            wait_for(lambda: "hello from vm2" in (http_get(fip) or ""), 400, interval=1,
                     what=f"http://{fip}/ from vm2")
        api.associate(fip_id, None)
        probe(fip, 80, False, time.perf_counter())
        print(f"set up in {time.monotonic() - started:.0f} s", file=sys.stderr)
        for round_ in range(args.rounds):
            time.sleep(1.0)
            log.skip()
            t0 = time.perf_counter()
            api.associate(fip_id, ports["vm1"])
            rows["api_assoc"].append(time.perf_counter() - t0)
            up, seen = probe(fip, 80, True, t0, (log, set_up))
            rows["up"].append(up)
            if seen is None:  # the line came after the first connect
                seen = wait_for(lambda: set_up in log.new_text(), 10, interval=0.01,
                                what="router set up") and time.perf_counter() - t0
            rows["agent_assoc"].append(seen)
            if args.reassociate:
                time.sleep(1.0)
                t0 = time.perf_counter()
                api.associate(fip_id, ports["vm2"])
                wait_for(lambda: "hello from vm2" in (http_get(fip) or ""), GIVE_UP,
                         interval=STEP, what="vm2 through the address")
                rows["moved"].append(time.perf_counter() - t0)
            time.sleep(1.0)
            log.skip()
            t0 = time.perf_counter()
            api.associate(fip_id, None)
            rows["api_dis"].append(time.perf_counter() - t0)
            dead, seen = probe(fip, 80, False, t0, (log, set_up))
            rows["dead"].append(dead)
            rows["agent_dis"].append(seen if seen is not None else float("nan"))
            print(f"round {round_ + 1}: up {up:.3f} s, dead {dead:.3f} s"
                  + (f", moved {rows['moved'][-1]:.3f} s" if args.reassociate else ""),
                  file=sys.stderr)
        passes = subprocess.run(["grep", "-c", set_up, str(host.log_path)],
                                capture_output=True, text=True).stdout.strip()
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores; machine {busy:.0%} busy at start; "
          f"guest under TCG; {args.rounds} rounds ({passes} router set-ups logged)\n")
    print("| from the API request (s) | p50 | p90 | max | min |")
    print("|---|---|---|---|---|")
    print(f"| associate: API answer | {summary(rows['api_assoc'])} |")
    print(f"| associate: agent logs the router set up | {summary(rows['agent_assoc'])} |")
    print(f"| **associate: first TCP connect to <fip>:80 completes** | {summary(rows['up'])} |")
    if rows["moved"]:
        print(f"| re-associate to vm2: first HTTP answer from vm2 | {summary(rows['moved'])} |")
    print(f"| disassociate: API answer | {summary(rows['api_dis'])} |")
    agent_dis = [v for v in rows["agent_dis"] if v == v]
    if agent_dis:
        print(f"| disassociate: agent logs the router set up | {summary(agent_dis)} |")
    print(f"| **disassociate: first connect that fails** | {summary(rows['dead'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
