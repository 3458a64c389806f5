"""Identity benchmarks: token issue, token validate and a list call, driven by ``wrk``.

Starts its own ``onestack up`` on a free loopback port with a temporary state dir, logs
in as admin, then runs one ``wrk`` load per scenario (concurrency 16 by default) and
prints requests/s, p50 and p99 as a markdown table for ``docs/performance.md``. The
server is stopped by its PID at the end, also on failure.

    .venv/bin/python bench/identity.py [--duration 10] [--concurrency 16]

The load generator runs on the same machine as the server and shares its cores; its CPU
time is measured and printed next to each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
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
from harness import ROOT, Server, cpu_model, cpu_seconds, free_port, wait_idle

PORTS = range(5200, 5300)


@dataclass
class Result:
    """One scenario's figures."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    wrk_cpu: float       # load generator CPU, in cores (1.0 = one core busy)
    server_cpu: float    # server CPU, in cores
    busy_before: float = 0.0  # fraction of the machine busy just before the run


def ensure_wrk() -> str:
    """Path of ``wrk``; installs the Debian package if it is missing."""
    path = shutil.which("wrk")
    if path is None:
        subprocess.run(["bash", str(ROOT / "scripts/install-system-deps.sh"), "wrk"],
                       check=True)
        path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed and could not be installed")
    return path


def children_cpu() -> float:
    """CPU time of this process's reaped children (``wrk`` runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def password_body(password: str) -> str:
    return json.dumps({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})


def lua_script(method: str, headers: dict[str, str], body: str | None) -> str:
    lines = [f'wrk.method = "{method}"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")  # JSON strings are Lua strings here
    return "\n".join(lines) + "\n"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, requests, errors) from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        errors += sum(int(g) for g in m.groups())
    return rps, p50, p99, total, errors


def run_wrk(wrk: str, server: Server, name: str, path: str, script: str, args: argparse.Namespace,
            workdir: Path) -> Result:
    """One wrk run against ``path``; the server's and wrk's CPU use are measured too."""
    lua = workdir / (re.sub(r"\W+", "_", name) + ".lua")
    lua.write_text(script)
    cmd = [wrk, f"-t{args.threads}", f"-c{args.concurrency}", f"-d{args.duration}s",
           "--timeout", "10s", "--latency", "-s", str(lua), f"{server.url}{path}"]
    server_before, wrk_before = cpu_seconds(server.proc.pid), children_cpu()
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - started
    server_cpu = (cpu_seconds(server.proc.pid) - server_before) / elapsed
    wrk_cpu = (children_cpu() - wrk_before) / elapsed
    if args.verbose:
        print(proc.stdout, file=sys.stderr)
    rps, p50, p99, total, errors = parse_wrk(proc.stdout)
    return Result(name, rps, p50, p99, total, errors, wrk_cpu, server_cpu)


def argon2_cost(rounds: int = 20) -> tuple[str, float, float]:
    """The default argon2id cost, the median time of one verify in ms (one thread), and
    how many verifies per second all CPUs manage together (the ceiling for logins)."""
    from onestack.common.config import IdentityConfig
    from onestack.services.identity.passwords import Hasher

    ic = IdentityConfig()
    hasher = Hasher(ic.argon2_time_cost, ic.argon2_memory_kib, ic.argon2_parallelism)
    stored = hasher.hash("benchmark-password")
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        hasher.verify(stored, "benchmark-password")
        times.append((time.perf_counter() - t0) * 1000)

    def verify_many() -> None:
        for _ in range(rounds):
            hasher.verify(stored, "benchmark-password")

    threads = [threading.Thread(target=verify_many) for _ in range(os.cpu_count() or 1)]
    t0 = time.perf_counter()
    for t in threads:  # argon2-cffi releases the GIL while hashing
        t.start()
    for t in threads:
        t.join()
    rate = rounds * len(threads) / (time.perf_counter() - t0)
    cost = (f"argon2id time_cost={ic.argon2_time_cost}, memory={ic.argon2_memory_kib} KiB "
            f"({ic.argon2_memory_kib / 1024:g} MiB), parallelism={ic.argon2_parallelism}")
    return cost, statistics.median(times), rate


def markdown(results: list[Result]) -> str:
    rows = ["| Scenario | Requests/s | p50 (ms) | p99 (ms) | Requests | Errors "
            "| Server CPU (cores) | wrk CPU (cores) | Machine busy before |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.name} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
             f"| {r.requests} | {r.errors} | {r.server_cpu:.2f} | {r.wrk_cpu:.2f} "
             f"| {r.busy_before:.0%} |"
             for r in results]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per scenario")
    parser.add_argument("--list-path", default="/v3/auth/projects",
                        help="the list call to measure")
    parser.add_argument("--only", default="issue,validate,list",
                        help="comma-separated scenarios to run (issue, validate, list)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each scenario, wait up to this long for the machine "
                        "to be less than 10%% busy")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    parser.add_argument("-v", "--verbose", action="store_true", help="print wrk's output")
    args = parser.parse_args()

    # SIGTERM/SIGHUP run the ``finally`` below too, so the server never outlives us.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    wrk = ensure_wrk()
    wait_idle(0.10, args.wait_idle)
    cost, hash_ms, hash_rate = argon2_cost()
    workdir = Path(tempfile.mkdtemp(prefix="onestack-bench-"))
    (workdir / "state").mkdir(mode=0o700)
    server = Server(workdir / "state", free_port(PORTS))
    results: list[Result] = []
    try:
        server.wait_ready()
        password = server.admin_password()
        login = httpx.post(f"{server.url}/v3/auth/tokens", content=password_body(password),
                           headers={"Content-Type": "application/json"}, timeout=30)
        login.raise_for_status()
        token = login.headers["X-Subject-Token"]
        auth = {"X-Auth-Token": token}
        scenarios = [
            ("issue", "token issue (password)", "/v3/auth/tokens",
             lua_script("POST", {"Content-Type": "application/json"}, password_body(password))),
            ("validate", "token validate", "/v3/auth/tokens",
             lua_script("GET", {**auth, "X-Subject-Token": token}, None)),
            ("list", f"list (GET {args.list_path})", args.list_path, lua_script("GET", auth, None)),
        ]
        wanted = set(args.only.split(","))
        for key, name, path, script in scenarios:
            if key not in wanted:
                continue
            busy = wait_idle(0.10, args.wait_idle)
            if busy > 0.10:
                print(f"warning: the machine was {busy:.0%} busy before {name!r}",
                      file=sys.stderr)
            if args.warmup:
                warm = argparse.Namespace(**{**vars(args), "duration": args.warmup,
                                             "verbose": False})
                run_wrk(wrk, server, name, path, script, warm, workdir)
            result = run_wrk(wrk, server, name, path, script, args, workdir)
            result.busy_before = busy
            results.append(result)
            print(f"{name}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                  f"p99 {result.p99_ms:.2f} ms, errors {result.errors}", file=sys.stderr)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"state kept in {workdir}", file=sys.stderr)

    print(f"\nCommand: .venv/bin/python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"Machine: {os.cpu_count()} CPUs, {cpu_model()}; Python "
          f"{platform.python_version()}; wrk -t{args.threads} -c{args.concurrency} "
          f"-d{args.duration}s on the same machine (it shares the cores with the server).")
    print(f"Password hashing: {cost}; one verify takes {hash_ms:.1f} ms (median of 20, "
          f"one thread); {os.cpu_count()} threads together verify {hash_rate:.0f}/s.\n")
    print(markdown(results))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
