"""Dashboard benchmark: the instance list's time to first byte with 500 servers, and the
server's memory while a 1 GiB image is uploaded through the dashboard.

    .venv/bin/python bench/dashboard.py [--servers 500] [--rounds 20] [--size-mib 1024]

Starts its own ``onestack up`` (port 5700-5799, a temporary state dir, the fake
hypervisor, storage and network drivers: the figures are the control plane's, no guest
runs), then:

- as admin, lifts the admin project's quotas, makes a network and subnet, and creates
  ``--servers`` servers of a 1 vCPU, 16 MiB flavor (50 per request, with
  ``min_count``/``max_count``), waiting until every one is ACTIVE;
- signs in to the dashboard with its login form (CSRF token and session cookie, as a
  browser does) and times ``GET /dashboard/instances`` ``--rounds`` times: time to first
  byte (the response's headers; the page is rendered before it is sent, so this is
  nearly the whole time) and to the last byte, beside the API call the page makes (its
  first 50 servers by name) and ``GET /compute/v2.1/servers/detail`` of all 500;
- uploads a ``--size-mib`` file of random bytes the way the dashboard's page does:
  ``POST /dashboard/images`` for the record, then ``curl -T`` of the file to
  ``PUT /dashboard/images/{id}/data`` with the session cookie and CSRF header, sampling
  the server's ``VmRSS`` every 10 ms (aim: flat); then the same file straight to the
  Image API (``PUT /image/v2/images/{id}/file``) for the throughput's baseline.

Prints markdown for docs/performance.md. The server is stopped by its PID, also on
failure.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from harness import Server, cpu_model, free_port, machine_busy
from image import MiB, RssSampler, rss_kib

PORTS = range(5700, 5800)
FAKE = {
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "fake",
    "ONESTACK_HOST_NAME": "compute-1",
    # the fake host's 8 vCPUs take 500 one-vCPU servers only with this overcommit
    "ONESTACK_HOST_CPU_ALLOCATION_RATIO": "100",
}
COMPUTE = {"OpenStack-API-Version": "compute 2.91"}


def admin_token(server: Server) -> str:
    auth = server.admin_auth()
    r = httpx.post(f"{server.url}/v3/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}}}})
    r.raise_for_status()
    return r.headers["x-subject-token"]


def make_servers(server: Server, token: str, count: int) -> None:
    h = {"X-Auth-Token": token}
    c = httpx.Client(base_url=server.url, headers=h, timeout=120)
    project = c.get("/v3/auth/tokens", headers={"X-Subject-Token": token}
                    ).json()["token"]["project"]["id"]
    c.put(f"/compute/v2.1/os-quota-sets/{project}", headers=COMPUTE, json={"quota_set": {
        "instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
    c.put(f"/network/v2.0/quotas/{project}", json={"quota": {"port": -1}}).raise_for_status()
    net = c.post("/network/v2.0/networks", json={"network": {"name": "bench"}}).json()
    c.post("/network/v2.0/subnets", json={"subnet": {
        "network_id": net["network"]["id"], "cidr": "10.64.0.0/20", "ip_version": 4}}
        ).raise_for_status()
    image = c.post("/image/v2/images", json={"name": "bench", "disk_format": "raw",
                                             "container_format": "bare"}).json()
    c.put(f"/image/v2/images/{image['id']}/file", content=b"\0" * 65536,
          headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    flavor = c.post("/compute/v2.1/flavors", headers=COMPUTE, json={"flavor": {
        "name": "bench", "ram": 16, "vcpus": 1, "disk": 0}}).json()["flavor"]["id"]
    made = 0
    while made < count:
        n = min(50, count - made)
        r = c.post("/compute/v2.1/servers", headers=COMPUTE, json={"server": {
            "name": f"vm-{made:04d}", "imageRef": image["id"], "flavorRef": flavor,
            "networks": [{"uuid": net["network"]["id"]}], "min_count": n, "max_count": n}})
        if r.status_code >= 300:
            raise SystemExit(f"create: {r.status_code} {r.text}")
        made += n
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        servers = c.get("/compute/v2.1/servers/detail", headers=COMPUTE).json()["servers"]
        active = sum(1 for s in servers if s["status"] == "ACTIVE")
        if active >= count:
            return
        broken = [s for s in servers if s["status"] == "ERROR"]
        if broken:
            raise SystemExit(f"{len(broken)} servers went to ERROR: {broken[0].get('fault')}")
        time.sleep(2)
    raise SystemExit("servers did not all go ACTIVE")


def sign_in(server: Server) -> tuple[httpx.Client, str]:
    """A client with the dashboard's session cookie, and the session's CSRF token."""
    c = httpx.Client(base_url=server.url, timeout=120, follow_redirects=True)
    page = c.get("/dashboard/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    r = c.post("/dashboard/login", data={"csrf": csrf.group(1), "name": "admin",
                                         "password": server.admin_password(),
                                         "domain": "Default"})
    r.raise_for_status()
    found = re.search(r'data-csrf="([^"]+)"', r.text)
    assert found, "not signed in"
    return c, found.group(1)


def timed_get(c: httpx.Client, path: str, headers: dict[str, str] | None = None
              ) -> tuple[float, float, int]:
    start = time.perf_counter()
    with c.stream("GET", path, headers=headers) as r:
        first = time.perf_counter() - start
        size = sum(len(chunk) for chunk in r.iter_bytes())
        r.raise_for_status()
    return first, time.perf_counter() - start, size


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    os.environ.update(FAKE)
    base = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    (base / "state").mkdir()
    server = Server(base / "state", free_port(PORTS))
    try:
        server.wait_ready()
        token = admin_token(server)
        t0 = time.monotonic()
        make_servers(server, token, args.servers)
        print(f"{args.servers} servers ACTIVE in {time.monotonic() - t0:.0f} s")
        c, csrf = sign_in(server)
        busy = machine_busy()
        page, api, api_page = [], [], []
        size = 0
        timed_get(c, "/dashboard/instances")   # warm
        for _ in range(args.rounds):
            first, total, size = timed_get(c, "/dashboard/instances")
            page.append((first, total))
            api.append(timed_get(c, "/compute/v2.1/servers/detail",
                                 {"X-Auth-Token": token, **COMPUTE})[1])
            api_page.append(timed_get(
                c, "/compute/v2.1/servers/detail?limit=50&sort_key=display_name&sort_dir=asc",
                {"X-Auth-Token": token, **COMPUTE})[1])
        print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs; machine busy before: "
              f"{busy:.0%}\n")
        print(f"GET /dashboard/instances with {args.servers} servers ({size / 1024:.0f} KiB "
              f"of HTML), {args.rounds} rounds:\n")
        print("| | p50 (ms) | p95 (ms) | max (ms) |\n|---|---:|---:|---:|")
        for label, values in (("page: time to first byte", [p[0] for p in page]),
                              ("page: last byte", [p[1] for p in page]),
                              ("API: the page's call, 50 servers (last byte)", api_page),
                              ("API: all servers, GET /servers/detail (last byte)", api)):
            print(f"| {label} | {statistics.median(values) * 1000:.0f} | "
                  f"{pct(values, 0.95) * 1000:.0f} | {max(values) * 1000:.0f} |")

        data = base / "upload.bin"
        with data.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MiB))
        r = c.post("/dashboard/images", headers={"X-CSRF-Token": csrf}, data={
            "name": "big", "disk_format": "raw", "visibility": "private"})
        r.raise_for_status()
        image_id = r.json()["id"]
        cookie = c.cookies.get("onestack_session")
        pid = server.proc.pid
        before = rss_kib(pid)
        start = time.perf_counter()
        with RssSampler(pid) as sampler:
            subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(data),
                            "-H", f"X-CSRF-Token: {csrf}",
                            "-H", "Content-Type: application/octet-stream",
                            "-b", f"onestack_session={cookie}",
                            f"{server.url}/dashboard/images/{image_id}/data"], check=True)
        elapsed = time.perf_counter() - start
        after = rss_kib(pid)
        got = httpx.get(f"{server.url}/image/v2/images/{image_id}",
                        headers={"X-Auth-Token": token}).json()
        assert got["size"] == args.size_mib * MiB and got["status"] == "active", got
        # the same file straight to the Image API, for comparison
        r = httpx.post(f"{server.url}/image/v2/images", headers={"X-Auth-Token": token},
                       json={"name": "direct", "disk_format": "raw",
                             "container_format": "bare"})
        r.raise_for_status()
        start = time.perf_counter()
        subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(data),
                        "-H", f"X-Auth-Token: {token}",
                        "-H", "Content-Type: application/octet-stream",
                        f"{server.url}/image/v2/images/{r.json()['id']}/file"], check=True)
        direct = time.perf_counter() - start
        print(f"\nUpload of {args.size_mib} MiB through PUT /dashboard/images/{{id}}/data: "
              f"{args.size_mib / elapsed:.0f} MiB/s; server RSS before "
              f"{before / 1024:.0f} MiB, peak {sampler.peak / 1024:.0f} MiB, after "
              f"{after / 1024:.0f} MiB ({len(sampler.samples)} samples); image active, "
              f"{got['size']} bytes; the same file to PUT /image/v2/images/{{id}}/file "
              f"directly: {args.size_mib / direct:.0f} MiB/s")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
