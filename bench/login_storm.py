"""Login storm: the server's memory (RSS) under many concurrent password logins.

Every password login runs one argon2id verification, and each one needs its own block
of ``argon2_memory_kib`` (19 MiB by default). This starts its own ``onestack up`` (fake
host drivers, temporary state dir, a free loopback port, the default argon2 cost), then:

- **burst**: 200 password logins sent at once (200 connections);
- **sustained**: 16 clients logging in back to back for 15 s;

and reads the server's RSS from /proc before, every 20 ms during, and a few seconds
after each scenario. It prints a markdown table for ``docs/performance.md``. The server
is stopped by its PID at the end, also on failure.

    .venv/bin/python bench/login_storm.py [--burst 200] [--clients 16] [--duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness import Server, cpu_model, free_port

PORTS = range(5300, 5400)
MIB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's RSS in a thread until stopped; keeps the highest reading."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))


@dataclass
class Result:
    name: str
    logins: int
    errors: int
    seconds: float
    rss_before: int
    rss_peak: int
    rss_after: int
    p50_ms: float
    max_ms: float


def login_body(auth: dict[str, str]) -> str:
    return json.dumps({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": auth["user_domain_name"]},
            "password": auth["password"]}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth["project_domain_name"]}}}}})


async def _login(client: httpx.AsyncClient, url: str, body: str,
                 times: list[float]) -> bool:
    t0 = time.perf_counter()
    try:
        r = await client.post(url, content=body,
                              headers={"Content-Type": "application/json"})
        ok = r.status_code == 201
    except httpx.HTTPError:
        ok = False
    times.append((time.perf_counter() - t0) * 1000)
    return ok


async def burst(url: str, body: str, count: int) -> tuple[int, int, list[float]]:
    """``count`` logins sent at once, each on its own connection."""
    times: list[float] = []
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        oks = await asyncio.gather(*(_login(client, url, body, times)
                                     for _ in range(count)))
    return sum(oks), count - sum(oks), times


async def sustained(url: str, body: str, clients: int, duration: float,
                    ) -> tuple[int, int, list[float]]:
    """``clients`` loops logging in back to back for ``duration`` seconds."""
    times: list[float] = []
    deadline = time.monotonic() + duration
    counts = [0, 0]

    async def loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            counts[0 if await _login(client, url, body, times) else 1] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        await asyncio.gather(*(loop(client) for _ in range(clients)))
    return counts[0], counts[1], times


def run(server: Server, name: str, scenario, settle: float) -> Result:  # type: ignore[no-untyped-def]
    pid = server.proc.pid
    before = rss(pid)
    t0 = time.monotonic()
    with PeakRss(pid) as peak:
        ok, errors, times = asyncio.run(scenario)
    seconds = time.monotonic() - t0
    time.sleep(settle)
    after = rss(pid)
    times.sort()
    return Result(name, ok, errors, seconds, before, peak.peak, after,
                  times[len(times) // 2] if times else 0.0, times[-1] if times else 0.0)


def markdown(results: list[Result]) -> str:
    rows = ["| Scenario | Logins | Errors | Seconds | RSS before (MiB) | RSS peak (MiB) "
            "| RSS after (MiB) | p50 (ms) | max (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.name} | {r.logins} | {r.errors} | {r.seconds:.1f} "
             f"| {r.rss_before / MIB:.0f} | {r.rss_peak / MIB:.0f} | {r.rss_after / MIB:.0f} "
             f"| {r.p50_ms:.0f} | {r.max_ms:.0f} |" for r in results]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=200, help="logins sent at once")
    parser.add_argument("--clients", type=int, default=16, help="sustained: clients")
    parser.add_argument("--duration", type=float, default=15, help="sustained: seconds")
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds to wait after a scenario before reading RSS")
    parser.add_argument("--only", default="burst,sustained",
                        help="comma-separated scenarios to run (burst, sustained)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    # The API alone: no bridges, guests or dnsmasq, so the server runs without root.
    for kind in ("HYPERVISOR", "STORAGE", "NETWORK"):
        os.environ[f"ONESTACK_HOST_{kind}_DRIVER"] = "fake"
    workdir = Path(tempfile.mkdtemp(prefix="onestack-bench-"))
    (workdir / "state").mkdir(mode=0o700)
    server = Server(workdir / "state", free_port(PORTS))
    try:
        server.wait_ready()
        url = f"{server.url}/v3/auth/tokens"
        body = login_body(server.admin_auth())
        # one login first, so "before" is a server that has served a request
        asyncio.run(burst(url, body, 1))
        time.sleep(1)
        only = args.only.split(",")
        results = []
        if "burst" in only:
            results.append(run(server, f"burst: {args.burst} at once",
                               burst(url, body, args.burst), args.settle))
        if "sustained" in only:
            results.append(run(
                server, f"sustained: {args.clients} clients for {args.duration:g} s",
                sustained(url, body, args.clients, args.duration), args.settle))
    finally:
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; server RSS from /proc/<pid>/status")
    print(markdown(results))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
