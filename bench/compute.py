"""Compute benchmark: real guests (QEMU under TCG here) on a host in a namespace.

    sudo .venv/bin/python bench/compute.py [--rounds 10] [--concurrent 10] [--image FILE]

Measures, against ``onestack up`` with the real drivers (tests/host/harness.py):

- create -> ACTIVE: from ``POST /servers`` to the API saying ACTIVE (aim p50 <= 0.5 s);
- create -> metadata: until the guest's console says it fetched its metadata
  (aim <= 6 s under TCG), with the guest's uptime at its init, DHCP and metadata steps
  (the test image stamps each console marker with it);
- stop -> SHUTOFF of a booted guest, with the default 60 s ``shutdown_timeout``: the
  test image powers off on the ACPI power button (aim: about a second);
- N concurrent boots vs N bare ``qemu-system-x86_64`` runs of the same image with
  QEMU's user network (its ``guestfwd`` sends the metadata requests to a stub here, so
  both do the same work): until every guest printed its addresses (aim <= 1.2x);
- the server's RSS when idle (aim <= 150 MB).

``--transport http`` measures create -> ACTIVE over the HTTP host transport instead: the
server without its own agent (``ONESTACK_HOST_AGENT=false``) and ``onestack agent`` in a
process of its own, with a host credential; ``--transport both`` measures create ->
ACTIVE both ways, on fresh hosts in the order in-process, HTTP, HTTP, in-process (half
the rounds each), and reports both p50s (aim: HTTP within 1.5x of in-process).

Clone times for 1 GiB and 10 GiB bases are in bench/storage.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from harness import cpu_model, machine_busy  # noqa: E402

from onestack.services.image.testimage import MARKER, build_test_image  # noqa: E402
from tests.host.harness import HOST_ENV, ONESTACK, NetnsHost  # noqa: E402

RELAY = ROOT / "tests" / "host" / "guestfwd_relay.py"
MARK_METADATA = f"{MARKER} metadata ok"
MARK_ADDRESSES = f"{MARKER} addresses"
MARK_DONE = f"{MARKER} done"
MARK_POWER_BUTTON = f"{MARKER} acpi power button"
#: ``[<guest uptime>] ONESTACK-TEST: <step> ...`` on the test image's console.
STEP = re.compile(r"\[([0-9.]+)\] " + re.escape(MARKER) + r" (\S+)")
GUEST_STEPS = ("init", "dhcp", "metadata")


class Cloud:
    def __init__(self, host: NetnsHost) -> None:
        self.host = host
        self.client = httpx.Client(base_url=host.url, timeout=60)
        password = json.loads(json.dumps(__import__("yaml").safe_load(
            host.clouds_yaml.read_text())))["clouds"]["onestack"]["auth"]["password"]
        r = self.client.post("/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        r.raise_for_status()
        self.client.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
        self.client.headers["OpenStack-API-Version"] = "compute 2.79"

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.client.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else None

    def setup(self, image_file: Path) -> tuple[str, str]:
        image = self.call("POST", "/image/v2/images", json={
            "name": "bench", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"})
        with image_file.open("rb") as f:
            self.call("PUT", f"/image/v2/images/{image['id']}/file", content=f.read(),
                      headers={"Content-Type": "application/octet-stream"})
        net = self.call("POST", "/network/v2.0/networks", json={"network": {"name": "bench"}})
        net_id = net["network"]["id"]
        self.call("POST", "/network/v2.0/subnets", json={"subnet": {
            "network_id": net_id, "ip_version": 4, "cidr": "10.30.0.0/22"}})
        self.call("POST", "/network/v2.0/subnets", json={"subnet": {
            "network_id": net_id, "ip_version": 6, "cidr": "fd00:30::/64",
            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}})
        return image["id"], net_id

    def create(self, name: str, image: str, net: str) -> str:
        body = {"server": {"name": name, "imageRef": image, "flavorRef": "42",
                           "networks": [{"uuid": net}]}}
        return self.call("POST", "/compute/v2.1/servers", json=body)["server"]["id"]

    def status(self, server_id: str) -> str:
        return self.call("GET", f"/compute/v2.1/servers/{server_id}")["server"]["status"]

    def console(self, server_id: str) -> str:
        r = self.client.post(f"/compute/v2.1/servers/{server_id}/action",
                             json={"os-getConsoleOutput": {}})
        return r.json().get("output", "") if r.status_code == 200 else ""

    def delete(self, server_id: str) -> None:
        self.client.delete(f"/compute/v2.1/servers/{server_id}")

    def wait_gone(self, ids: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for sid in ids:
            while time.monotonic() < deadline:
                if self.client.get(f"/compute/v2.1/servers/{sid}").status_code == 404:
                    break
                time.sleep(0.2)


def wait(predicate: Any, timeout: float, interval: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_active(cloud: Cloud, image: str, net: str, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        t0 = time.monotonic()
        sid = cloud.create(f"lat-{i}", image, net)
        while cloud.status(sid) != "ACTIVE":
            if time.monotonic() - t0 > 60:
                raise TimeoutError(f"server {sid} not ACTIVE in 60 s")
            time.sleep(0.01)
        times.append(time.monotonic() - t0)
        cloud.delete(sid)
        cloud.wait_gone([sid])
    return times


def guest_uptimes(console: str) -> dict[str, float]:
    """The guest's uptime at the first marker of each step."""
    found: dict[str, float] = {}
    for uptime, step in STEP.findall(console):
        found.setdefault(step, float(uptime))
    return found


def bench_metadata(cloud: Cloud, image: str, net: str, rounds: int,
                   ) -> tuple[list[float], dict[str, list[float]]]:
    """Times to ``metadata ok``, and the guest's uptime at each step of each boot."""
    times = []
    steps: dict[str, list[float]] = {step: [] for step in GUEST_STEPS}
    for i in range(rounds):
        t0 = time.monotonic()
        sid = cloud.create(f"md-{i}", image, net)
        while MARK_METADATA not in (console := cloud.console(sid)):
            if time.monotonic() - t0 > 120:
                raise TimeoutError(f"server {sid}: no metadata in 120 s")
            time.sleep(0.1)
        times.append(time.monotonic() - t0)
        uptimes = guest_uptimes(console)
        for step in GUEST_STEPS:
            if step in uptimes:
                steps[step].append(uptimes[step])
        cloud.delete(sid)
        cloud.wait_gone([sid])
    return times, steps


def bench_stop(cloud: Cloud, image: str, net: str, rounds: int) -> list[float]:
    """``os-stop`` of a guest that finished booting, until the API says SHUTOFF."""
    times = []
    for i in range(rounds):
        sid = cloud.create(f"stop-{i}", image, net)
        wait(lambda sid=sid: MARK_DONE in cloud.console(sid), 120, 0.2)
        t0 = time.monotonic()
        cloud.call("POST", f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
        wait(lambda sid=sid: cloud.status(sid) == "SHUTOFF", 120, 0.02)
        times.append(time.monotonic() - t0)
        if MARK_POWER_BUTTON not in cloud.console(sid):
            print(f"server {sid}: stopped without the guest's power button marker")
        cloud.delete(sid)
        cloud.wait_gone([sid])
    return times


def bench_concurrent(cloud: Cloud, image: str, net: str, n: int) -> float:
    t0 = time.monotonic()
    ids = [cloud.create(f"par-{i}", image, net) for i in range(n)]
    pending = set(ids)
    while pending:
        if time.monotonic() - t0 > 600:
            raise TimeoutError("concurrent boots did not finish in 600 s")
        for sid in list(pending):
            if MARK_ADDRESSES in cloud.console(sid):
                pending.discard(sid)
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    for sid in ids:
        cloud.delete(sid)
    cloud.wait_gone(ids, timeout=300)
    return elapsed


class MetadataStub(BaseHTTPRequestHandler):
    """``meta_data.json`` for the bare QEMU runs; everything else is a 404."""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if not self.path.endswith("/meta_data.json"):
            self.send_error(404)
            return
        body = b'{"uuid": "00000000-0000-0000-0000-000000000000", "name": "bare"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def bench_bare_qemu(image_file: Path, n: int) -> float:
    """N plain QEMU runs (TCG, 128 MiB, user network) of overlays on the same image."""
    stub = ThreadingHTTPServer(("127.0.0.1", 0), MetadataStub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    relay = f"{sys.executable} {RELAY} {stub.server_address[1]}"
    netdev = ("user,id=n0,net=169.254.169.0/24,ipv6-prefix=fd00:5::,ipv6-prefixlen=64,"
              f"guestfwd=tcp:169.254.169.254:80-cmd:{relay}")
    with tempfile.TemporaryDirectory() as tmp:
        procs, logs = [], []
        t0 = time.monotonic()
        for i in range(n):
            overlay = Path(tmp) / f"d{i}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(image_file), str(overlay)], check=True)
            log = Path(tmp) / f"c{i}.log"
            logs.append(log)
            procs.append(subprocess.Popen(
                ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "128",
                 "-nodefaults", "-no-user-config", "-display", "none",
                 "-drive", f"file={overlay},if=virtio,format=qcow2",
                 "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
                 "-chardev", f"file,id=s0,path={log}", "-serial", "chardev:s0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        try:
            pending = set(range(n))
            while pending:
                if time.monotonic() - t0 > 600:
                    raise TimeoutError("bare QEMU boots did not finish in 600 s")
                for i in list(pending):
                    if logs[i].exists() and MARK_ADDRESSES in logs[i].read_text(
                            errors="replace"):
                        pending.discard(i)
                time.sleep(0.2)
            return time.monotonic() - t0
        finally:
            for p in procs:
                p.kill()
                p.wait()
            stub.shutdown()
            stub.server_close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


REMOTE_HOST = "bench-remote"
AGENT_LISTEN = "127.0.0.1:5051"


class RemoteAgent:
    """``onestack agent`` for ``host``'s server, in the same namespace, with a
    credential made by ``onestack admin host-credential create`` and a state directory
    under the server's (so ``NetnsHost.cleanup`` finds its guests' pidfiles)."""

    def __init__(self, host: NetnsHost) -> None:
        self.host = host
        self.state_dir = host.state_dir / "remote-agent"
        self.log_path = host.base / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(HOST_ENV)
        env["ONESTACK_HOST_NAME_PREFIX"] = self.host.prefix
        env.update(self.host.env)
        credential = self.host.base / "agent.cred"
        subprocess.run([ONESTACK, "admin", "host-credential", "create", REMOTE_HOST,
                        "--output", str(credential), "--state-dir",
                        str(self.host.state_dir)], env=env, check=True,
                       capture_output=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [ONESTACK, "agent", "--server", self.host.url, "--host-name", REMOTE_HOST,
                 "--credential", str(credential), "--state-dir", str(self.state_dir),
                 "--listen", AGENT_LISTEN], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_registered(self, cloud: Cloud, timeout: float = 60) -> None:
        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"onestack agent exited: {self.log_path.read_text()}")
            services = cloud.call("GET", "/compute/v2.1/os-services?binary=nova-compute")
            return any(s["host"] == REMOTE_HOST and s["state"] == "up"
                       for s in services["services"])
        wait(up, timeout, 0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def bench_transport(image_file: Path, transport: str, rounds: int) -> list[float]:
    """create -> ACTIVE times on a fresh host, its agent in the server (``inprocess``)
    or in a process of its own over HTTP (``http``)."""
    with tempfile.TemporaryDirectory(prefix="onestack-bench-") as tmp:
        env = {"ONESTACK_HOST_ACCEL": "tcg", "ONESTACK_SERVER_LOG_LEVEL": "warning"}
        if transport == "http":
            env["ONESTACK_HOST_AGENT"] = "false"
        host = NetnsHost(Path(tmp), env=env)
        agent = RemoteAgent(host) if transport == "http" else None
        try:
            host.create()
            host.start()
            cloud = Cloud(host)
            if agent is not None:
                agent.start()
                agent.wait_registered(cloud)
            image, net = cloud.setup(image_file)
            time.sleep(3)
            bench_active(cloud, image, net, 1)   # warm-up: the image's base disk
            return bench_active(cloud, image, net, rounds)
        finally:
            if agent is not None:
                agent.stop()
            host.cleanup()


def main_transports(image_file: Path, transport: str, rounds: int) -> int:
    results: dict[str, Any] = {"cpu": cpu_model(), "busy_before": machine_busy()}
    kinds = ("inprocess", "http") if transport == "both" else (transport,)
    # both: A B B A, half the rounds each time, so a machine that gets busier or quieter
    # during the run weighs on both the same
    phases = ("inprocess", "http", "http", "inprocess") if transport == "both" \
        else (transport,)
    per_phase = -(-rounds // 2) if transport == "both" else rounds
    measured: dict[str, list[float]] = {kind: [] for kind in kinds}
    for kind in phases:
        measured[kind] += bench_transport(image_file, kind, per_phase)
    for kind in kinds:
        times = measured[kind]
        results[f"create_to_active_{kind}_s"] = {
            "p50": round(statistics.median(times), 3), "p90": round(pct(times, 0.9), 3),
            "n": len(times)}
        print(f"create -> ACTIVE ({kind:9}) p50 "
              f"{results[f'create_to_active_{kind}_s']['p50']} s, "
              f"p90 {results[f'create_to_active_{kind}_s']['p90']} s")
    if len(kinds) == 2:
        results["http_over_inprocess"] = round(
            results["create_to_active_http_s"]["p50"]
            / results["create_to_active_inprocess_s"]["p50"], 2)
        print(f"HTTP / in-process      x{results['http_over_inprocess']} (aim <= 1.5)")
    print(json.dumps(results))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--metadata-rounds", type=int, default=3)
    parser.add_argument("--stop-rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--image", type=Path,
                        help="boot this qcow2 instead of the test image (to compare builds)")
    parser.add_argument("--transport", choices=("inprocess", "http", "both"),
                        help="only create -> ACTIVE, with the agent in the server, over "
                        "HTTP from a process of its own, or both")
    args = parser.parse_args()
    image_file = args.image or build_test_image()
    if args.transport:
        return main_transports(image_file, args.transport, args.rounds)
    results: dict[str, Any] = {"cpu": cpu_model(), "busy_before": machine_busy()}
    with tempfile.TemporaryDirectory(prefix="onestack-bench-") as tmp:
        host = NetnsHost(Path(tmp), env={"ONESTACK_HOST_ACCEL": "tcg",
                                         "ONESTACK_SERVER_LOG_LEVEL": "warning",
                                         # the default, not the host tests' short one
                                         "ONESTACK_COMPUTE_SHUTDOWN_TIMEOUT": "60"})
        try:
            host.create()
            host.start()
            cloud = Cloud(host)
            image, net = cloud.setup(image_file)
            time.sleep(3)
            assert host.proc is not None
            results["idle_rss_mib"] = round(rss_mib(host.proc.pid), 1)
            active = bench_active(cloud, image, net, args.rounds)
            results["create_to_active_s"] = {"p50": round(statistics.median(active), 3),
                                             "p90": round(pct(active, 0.9), 3),
                                             "n": len(active)}
            md, steps = bench_metadata(cloud, image, net, args.metadata_rounds)
            results["create_to_metadata_s"] = {"p50": round(statistics.median(md), 2),
                                               "max": round(max(md), 2), "n": len(md)}
            results["guest_uptime_at_s"] = {step: round(statistics.median(v), 2)
                                            for step, v in steps.items() if v}
            if args.stop_rounds:
                stops = bench_stop(cloud, image, net, args.stop_rounds)
                results["stop_to_shutoff_s"] = {"p50": round(statistics.median(stops), 2),
                                                "max": round(max(stops), 2), "n": len(stops)}
            results["concurrent_onestack_s"] = round(
                bench_concurrent(cloud, image, net, args.concurrent), 1)
            results["idle_rss_after_mib"] = round(rss_mib(host.proc.pid), 1)
        finally:
            host.cleanup()
    with ThreadPoolExecutor(1) as pool:
        results["concurrent_bare_qemu_s"] = round(
            pool.submit(bench_bare_qemu, image_file, args.concurrent).result(), 1)
    results["concurrent_ratio"] = round(
        results["concurrent_onestack_s"] / results["concurrent_bare_qemu_s"], 2)
    print(f"create -> ACTIVE     p50 {results['create_to_active_s']['p50']} s, "
          f"p90 {results['create_to_active_s']['p90']} s")
    print(f"create -> metadata   p50 {results['create_to_metadata_s']['p50']} s")
    if results["guest_uptime_at_s"]:
        print("guest uptime at       " + ", ".join(
            f"{step} {t} s" for step, t in results["guest_uptime_at_s"].items()) + " (p50)")
    if "stop_to_shutoff_s" in results:
        print(f"stop -> SHUTOFF       p50 {results['stop_to_shutoff_s']['p50']} s, "
              f"max {results['stop_to_shutoff_s']['max']} s")
    print(f"{args.concurrent} concurrent boots  onestack {results['concurrent_onestack_s']} s, "
          f"bare QEMU {results['concurrent_bare_qemu_s']} s "
          f"(x{results['concurrent_ratio']})")
    print(f"server RSS           idle {results['idle_rss_mib']} MiB, "
          f"after the runs {results['idle_rss_after_mib']} MiB")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
