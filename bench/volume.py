"""Volume benchmark: volume create from a 1 GiB image on the ``local`` volume backend
(and the rest of its operations on the result), without a server.

Works in a temporary directory (``--dir``, default the system's):

- writes two 1 GiB raw images: a sparse one (``truncate`` plus ``--data-mib`` MiB of
  random bytes spread over it) and a full one (1 GiB of random bytes);
- ``create_from_image`` of each, ``--rounds`` times, two ways: from the image service's
  local file (``ImageData.location = file://...``, what the server does with the
  ``file`` image store: one ``qemu-img convert``), and streamed through
  ``ImageData.open()`` in 1 MiB chunks (what a backend does when the image is not a
  local file: write a temporary copy, then convert);
- on the volume made from the full image: ``create_snapshot``, ``create_from_snapshot``,
  ``clone``, offline ``extend`` and an empty ``create`` for comparison;
- floors: ``cp --sparse=always`` of each image file + ``sync`` (copying the bytes once)
  and a bare ``qemu-img convert -O qcow2``;
- with ``--api``: the same through a real ``onestack up`` (``[host] agent`` off: no
  guests), the sparse and the full image uploaded to it, and the time from ``POST
  /volume/v3/{project}/volumes`` with ``imageRef`` until ``GET`` shows ``available``
  (polled every 20 ms).

Prints a markdown table and one JSON line with every figure.

    .venv/bin/python bench/volume.py [--rounds 3] [--data-mib 64] [--dir /var/tmp] [--api]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.harness import Server, cpu_model, free_port, machine_busy  # noqa: E402
from onestack.common.config import Config  # noqa: E402
from onestack.services.volume.backends.base import ImageData  # noqa: E402
from onestack.services.volume.backends.local import LocalVolumeBackend  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
PORTS = range(5900, 6000)


def make_images(root: Path, data_mib: int) -> dict[str, Path]:
    sparse = root / "sparse.raw"
    with sparse.open("wb") as f:
        f.truncate(GiB)
        step = GiB // max(data_mib, 1)
        for i in range(data_mib):
            f.seek(i * step)
            f.write(os.urandom(MiB))
    full = root / "full.raw"
    with full.open("wb") as f:
        for _ in range(GiB // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
    os.sync()
    return {"sparse": sparse, "full": full}


def timed(fn: Callable[[], object], rounds: int, cleanup: Callable[[], None] | None = None
          ) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
        if cleanup is not None:
            cleanup()
    return out


def stream(path: Path) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(MiB):
                yield chunk
    return chunks


def api_figures(root: Path, images: dict[str, Path], rounds: int) -> dict[str, list[float]]:
    """POST -> available through a real server, per image."""
    state = root / "api-state"
    state.mkdir()
    os.environ["ONESTACK_HOST_AGENT"] = "false"  # the server's own setting: no guests
    os.environ["ONESTACK_VOLUME_BACKEND"] = "local"
    server = Server(state, free_port(PORTS))
    figures: dict[str, list[float]] = {}
    try:
        server.wait_ready()
        auth = server.admin_auth()
        r = httpx.post(f"{server.url}/v3/auth/tokens", timeout=30, json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": auth["username"], "password": auth["password"],
                "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": auth["project_name"],
                                  "domain": {"name": "Default"}}}}})
        r.raise_for_status()
        token = r.headers["x-subject-token"]
        project = r.json()["token"]["project"]["id"]
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "volume 3.70"}
        base = f"{server.url}/volume/v3/{project}"
        for kind, path in images.items():
            r = httpx.post(f"{server.url}/image/v2/images", headers=headers, json={
                "name": f"bench-{kind}", "disk_format": "raw", "container_format": "bare"})
            image_id = r.json()["id"]
            with path.open("rb") as f:
                r = httpx.put(f"{server.url}/image/v2/images/{image_id}/file", content=f,
                              headers={**headers, "Content-Type": "application/octet-stream"},
                              timeout=600)
            r.raise_for_status()
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                r = httpx.post(f"{base}/volumes", headers=headers, timeout=60, json={
                    "volume": {"size": 1, "imageRef": image_id}})
                r.raise_for_status()
                volume_id = r.json()["volume"]["id"]
                while True:
                    status = httpx.get(f"{base}/volumes/{volume_id}", headers=headers,
                                       timeout=60).json()["volume"]["status"]
                    if status != "creating":
                        break
                    time.sleep(0.02)
                times.append(time.perf_counter() - start)
                if status != "available":
                    raise SystemExit(f"volume {volume_id} went to {status}")
                httpx.delete(f"{base}/volumes/{volume_id}", headers=headers, timeout=60)
            figures[f"API: POST -> available, from the {kind} 1 GiB image"] = times
    finally:
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=64)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--api", action="store_true",
                        help="also measure through a real onestack up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-volume-") as tmp:
        root = Path(tmp)
        busy = machine_busy()
        images = make_images(root, args.data_mib)
        backend = LocalVolumeBackend(Config(state_dir=root / "state"))
        figures: dict[str, list[float]] = {}
        floor_dest = root / "floor-copy"
        for kind, path in images.items():
            for how in ("file", "stream"):
                image = ImageData(id=f"img-{kind}", disk_format="raw", size=GiB,
                                  virtual_size=GiB, open=stream(path),
                                  location=f"file://{path}" if how == "file" else None)
                made: list[str] = []

                def create(image: ImageData = image, made: list[str] = made) -> None:
                    made.append(str(uuid.uuid4()))
                    backend.create_from_image(made[-1], image, 1)

                def drop(made: list[str] = made) -> None:
                    backend.delete(made.pop())

                figures[f"create_from_image {kind} 1 GiB ({how})"] = timed(
                    create, args.rounds, drop)
            figures[f"floor: cp --sparse + sync {kind}"] = timed(
                lambda path=path: (subprocess.run(["cp", "--sparse=always", str(path),
                                                   str(floor_dest)], check=True),
                                   os.sync()),
                args.rounds, lambda: floor_dest.unlink())
            figures[f"floor: qemu-img convert {kind}"] = timed(
                lambda path=path: subprocess.run(["qemu-img", "convert", "-f", "raw", "-O",
                                                  "qcow2", str(path), str(floor_dest)],
                                                 check=True),
                args.rounds, lambda: floor_dest.unlink())
        base = str(uuid.uuid4())
        backend.create_from_image(base, ImageData(
            id="img-full", disk_format="raw", size=GiB, virtual_size=GiB,
            open=stream(images["full"]), location=f"file://{images['full']}"), 1)
        snaps: list[str] = []
        figures["create_snapshot (1 GiB written)"] = timed(
            lambda: (snaps.append(str(uuid.uuid4())),
                     backend.create_snapshot(snaps[-1], base)), args.rounds)
        vols: list[str] = []
        figures["create_from_snapshot"] = timed(
            lambda: (vols.append(str(uuid.uuid4())),
                     backend.create_from_snapshot(vols[-1], snaps[0], base, 1)),
            args.rounds, lambda: backend.delete(vols.pop()))
        figures["clone (1 GiB written)"] = timed(
            lambda: (vols.append(str(uuid.uuid4())), backend.clone(vols[-1], base, 1)),
            args.rounds, lambda: backend.delete(vols.pop()))
        sizes = iter(range(2, 2 + args.rounds))
        figures["extend (offline)"] = timed(lambda: backend.extend(base, next(sizes)),
                                            args.rounds)
        figures["create empty 1 GiB"] = timed(
            lambda: (vols.append(str(uuid.uuid4())), backend.create(vols[-1], 1)),
            args.rounds, lambda: backend.delete(vols.pop()))
        for snap in snaps:
            backend.delete_snapshot(snap, base)
        backend.delete(base)
        if args.api:
            figures.update(api_figures(root, images, args.rounds))
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; busy before: {busy:.0%}")
    print("| operation (local backend) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | "
              f"{max(values):.3f} |")
    print(json.dumps({"busy_before": round(busy, 3),
                      "figures": {k: [round(v, 4) for v in vals]
                                  for k, vals in figures.items()}}))


if __name__ == "__main__":
    main()
