"""Image data benchmark: upload and download of a 1 GiB image through the Image API,
against ``cp`` of the same file, and the server's memory during the upload.

Starts its own ``onestack up`` on a free loopback port in 5400-5499 with a temporary
state dir, logs in as admin, writes a file of random bytes (``--size-mib``, default
1024) next to the state dir, then for each round:

- ``cp`` the file and ``sync`` the copy (the server fsyncs an upload before it answers),
  and a plain ``cp`` (the baseline for a download, which is not synced);
- create an image (``raw``/``bare``) and upload the file with ``curl -T``; the server's
  resident memory (``VmRSS`` in ``/proc/<pid>/status``) is sampled every 10 ms;
- download it with ``curl -o`` to a file and check its MD5, then again to /dev/null.

``cp`` (coreutils 9) copies with ``copy_file_range``, inside the kernel, so it sets a
high bar: no user-space program moving the bytes through a socket can match it.

The server's CPU use (cores busy) during each transfer is printed too; ``--wait-idle``
waits for the machine to be quiet before each round, since other work moves the figures.

Prints the throughputs, the ratios to ``cp`` and the RSS figures as markdown for
``docs/performance.md``. The server is stopped by its PID at the end, also on failure.

    .venv/bin/python bench/image.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import Server, cpu_seconds, free_port, machine_busy, wait_idle

PORTS = range(5400, 5500)
MiB = 1 << 20


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """A memory figure of a process from /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's VmRSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_kib(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


def login(server: Server) -> tuple[str, str]:
    """An admin token and the image endpoint from its catalog."""
    auth = server.admin_auth()
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth.get("project_domain_name",
                                                          "Default")}}}}}
    resp = httpx.post(f"{server.url}/v3/auth/tokens", json=body, timeout=30)
    resp.raise_for_status()
    for service in resp.json()["token"]["catalog"]:
        if service["type"] == "image":
            for ep in service["endpoints"]:
                if ep["interface"] == "public":
                    return resp.headers["x-subject-token"], ep["url"].rstrip("/")
    raise SystemExit("no image endpoint in the catalog")


@dataclass
class Round:
    cp_sync_s: float
    cp_s: float
    upload_s: float
    download_s: float
    rss_before_kib: int
    rss_peak_kib: int
    rss_after_kib: int
    upload_cpu: float  # server CPU during the upload, in cores
    download_cpu: float
    null_download_s: float  # to /dev/null: the server's side without the disk write
    busy_before: float
    samples: list[int] = field(default_factory=list)


def timed(args: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def make_source(path: Path, size: int) -> str:
    """A file of random bytes; returns its MD5."""
    md5 = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MiB))
            md5.update(chunk)
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    return md5.hexdigest()


def one_round(server: Server, token: str, endpoint: str, source: Path, md5: str,
              work: Path, index: int, idle_wait: float) -> Round:
    busy = wait_idle(0.10, idle_wait) if idle_wait else machine_busy()
    copy = work / "copy"
    cp_sync = timed(["sh", "-c", f"cp '{source}' '{copy}' && sync '{copy}'"])
    copy.unlink()
    cp = timed(["cp", str(source), str(copy)])
    copy.unlink()

    headers = {"X-Auth-Token": token}
    created = httpx.post(f"{endpoint}/v2/images", headers=headers, timeout=30, json={
        "name": f"bench-{index}", "disk_format": "raw", "container_format": "bare"})
    created.raise_for_status()
    image_id = created.json()["id"]
    url = f"{endpoint}/v2/images/{image_id}/file"
    curl = ["curl", "-sS", "--fail", "-H", f"X-Auth-Token: {token}"]

    pid = server.proc.pid
    rss_before = rss_kib(pid)
    cpu0 = cpu_seconds(pid)
    with RssSampler(pid) as sampler:
        upload = timed([*curl, "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                        "-T", str(source), url])
    rss_after = rss_kib(pid)
    upload_cpu = (cpu_seconds(pid) - cpu0) / upload
    image = httpx.get(f"{endpoint}/v2/images/{image_id}", headers=headers, timeout=30).json()
    if image["status"] != "active" or image["checksum"] != md5:
        raise SystemExit(f"upload went wrong: {image}")

    download_to = work / "download"
    cpu0 = cpu_seconds(pid)
    download = timed([*curl, "-o", str(download_to), url])
    download_cpu = (cpu_seconds(pid) - cpu0) / download
    if _md5(download_to) != md5:
        raise SystemExit("downloaded bytes differ")
    download_to.unlink()
    null_download = timed([*curl, "-o", "/dev/null", url])
    httpx.delete(f"{endpoint}/v2/images/{image_id}", headers=headers, timeout=30)
    return Round(cp_sync, cp, upload, download, rss_before, sampler.peak, rss_after,
                 upload_cpu, download_cpu, null_download, busy, sampler.samples)


def _md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            md5.update(chunk)
    return md5.hexdigest()


def report(rounds: list[Round], size: int, hwm_kib: int) -> None:
    mib = size / MiB

    def rate(seconds: float) -> str:
        return f"{mib / seconds:,.0f}"

    print(f"{mib:.0f} MiB image, {len(rounds)} rounds; machine: {os.cpu_count()} CPUs, "
          f"Linux {platform.release()}, Python {platform.python_version()}\n")
    print("| Round | cp + sync (MiB/s) | upload (MiB/s) | upload / cp+sync | cp (MiB/s) | "
          "download (MiB/s) | download / cp | download to /dev/null (MiB/s) | "
          "RSS before (MiB) | RSS peak (MiB) | RSS after (MiB) | "
          "server CPU up/down (cores) | machine busy before |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        print(f"| {i} | {rate(r.cp_sync_s)} | {rate(r.upload_s)} | "
              f"{r.cp_sync_s / r.upload_s:.2f} | {rate(r.cp_s)} | {rate(r.download_s)} | "
              f"{r.cp_s / r.download_s:.2f} | {rate(r.null_download_s)} | "
              f"{r.rss_before_kib / 1024:.0f} | "
              f"{r.rss_peak_kib / 1024:.0f} | {r.rss_after_kib / 1024:.0f} | "
              f"{r.upload_cpu:.2f} / {r.download_cpu:.2f} | {r.busy_before:.0%} |")
    up = statistics.median(r.cp_sync_s / r.upload_s for r in rounds)
    down = statistics.median(r.cp_s / r.download_s for r in rounds)
    growth = max(r.rss_peak_kib - r.rss_before_kib for r in rounds) / 1024
    print(f"\nMedian ratios: upload {up:.2f} of cp+sync, download {down:.2f} of cp. "
          f"Largest RSS growth during an upload: {growth:.1f} MiB "
          f"(samples per upload: {min(len(r.samples) for r in rounds)}). "
          f"Server VmHWM at the end: {hwm_kib / 1024:.0f} MiB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="wait up to this long for the machine to be <10%% busy "
                        "before each round")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (Debian package curl)")
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="onestack-bench-image-") as tmp:
        work = Path(tmp)
        state = work / "state"
        state.mkdir()
        source = work / "source.img"
        print(f"writing {args.size_mib} MiB of random bytes ...", flush=True)
        md5 = make_source(source, size)
        server = Server(state, free_port(PORTS))
        try:
            server.wait_ready()
            token, endpoint = login(server)
            rounds = []
            for i in range(args.rounds):
                rounds.append(one_round(server, token, endpoint, source, md5, work, i,
                                        args.wait_idle))
                print(f"round {i + 1} done", flush=True)
            hwm = rss_kib(server.proc.pid, "VmHWM")
        finally:
            server.stop()
        report(rounds, size, hwm)


if __name__ == "__main__":
    main()
