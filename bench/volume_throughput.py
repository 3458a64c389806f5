"""Guest sequential throughput on a local volume, as a ratio to the same I/O on the host.

    sudo .venv/bin/python bench/volume_throughput.py [--rounds 3] [--mib 256]

Against ``onestack up`` with the real drivers (QEMU under TCG, the ``local`` volume
backend: one qcow2 file a volume, opened by QEMU with ``cache=none``, i.e. O_DIRECT) in
a namespace of its own (tests/host/harness.py). One ``m1.nano`` guest boots with a user
data that waits for ``/dev/vdb``, then runs

    dd if=/dev/zero of=/dev/vdb bs=1M count=256 conv=fsync
    echo 3 > /proc/sys/vm/drop_caches
    dd if=/dev/vdb of=/dev/null bs=1M count=256

timing each from the guest's ``/proc/uptime``, prints the times on its console, and
waits for the disk to go. Each round: a fresh 1 GiB volume is created and attached with
the stock API, the guest's line is read from the console log, the volume is detached
and deleted. Before each guest round, on the host, in the same directory
(``<state_dir>/volumes``):

- ``qemu-io``: a fresh 1 GiB qcow2 (``qemu-img create -f qcow2``) written and read in
  the same 1 MiB requests with ``-t none`` (O_DIRECT, as QEMU opens the volume), the
  write followed by a ``flush`` -- the same file format, cache mode and request size
  as the guest's I/O, without the guest;
- ``dd`` on a raw file: ``dd if=/dev/zero of=F bs=1M count=256 conv=fsync`` and
  ``dd if=F of=/dev/null bs=1M iflag=direct`` (the host's page cache holds what was
  just written, so the read bypasses it).

The figures are MB/s (10^6 bytes) and guest / host ratios. Everything (the guest, the
namespace, the directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
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

from compute import Cloud, wait  # noqa: E402
from harness import cpu_model, machine_busy  # noqa: E402

from onestack.services.image.testimage import MARKER, build_test_image  # noqa: E402
from tests.host.harness import NetnsHost  # noqa: E402

LINE = re.compile(r"VOLTPUT (\d+) write ([0-9.]+) ([0-9.]+) read ([0-9.]+) ([0-9.]+)")


def guest_script(mib: int) -> str:
    return f"""#!/bin/sh
(
n=0
while true; do
    while [ ! -e /sys/block/vdb ]; do sleep 0.1; done
    sleep 1
    n=$((n + 1))
    t0=$(cut -d' ' -f1 /proc/uptime)
    dd if=/dev/zero of=/dev/vdb bs=1M count={mib} conv=fsync 2>/dev/null
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo 3 > /proc/sys/vm/drop_caches
    t2=$(cut -d' ' -f1 /proc/uptime)
    dd if=/dev/vdb of=/dev/null bs=1M count={mib} 2>/dev/null
    t3=$(cut -d' ' -f1 /proc/uptime)
    echo "VOLTPUT $n write $t0 $t1 read $t2 $t3" >/dev/console
    while [ -e /sys/block/vdb ]; do sleep 0.1; done
done
) </dev/null >/dev/null 2>&1 &
"""


def timed(cmd: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def host_qemu_io(directory: Path, mib: int) -> dict[str, float]:
    """Seconds to write (then flush) and read ``mib`` MiB in 1 MiB requests on a fresh
    qcow2 opened with O_DIRECT."""
    path = directory / "bench-qemu-io.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    try:
        writes = [a for i in range(mib) for a in ("-c", f"write -q -P 0 {i}M 1M")]
        reads = [a for i in range(mib) for a in ("-c", f"read -q {i}M 1M")]
        base = ["qemu-io", "-f", "qcow2", "-t", "none"]
        return {"write": timed([*base, *writes, "-c", "flush", str(path)]),
                "read": timed([*base, *reads, str(path)])}
    finally:
        path.unlink(missing_ok=True)


def host_dd(directory: Path, mib: int) -> dict[str, float]:
    """Seconds of ``dd`` writing (fsync at the end) and reading (O_DIRECT) a raw file."""
    path = directory / "bench-dd.raw"
    try:
        return {"write": timed(["dd", "if=/dev/zero", f"of={path}", "bs=1M",
                                f"count={mib}", "conv=fsync", "status=none"]),
                "read": timed(["dd", f"if={path}", "of=/dev/null", "bs=1M",
                               "iflag=direct", "status=none"])}
    finally:
        path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    image_file = build_test_image()
    mb = args.mib * (1 << 20) / 1e6
    results: dict[str, Any] = {"cpu": cpu_model(), "busy_before": machine_busy(),
                               "mib": args.mib}
    rates: dict[str, list[float]] = {f"{who} {op}": [] for who in ("guest", "qemu-io", "dd")
                                     for op in ("write", "read")}
    with tempfile.TemporaryDirectory(prefix="onestack-bench-") as tmp:
        host = NetnsHost(Path(tmp), env={"ONESTACK_HOST_ACCEL": "tcg",
                                         "ONESTACK_SERVER_LOG_LEVEL": "warning"})
        try:
            host.create()
            host.start()
            cloud = Cloud(host)
            image, net = cloud.setup(image_file)
            token = cloud.client.headers["X-Auth-Token"]
            project = cloud.client.get("/v3/auth/tokens", headers={
                "X-Subject-Token": token}).json()["token"]["project"]["id"]
            volumes = f"/volume/v3/{project}/volumes"
            vheaders = {"OpenStack-API-Version": "volume 3.70"}
            script = guest_script(args.mib)
            body = {"server": {"name": "volput", "imageRef": image, "flavorRef": "42",
                               "networks": [{"uuid": net}],
                               "user_data": base64.b64encode(script.encode()).decode()}}
            sid = cloud.call("POST", "/compute/v2.1/servers", json=body)["server"]["id"]
            log = host.state_dir / "instances" / sid / "console.log"

            def console() -> str:
                try:
                    return log.read_text(errors="replace")
                except OSError:
                    return ""

            wait(lambda: f"{MARKER} user-data ran" in console(), 300, 0.5)
            voldir = host.state_dir / "volumes"
            path = f"/compute/v2.1/servers/{sid}/os-volume_attachments"
            for i in range(1, args.rounds + 1):
                for name, fn in (("qemu-io", host_qemu_io), ("dd", host_dd)):
                    secs = fn(voldir, args.mib)
                    for op in ("write", "read"):
                        rates[f"{name} {op}"].append(mb / secs[op])
                vol = cloud.call("POST", volumes, headers=vheaders, json={
                    "volume": {"size": 1, "name": f"volput-{i}"}})["volume"]

                def status(v: str = vol["id"]) -> str:
                    return str(cloud.call("GET", f"{volumes}/{v}",
                                          headers=vheaders)["volume"]["status"])

                wait(lambda: status() == "available", 60, 0.1)
                cloud.call("POST", path, json={"volumeAttachment": {"volumeId": vol["id"]}})
                wait(lambda n=i: any(int(m.group(1)) == n for m in LINE.finditer(console())),
                     900, 0.5)
                m = next(m for m in LINE.finditer(console()) if int(m.group(1)) == i)
                t0, t1, t2, t3 = (float(x) for x in m.groups()[1:])
                rates["guest write"].append(mb / (t1 - t0))
                rates["guest read"].append(mb / (t3 - t2))
                cloud.call("DELETE", f"{path}/{vol['id']}")
                wait(lambda: status() == "available", 120, 0.1)
                cloud.call("DELETE", f"{volumes}/{vol['id']}", headers=vheaders)
                print(f"round {i}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
                      + " MB/s", flush=True)
            cloud.delete(sid)
            cloud.wait_gone([sid])
        finally:
            host.cleanup()

    med = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    results["MB/s all rounds"] = {k: [round(x, 1) for x in v] for k, v in rates.items()}
    results["MB/s median"] = med
    ratios = {f"guest / {base} {op}": round(med[f"guest {op}"] / med[f"{base} {op}"], 2)
              for base in ("qemu-io", "dd") for op in ("write", "read")}
    results["ratios (medians)"] = ratios
    results["busy_after"] = machine_busy()
    print("| MB/s (median of rounds) | write | read |\n| --- | --- | --- |")
    for who in ("guest", "qemu-io", "dd"):
        print(f"| {who} | {med[f'{who} write']} | {med[f'{who} read']} |")
    print(" ".join(f"{k}: x{v}" for k, v in ratios.items()))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
