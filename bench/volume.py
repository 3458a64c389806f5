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
  and a bare ``qemu-img convert -O qcow2``.

Prints a markdown table and one JSON line with every figure.

    .venv/bin/python bench/volume.py [--rounds 3] [--data-mib 64] [--dir /var/tmp]
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

from bench.harness import cpu_model, machine_busy  # noqa: E402
from onestack.common.config import Config  # noqa: E402
from onestack.drivers.volume.base import ImageData  # noqa: E402
from onestack.drivers.volume.local import LocalVolumeBackend  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=64)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-volume-") as tmp:
        root = Path(tmp)
        busy = machine_busy()
        images = make_images(root, args.data_mib)
        backend = LocalVolumeBackend(Config(state_dir=root / "state"))
        figures: dict[str, list[float]] = {}
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
            floor_dest = root / "floor-copy"
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
