"""Storage benchmark: boot-disk clone time (``create_disk``) on a 1 GiB and a 10 GiB
base, and the base fetch throughput (``ensure_base``) of a 1 GiB image, for the
``local`` driver.

Works in a temporary directory (``--dir``, default the system's) with no server:

- writes sparse raw images (``truncate`` plus ``--data-mib`` MiB of random bytes spread
  over the file) of 1 GiB and 10 GiB, and qcow2 copies of them (``qemu-img convert``);
- clone: puts each image in the driver's base cache as a fetched base would be, then
  times ``--clones`` ``create_disk`` calls on it (20 GiB flavor disk), then the same
  number of bare ``qemu-img create`` overlays (the floor: one qemu-img process), then
  the ``delete_disk`` calls;
- fetch: times ``ensure_base`` (stream through ``ImageSource.open()`` in 1 MiB chunks,
  sha512, write, fsync, rename, qemu-img check) of the 1 GiB sparse raw image and of a
  1 GiB image of random bytes, ``--rounds`` times each; the source file is in the page
  cache, so this is the driver's own cost, not a network's. Beside it: sha512 of the
  same chunks alone and ``cp`` + ``sync`` of the file, the two floors.

Prints a markdown table and one JSON line with every figure.

    .venv/bin/python bench/storage.py [--clones 10] [--rounds 3] [--dir /var/tmp]
                                      [--wait-idle SECONDS]

Other work on the machine moves these figures a lot (fsync and qemu-img start-up);
``--wait-idle`` waits for a quiet machine first, and "machine busy before" is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from harness import cpu_model, machine_busy, wait_idle

from onestack.drivers.storage import ImageSource
from onestack.drivers.storage.local import LocalStorage

MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB


def make_sparse_raw(path: Path, size: int, data_mib: int) -> None:
    """``size`` bytes, mostly holes, with ``data_mib`` MiB of random bytes in 1 MiB
    pieces spread evenly (the first at 0, the last at the end)."""
    with open(path, "wb") as f:
        f.truncate(size)
        step = (size - MiB) // max(data_mib - 1, 1)
        for i in range(data_mib):
            f.seek(i * step // MiB * MiB)
            f.write(os.urandom(MiB))
        os.fsync(f.fileno())


def make_dense_raw(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (8 * MiB)):
            f.write(os.urandom(8 * MiB))
        os.fsync(f.fileno())


def file_source(path: Path, disk_format: str, image_id: str | None = None) -> ImageSource:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)

    def read() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    return ImageSource(id=image_id or str(uuid.uuid4()), disk_format=disk_format,
                       size=path.stat().st_size, hash_algo="sha512",
                       hash_value=digest.hexdigest(), open=read)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def bench_clone(storage: LocalStorage, image_path: Path, disk_format: str,
                clones: int) -> dict[str, float]:
    """Clone ``clones`` disks from a base already in the cache."""
    image_id = str(uuid.uuid4())
    os.link(image_path, storage.base_dir / image_id)  # a copy would not stay sparse
    # the image is never opened: the base is there, as after a fetch
    image = ImageSource(id=image_id, disk_format=disk_format,
                        size=image_path.stat().st_size, hash_algo="sha512",
                        hash_value="", open=lambda: iter(()))
    base = storage.ensure_base(image)  # first qemu-img check of the base, not timed
    uuids = [str(uuid.uuid4()) for _ in range(clones)]
    create = [timed(partial(storage.create_disk, u, image, 20)) for u in uuids]
    floor_dir = storage.root.parent / "floor"
    floor_dir.mkdir(exist_ok=True)
    floor = [timed(partial(subprocess.run, [
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", disk_format, "-b", str(base.path),
        str(floor_dir / f"disk{i}"), str(20 * GiB)], check=True)) for i in range(clones)]
    shutil.rmtree(floor_dir)
    delete = [timed(partial(storage.delete_disk, u)) for u in uuids]
    assert not (storage.base_dir / image_id).exists(), "the base outlived its last disk"
    return {"create_ms": median_ms(create), "create_min_ms": min(create) * 1000,
            "create_max_ms": max(create) * 1000, "qemu_img_create_ms": median_ms(floor),
            "delete_ms": median_ms(delete), "virtual_size": base.virtual_size}


def bench_fetch(storage: LocalStorage, image_path: Path, rounds: int) -> dict[str, float]:
    """``ensure_base`` of a fresh image id each round, in MiB/s of image bytes; beside
    it the floors: sha512 of the same chunks alone, and ``cp`` + ``sync``."""
    size_mib = image_path.stat().st_size / MiB
    source = file_source(image_path, "raw")
    rates, hash_rates, cp_rates = [], [], []
    copy = storage.root.parent / "copy"
    for _ in range(rounds):
        image = ImageSource(**{**source.__dict__, "id": str(uuid.uuid4())})
        rates.append(size_mib / timed(partial(storage.ensure_base, image)))
        storage.delete_disk(str(uuid.uuid4()))  # no disk uses it: the base goes

        def hash_only() -> None:
            digest = hashlib.sha512()
            for chunk in source.open():
                digest.update(chunk)

        hash_rates.append(size_mib / timed(hash_only))
        cp_rates.append(size_mib / timed(lambda: subprocess.run(
            ["sh", "-c", f"cp '{image_path}' '{copy}' && sync '{copy}'"], check=True)))
        copy.unlink()
    return {"mib_s": statistics.median(rates), "min_mib_s": min(rates),
            "max_mib_s": max(rates), "sha512_mib_s": statistics.median(hash_rates),
            "cp_sync_mib_s": statistics.median(cp_rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clones", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=8,
                        help="MiB of real data in the sparse images")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to work (the file system the disks live on)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="wait up to this long for the machine to be <10%% busy first")
    args = parser.parse_args()
    if shutil.which("qemu-img") is None:
        raise SystemExit("qemu-img is needed (Debian package qemu-utils)")
    busy = wait_idle(0.10, args.wait_idle) if args.wait_idle else machine_busy()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="onestack-bench-storage-", dir=args.dir) as tmp:
        work = Path(tmp)
        storage = LocalStorage(work / "disks")
        for gib in (1, 10):
            raw = work / f"{gib}g.raw"
            make_sparse_raw(raw, gib * GiB, args.data_mib)
            qcow2 = work / f"{gib}g.qcow2"
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                            str(qcow2)], check=True)
            os.sync()  # the setup's writeback must not land in the clones' fsyncs
            for fmt, path in (("raw", raw), ("qcow2", qcow2)):
                print(f"cloning {args.clones} disks from the {gib} GiB {fmt} base ...",
                      flush=True)
                results[f"clone_{gib}g_{fmt}"] = bench_clone(storage, path, fmt, args.clones)
            qcow2.unlink()
            if gib == 10:
                raw.unlink()
        print(f"fetching 1 GiB images {args.rounds} times each ...", flush=True)
        results["fetch_1g_sparse"] = bench_fetch(storage, work / "1g.raw", args.rounds)
        dense = work / "1g-dense.raw"
        make_dense_raw(dense, GiB)
        results["fetch_1g_dense"] = bench_fetch(storage, dense, args.rounds)

    print(f"\n{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"qemu-img {qemu_img_version()}, machine busy before: {busy:.0%}\n")
    print("| Clone (`create_disk`, 20 GiB disk) | median (ms) | min-max (ms) | "
          "bare `qemu-img create` (ms) | `delete_disk` (ms) |")
    print("|---|---:|---:|---:|---:|")
    for gib in (1, 10):
        for fmt in ("raw", "qcow2"):
            r = results[f"clone_{gib}g_{fmt}"]
            print(f"| {gib} GiB {fmt} base | {r['create_ms']:.1f} | "
                  f"{r['create_min_ms']:.1f}-{r['create_max_ms']:.1f} | "
                  f"{r['qemu_img_create_ms']:.1f} | {r['delete_ms']:.1f} |")
    print("\n| Fetch (`ensure_base`, 1 GiB raw) | median (MiB/s) | min-max (MiB/s) | "
          "sha512 alone (MiB/s) | `cp` + `sync` (MiB/s) |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("fetch_1g_sparse", f"sparse ({args.data_mib} MiB of data)"),
                        ("fetch_1g_dense", "random bytes")):
        r = results[name]
        print(f"| {label} | {r['mib_s']:,.0f} | {r['min_mib_s']:,.0f}-{r['max_mib_s']:,.0f} | "
              f"{r['sha512_mib_s']:,.0f} | {r['cp_sync_mib_s']:,.0f} |")
    print()
    print(json.dumps({"bench": "storage", "clones": args.clones, "rounds": args.rounds,
                      "data_mib": args.data_mib, "results": results}))


def qemu_img_version() -> str:
    out = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out.startswith("qemu-img version") else "unknown"


if __name__ == "__main__":
    main()
