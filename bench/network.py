"""Networking benchmark: port-create rate, and ``port list`` with 5000 ports.

Starts its own ``onestack up`` on a free loopback port in 5500-5599 with a temporary
state dir, logs in as admin, creates a network with a /18 IPv4 subnet, then:

- creates ports one at a time (``--sequential`` of them) and with ``--concurrency``
  client threads (``--concurrent`` of them): ports/s and latency percentiles; every
  address handed out is checked to be unique;
- fills the network up to ``--ports`` ports (5000 by default) and times
  ``GET /v2.0/ports`` (all of them), a filtered list (``?device_id=``), one page
  (``?limit=100``) and the stock ``openstack port list`` CLI: p50 and p90.

Prints the figures as markdown for ``docs/performance.md``. The server is stopped by
its PID at the end, also on failure.

    .venv/bin/python bench/network.py [--ports 5000] [--concurrency 16]

The clients run on the same machine as the server and share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness import ROOT, Server, cpu_model, cpu_seconds, free_port

PORTS = range(5500, 5600)


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    server_cpu: float  # cores busy during the run

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def login(server: Server) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": server.admin_password()}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    r = httpx.post(f"{server.url}/v3/auth/tokens", json=body, timeout=30)
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def net_project(server: Server, token: str) -> str:
    r = httpx.get(f"{server.url}/v3/auth/tokens", timeout=30,
                  headers={"X-Auth-Token": token, "X-Subject-Token": token})
    r.raise_for_status()
    return r.json()["token"]["project"]["id"]


def create_ports(server: Server, token: str, network_id: str, count: int, threads: int,
                 name: str, addresses: list[str]) -> Result:
    """``count`` port creations over ``threads`` client threads (one connection each)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]

    def work(n: int, index: int) -> None:
        tag = name.split(",")[0].replace(" ", "-")
        with httpx.Client(base_url=f"{server.url}/network/v2.0", timeout=60,
                          headers={"X-Auth-Token": token}) as client:
            for i in range(n):
                body = {"port": {"network_id": network_id, "device_id": f"{tag}-{index}-{i}",
                                 "device_owner": "compute:nova"}}
                t0 = time.perf_counter()
                r = client.post("/ports", json=body)
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    if r.status_code != 201:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    latencies.append(elapsed)
                    addresses.extend(ip["ip_address"] for ip in r.json()["port"]["fixed_ips"])

    cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
    pool = [threading.Thread(target=work, args=(n, i)) for i, n in enumerate(per_thread)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} port creations failed, e.g. {errors[0]}")
    return Result(name, count, seconds, latencies,
                  (cpu_seconds(server.proc.pid) - cpu0) / seconds)


def time_gets(server: Server, token: str, path: str, rounds: int, name: str
              ) -> tuple[Result, int, int]:
    """``rounds`` sequential GETs of ``path``: latencies, items and bytes of the last."""
    latencies = []
    size = items = 0
    with httpx.Client(base_url=f"{server.url}/network/v2.0", timeout=120,
                      headers={"X-Auth-Token": token}) as client:
        client.get(path).raise_for_status()  # warm up
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        for _ in range(rounds):
            start = time.perf_counter()
            r = client.get(path)
            latencies.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
            size, items = len(r.content), len(r.json()["ports"])
        seconds = time.perf_counter() - t0
    return (Result(name, rounds, seconds, latencies,
                   (cpu_seconds(server.proc.pid) - cpu0) / seconds), items, size)


def time_cli(server: Server, rounds: int, *args: str) -> Result:
    """The stock CLI, ``rounds`` times (each run pays its own start-up and login)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(server.state_dir / "clouds.yaml")
    argv = [str(ROOT / ".venv/bin/openstack"), "--os-cloud", "onestack", *args,
            "-f", "json"]
    latencies = []
    rows = 0
    cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
    for _ in range(rounds):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        latencies.append((time.perf_counter() - start) * 1000)
        rows = len(json.loads(proc.stdout))
    seconds = time.perf_counter() - t0
    result = Result(f"`openstack {' '.join(args)}` ({rows} rows)", rounds, seconds,
                    latencies, (cpu_seconds(server.proc.pid) - cpu0) / seconds)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=5000, help="ports for the list runs")
    parser.add_argument("--sequential", type=int, default=300,
                        help="ports created one at a time")
    parser.add_argument("--concurrent", type=int, default=1000,
                        help="ports created by the concurrent clients")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--rounds", type=int, default=20, help="GETs per list scenario")
    parser.add_argument("--cli-rounds", type=int, default=3,
                        help="runs of `openstack port list` (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix="onestack-bench-net-"))
    (workdir / "state").mkdir(mode=0o700)
    server = Server(workdir / "state", free_port(PORTS))
    creates: list[Result] = []
    lists: list[tuple[Result, int, int]] = []
    cli: Result | None = None
    try:
        server.wait_ready()
        token = login(server)
        api = httpx.Client(base_url=f"{server.url}/network/v2.0", timeout=60,
                           headers={"X-Auth-Token": token})
        project_id = net_project(server, token)
        # Neutron's default port quota (500) is below what the benchmark creates
        api.put(f"/quotas/{project_id}", json={"quota": {"port": -1}}).raise_for_status()
        net = api.post("/networks", json={"network": {"name": "bench"}}).json()["network"]
        r = api.post("/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.128.0.0/18"}})
        r.raise_for_status()
        addresses: list[str] = []
        creates.append(create_ports(server, token, net["id"], args.sequential, 1,
                                    "port create, 1 client", addresses))
        creates.append(create_ports(server, token, net["id"], args.concurrent,
                                    args.concurrency,
                                    f"port create, {args.concurrency} clients", addresses))
        remaining = args.ports - len(addresses)
        if remaining > 0:
            print(f"filling up to {args.ports} ports ...", file=sys.stderr)
            create_ports(server, token, net["id"], remaining, args.concurrency, "fill",
                         addresses)
        if len(set(addresses)) != len(addresses):
            raise SystemExit("duplicate addresses were handed out")
        total = len(addresses)
        lists.append(time_gets(server, token, "/ports", args.rounds,
                               f"`GET /v2.0/ports` ({total} ports)"))
        lists.append(time_gets(server, token, "/ports?device_id=fill-0-7", args.rounds * 5,
                               "`GET /v2.0/ports?device_id=...` (1 of them)"))
        lists.append(time_gets(server, token, "/ports?limit=100", args.rounds * 5,
                               "`GET /v2.0/ports?limit=100` (first page)"))
        if args.cli_rounds:
            cli = time_cli(server, args.cli_rounds, "port", "list")
        api.close()
    finally:
        server.stop()
        if args.keep:
            print(f"state kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nCommand: .venv/bin/python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"Machine: {os.cpu_count()} CPUs, {cpu_model()}; Python "
          f"{platform.python_version()}; SQLite (WAL); clients on the same machine.\n")
    print("| Port creation | Ports | Ports/s | p50 (ms) | p90 (ms) | p99 (ms) "
          "| Server CPU (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in creates:
        print(f"| {r.name} | {r.count} | {r.count / r.seconds:,.0f} | {r.pct(0.5):.1f} "
              f"| {r.pct(0.9):.1f} | {r.pct(0.99):.1f} | {r.server_cpu:.2f} |")
    print("\n| List | Items | Body (KiB) | p50 (ms) | p90 (ms) | Server CPU (cores) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r, items, size in lists:
        print(f"| {r.name} | {items} | {size / 1024:,.0f} | {r.pct(0.5):.1f} "
              f"| {r.pct(0.9):.1f} | {r.server_cpu:.2f} |")
    if cli is not None:
        print(f"| {cli.name}, {cli.count} runs | | | {statistics.median(cli.latencies_ms):.0f} "
              f"| {cli.pct(0.9):.0f} | {cli.server_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
