"""Ceph benchmark: the rbd backend on a throwaway one-machine cluster.

    sudo .venv/bin/python bench/ceph.py [--rounds 5] [--clones 10] [--skip-servers]

Starts ``onestack ceph up`` (3 OSDs on sparse files) inside a host namespace of its own
(tests/host/harness.py) and measures:

- clone time of a 1 GiB and a 1 TiB sparse image (``rbd clone`` of the protected
  snapshot into ``vms``, as the rbd storage driver does): p50 and p90 of ``--clones``;
- ``rbd bench`` sequential write and read (4 MiB I/Os, 16 in flight, 512 MiB) on the
  cluster, as client.onestack: the baseline for volume throughput ratios;
- server create -> ACTIVE (API to API) booting from an RBD clone (``--storage rbd``)
  and from a local qcow2 overlay (``--storage local``), same raw test image, same host,
  ``--rounds`` each.

Everything (daemons by PID, the namespace, the directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
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

from compute import Cloud, bench_active, pct, wait  # noqa: E402
from harness import cpu_model  # noqa: E402

from onestack.ceph.cluster import Cluster  # noqa: E402
from onestack.services.image.testimage import build_test_image  # noqa: E402
from tests.host.harness import NetnsHost  # noqa: E402

GiB = 1 << 30


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_clones(cluster: Cluster, n: int) -> dict[str, list[float]]:
    import rados
    import rbd

    r = rados.Rados(conffile=str(cluster.conf), rados_id="admin")
    r.connect(timeout=30)
    images, vms = r.open_ioctx("images"), r.open_ioctx("vms")
    features = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                | rbd.RBD_FEATURE_DEEP_FLATTEN)  # what the storage driver uses
    out: dict[str, list[float]] = {}
    try:
        for label, size in (("1 GiB", GiB), ("1 TiB", 1024 * GiB)):
            name = f"bench-{size}"
            rbd.RBD().create(images, name, size, old_format=False, features=features)
            with rbd.Image(images, name) as image:
                image.write(b"x" * 4096, 0)
                image.write(b"y" * 4096, size - 4096)
                image.create_snap("snap")
                image.protect_snap("snap")
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                rbd.RBD().clone(images, name, "snap", vms, f"{name}-{i}", features=features)
                with rbd.Image(vms, f"{name}-{i}") as clone:  # grown, as a boot disk is
                    clone.resize(size + GiB)
                times.append(time.perf_counter() - t0)
            out[label] = times
            for i in range(n):
                rbd.RBD().remove(vms, f"{name}-{i}")
            with rbd.Image(images, name) as image:
                image.unprotect_snap("snap")
                image.remove_snap("snap")
            rbd.RBD().remove(images, name)
    finally:
        images.close()
        vms.close()
        r.shutdown()
    return out


def rbd_bench(cluster: Cluster) -> dict[str, float]:
    """MB/s of ``rbd bench`` write then read, sequential 4 MiB I/Os."""
    base = ["rbd", "-c", str(cluster.conf), "--id", "onestack"]
    subprocess.run([*base, "create", "--size", "1G", "vms/bench"], check=True)
    out: dict[str, float] = {}
    try:
        for io_type in ("write", "read"):
            proc = subprocess.run(
                [*base, "bench", "--io-type", io_type, "--io-size", "4M", "--io-threads",
                 "16", "--io-total", "512M", "--io-pattern", "seq", "vms/bench"],
                capture_output=True, text=True, check=True, timeout=600)
            m = re.search(r"elapsed:\s*([0-9.]+)\s+ops:\s*(\d+)\s+ops/sec:\s*([0-9.]+)\s+"
                          r"bytes/sec:\s*([0-9.]+)\s*([KMG]iB/s)?", proc.stdout)
            if not m:
                raise RuntimeError(f"can't read rbd bench's output:\n{proc.stdout}")
            value, unit = float(m.group(4)), (m.group(5) or "")
            scale = {"KiB/s": 1 << 10, "MiB/s": 1 << 20, "GiB/s": 1 << 30}.get(unit, 1)
            out[io_type] = value * scale / 1e6
    finally:
        subprocess.run([*base, "rm", "--no-progress", "vms/bench"], check=False,
                       capture_output=True)
    return out


def setup_cloud(host: NetnsHost, image_raw: Path) -> tuple[Cloud, str, str]:
    cloud = Cloud(host)
    image = cloud.call("POST", "/image/v2/images", json={
        "name": "bench-raw", "disk_format": "raw", "container_format": "bare",
        "visibility": "public"})
    with image_raw.open("rb") as f:
        cloud.call("PUT", f"/image/v2/images/{image['id']}/file", content=f.read(),
                   headers={"Content-Type": "application/octet-stream"})
    net = cloud.call("POST", "/network/v2.0/networks", json={"network": {"name": "bench"}})
    net_id = net["network"]["id"]
    cloud.call("POST", "/network/v2.0/subnets", json={"subnet": {
        "network_id": net_id, "ip_version": 4, "cidr": "10.31.0.0/22"}})
    return cloud, image["id"], net_id


DD_MIB = 256
GUEST_DD = f"""#!/bin/sh
(
while [ ! -e /sys/block/vdb ]; do sleep 0.1; done
sleep 1
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/zero of=/dev/vdb bs=1M count={DD_MIB} conv=fsync 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo 3 > /proc/sys/vm/drop_caches
t2=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/vdb of=/dev/null bs=1M count={DD_MIB} 2>/dev/null
t3=$(cut -d' ' -f1 /proc/uptime)
echo "CEPHBENCH write $t0 $t1 read $t2 $t3" >/dev/console
) </dev/null >/dev/null 2>&1 &
"""


def bench_guest_dd(cloud: Cloud, host: NetnsHost, image: str, net: str) -> dict[str, float]:
    """MB/s of a guest's sequential ``dd`` (1 MiB blocks, fsync at the end) on an rbd
    volume hot-plugged into it."""
    import base64

    from onestack.services.image.testimage import MARKER

    token = cloud.client.headers["X-Auth-Token"]
    project = cloud.client.get("/v3/auth/tokens", headers={
        "X-Subject-Token": token}).json()["token"]["project"]["id"]
    volumes = f"/volume/v3/{project}/volumes"
    vheaders = {"OpenStack-API-Version": "volume 3.70"}
    body = {"server": {"name": "ddbench", "imageRef": image, "flavorRef": "42",
                       "networks": [{"uuid": net}],
                       "user_data": base64.b64encode(GUEST_DD.encode()).decode()}}
    sid = cloud.call("POST", "/compute/v2.1/servers", json=body)["server"]["id"]
    log = host.state_dir / "instances" / sid / "console.log"

    def console() -> str:
        try:
            return log.read_text(errors="replace")
        except OSError:
            return ""

    wait(lambda: f"{MARKER} user-data ran" in console(), 300, 0.5)
    vol = cloud.call("POST", volumes, headers=vheaders,
                     json={"volume": {"size": 1, "name": "ddbench"}})["volume"]
    wait(lambda: cloud.call("GET", f"{volumes}/{vol['id']}", headers=vheaders)
         ["volume"]["status"] == "available", 60, 0.2)
    cloud.call("POST", f"/compute/v2.1/servers/{sid}/os-volume_attachments",
               json={"volumeAttachment": {"volumeId": vol["id"]}})
    wait(lambda: "CEPHBENCH write" in console(), 600, 1)
    m = re.search(r"CEPHBENCH write ([0-9.]+) ([0-9.]+) read ([0-9.]+) ([0-9.]+)", console())
    if not m:
        raise RuntimeError("no CEPHBENCH line on the guest's console")
    t0, t1, t2, t3 = (float(x) for x in m.groups())
    cloud.delete(sid)
    cloud.wait_gone([sid])
    mb = DD_MIB * (1 << 20) / 1e6
    return {"write": round(mb / (t1 - t0), 1), "read": round(mb / (t3 - t2), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clones", type=int, default=10)
    ap.add_argument("--skip-servers", action="store_true")
    args = ap.parse_args()
    results: dict[str, Any] = {"cpu": cpu_model()}
    qcow2 = build_test_image()
    with tempfile.TemporaryDirectory(prefix="onestack-bench-ceph-") as tmp:
        base = Path(tmp)
        image_raw = base / "test.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(image_raw)],
                       check=True)
        host = NetnsHost(base / "rbd", env={"ONESTACK_HOST_ACCEL": "tcg"})
        cluster = Cluster(base / "cluster", report=lambda line: print(f"ceph: {line}"))
        local: NetnsHost | None = None
        try:
            host.create()
            t0 = time.monotonic()
            cluster.up(osds=3)
            results["cluster_up_s"] = round(time.monotonic() - t0, 1)
            results["cluster RSS MiB"] = round(sum(
                rss_kib(pid) for d in cluster.daemons()
                if (pid := cluster.pid(d)) is not None) / 1024)
            clones = bench_clones(cluster, args.clones)
            for label, times in clones.items():
                results[f"clone {label} p50 ms"] = round(statistics.median(times) * 1000, 1)
                results[f"clone {label} p90 ms"] = round(pct(times, 0.9) * 1000, 1)
            results["rbd bench MB/s"] = {k: round(v, 1) for k, v in rbd_bench(cluster).items()}
            print(json.dumps(results, indent=2), flush=True)
            if not args.skip_servers:
                s = cluster.client_settings()
                host.env.update({"ONESTACK_HOST_STORAGE_DRIVER": "rbd",
                                 "ONESTACK_IMAGE_STORE": "rbd", "ONESTACK_VOLUME_BACKEND": "rbd",
                                 "ONESTACK_CEPH_CONF": s["conf"],
                                 "ONESTACK_CEPH_KEYRING": s["keyring"]})
                host.start()
                cloud, image, net = setup_cloud(host, image_raw)
                times = bench_active(cloud, image, net, args.rounds)
                results["create->ACTIVE rbd clone p50 s"] = round(statistics.median(times), 2)
                results["create->ACTIVE rbd clone p90 s"] = round(pct(times, 0.9), 2)
                print(json.dumps(results, indent=2), flush=True)
                dd = bench_guest_dd(cloud, host, image, net)
                results["guest dd on an rbd volume MB/s"] = dd
                base_mb = results["rbd bench MB/s"]
                results["guest dd / rbd bench"] = {
                    k: round(dd[k] / base_mb[k], 2) for k in ("write", "read")}
                print(json.dumps(results, indent=2), flush=True)
                host.stop()
                # The same namespace, a fresh state dir, local overlays.
                local = NetnsHost(base / "local", env={"ONESTACK_HOST_ACCEL": "tcg"},
                                  prefix=host.prefix)
                local.base.mkdir(parents=True)
                local.start()
                cloud, image, net = setup_cloud(local, image_raw)
                times = bench_active(cloud, image, net, args.rounds)
                results["create->ACTIVE local overlay p50 s"] = round(statistics.median(times),
                                                                     2)
                results["create->ACTIVE local overlay p90 s"] = round(pct(times, 0.9), 2)
        finally:
            if local is not None:
                local.stop()
            host.stop()
            print(f"stopped {cluster.down(purge=True)}")
            if local is not None:
                local.cleanup()
            host.cleanup()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
