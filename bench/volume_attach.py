"""Volume attach benchmark: how soon a running guest sees a hot-plugged volume.

    sudo .venv/bin/python bench/volume_attach.py [--rounds 10]

Against ``onestack up`` with the real drivers (QEMU under TCG, the local volume backend)
in a namespace of its own (tests/host/harness.py): one guest boots with a user data
that prints a console line within 50 ms of ``/dev/vdb`` appearing or going (it polls
``/sys/block``). Then ``--rounds`` times, on one 1 GiB volume:

- attach -> guest sees the disk: from ``POST .../os-volume_attachments`` until the line
  is in the guest's console log (read on the host every 10 ms); aim <= 1 s;
- of which the API answer (the attachment made with the volume service);
- detach -> guest let it go: from ``DELETE`` until the "gone" line;
- detach -> available: until the volume service says ``available`` again.

Everything (the guest, the namespace, the directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compute import Cloud, pct, wait  # noqa: E402
from harness import cpu_model, machine_busy  # noqa: E402

from onestack.services.image.testimage import MARKER, build_test_image  # noqa: E402
from tests.host.harness import NetnsHost  # noqa: E402

WATCHER = r"""#!/bin/sh
(
last=""
while true; do
    if [ -e /sys/block/vdb ]; then
        [ -z "$last" ] && echo "VOLBENCH seen" >/dev/console && last=1
    elif [ -n "$last" ]; then
        echo "VOLBENCH gone" >/dev/console; last=""
    fi
    sleep 0.05
done
) </dev/null >/dev/null 2>&1 &
"""


def console_lines(path: Path, word: str) -> int:
    try:
        return path.read_text(errors="replace").count(word)
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    image_file = build_test_image()
    results: dict[str, Any] = {"cpu": cpu_model(), "busy_before": machine_busy()}
    attach_seen: list[float] = []
    attach_api: list[float] = []
    detach_gone: list[float] = []
    detach_available: list[float] = []
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
            body = {"server": {"name": "volbench", "imageRef": image, "flavorRef": "42",
                               "networks": [{"uuid": net}],
                               "user_data": base64.b64encode(WATCHER.encode()).decode()}}
            sid = cloud.call("POST", "/compute/v2.1/servers", json=body)["server"]["id"]
            log = host.state_dir / "instances" / sid / "console.log"
            wait(lambda: console_lines(log, f"{MARKER} user-data ran") > 0, 300, 0.5)
            vol = cloud.call("POST", volumes, headers=vheaders,
                             json={"volume": {"size": 1, "name": "bench"}})["volume"]

            def status() -> str:
                return str(cloud.call("GET", f"{volumes}/{vol['id']}",
                                      headers=vheaders)["volume"]["status"])

            wait(lambda: status() == "available", 60, 0.1)
            path = f"/compute/v2.1/servers/{sid}/os-volume_attachments"
            for i in range(args.rounds):
                seen = console_lines(log, "VOLBENCH seen")
                start = time.monotonic()
                cloud.call("POST", path, json={"volumeAttachment": {"volumeId": vol["id"]}})
                attach_api.append(time.monotonic() - start)
                wait(lambda s=seen: console_lines(log, "VOLBENCH seen") > s, 60, 0.01)
                attach_seen.append(time.monotonic() - start)
                wait(lambda: status() == "in-use", 60, 0.05)
                gone = console_lines(log, "VOLBENCH gone")
                start = time.monotonic()
                cloud.call("DELETE", f"{path}/{vol['id']}")
                wait(lambda g=gone: console_lines(log, "VOLBENCH gone") > g, 60, 0.01)
                detach_gone.append(time.monotonic() - start)
                wait(lambda: status() == "available", 60, 0.01)
                detach_available.append(time.monotonic() - start)
                print(f"round {i + 1}: attach -> seen {attach_seen[-1]:.3f} s, "
                      f"detach -> gone {detach_gone[-1]:.3f} s", flush=True)
            cloud.delete(sid)
            cloud.wait_gone([sid])
        finally:
            host.cleanup()

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": round(statistics.median(values), 3),
                "p90": round(pct(values, 0.9), 3), "max": round(max(values), 3),
                "n": len(values)}

    results["attach_to_guest_sees_s"] = summary(attach_seen)
    results["attach_api_s"] = summary(attach_api)
    results["detach_to_guest_gone_s"] = summary(detach_gone)
    results["detach_to_available_s"] = summary(detach_available)
    print(f"attach -> guest sees the disk  p50 {results['attach_to_guest_sees_s']['p50']} s, "
          f"p90 {results['attach_to_guest_sees_s']['p90']} s "
          f"(API answer p50 {results['attach_api_s']['p50']} s)")
    print(f"detach -> guest let it go      p50 {results['detach_to_guest_gone_s']['p50']} s; "
          f"-> available p50 {results['detach_to_available_s']['p50']} s")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
