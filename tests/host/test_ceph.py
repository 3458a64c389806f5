"""The rbd backend on a real Ceph cluster (``onestack ceph up``) inside a host namespace.

The module makes one network namespace (tests/host/harness.py), starts a throwaway
cluster in it (1 monitor, 1 manager, 3 OSDs on sparse files, bound to the namespace's
loopback) and an ``onestack up --storage rbd`` on it, and removes both at the end: the
daemons by PID, the directory, the namespace. A guest boots from an RBD clone of an
image's snapshot (QEMU under TCG, through librbd) and writes a pattern in a loop while
one OSD is killed: no write fails, the data reads back with the checksum written, and
the cluster returns to HEALTH_OK with every PG active+clean in 3 replicas once the OSD
is back.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.services.image.testimage import build_test_image
from tests.host.harness import ONESTACK, NetnsHost, openstack, wait_for

pytestmark = [
    pytest.mark.root, pytest.mark.qemu, pytest.mark.ceph,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, Ceph daemons)"),
    pytest.mark.skipif(shutil.which("ceph-osd") is None or shutil.which("ceph-mon") is None,
                       reason="needs Ceph (make ceph-deps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs QEMU"),
]

rados = pytest.importorskip("rados", reason="needs python3-rados in the venv (make ceph-deps)")
rbd = pytest.importorskip("rbd", reason="needs python3-rbd in the venv (make ceph-deps)")

GiB = 1 << 30
#: As the rbd drivers make them: with an object map, removing a 1 TiB image touches only
#: the objects that exist (without it, all 262144 possible ones).
FEATURES = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
            | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF)
#: Where the guest writes its pattern (past the test image's FAT partition) and how much.
WRITE_OFFSET_MIB = 512
WRITE_MIB = 16
WRITES = 40
USER_DATA = f"""#!/bin/sh
dd if=/dev/urandom of=/tmp/pattern bs=1M count={WRITE_MIB} 2>/dev/null
echo "ONESTACK-CEPH written-md5 $(md5sum </tmp/pattern | cut -d' ' -f1)"
i=1
while [ $i -le {WRITES} ]; do
    dd if=/tmp/pattern of=/dev/vda bs=1M seek={WRITE_OFFSET_MIB} conv=fsync 2>/dev/null
    echo "ONESTACK-CEPH write $i rc=$?"
    i=$((i + 1))
done
sync
echo 3 > /proc/sys/vm/drop_caches
echo "ONESTACK-CEPH read-md5 $(dd if=/dev/vda bs=1M skip={WRITE_OFFSET_MIB} \\
    count={WRITE_MIB} 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "ONESTACK-CEPH end"
"""


class Ceph:
    """The module's cluster, as the admin (rados/rbd bindings) and by its CLI."""

    def __init__(self, state_dir: Path) -> None:
        from onestack.ceph.cluster import Cluster

        self.cluster = Cluster(state_dir, report=lambda line: print(f"ceph: {line}"))
        self._rados: Any = None

    def connect(self) -> None:
        self._rados = rados.Rados(conffile=str(self.cluster.conf), rados_id="admin")
        self._rados.connect(timeout=30)

    def close(self) -> None:
        if self._rados is not None:
            self._rados.shutdown()
            self._rados = None

    def ioctx(self, pool: str) -> Any:
        return self._rados.open_ioctx(pool)

    def image(self, pool: str, name: str, **kwargs: Any) -> Any:
        return rbd.Image(self.ioctx(pool), name, **kwargs)


@pytest.fixture(scope="module")
def image_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test image as raw (clones are made from raw images, as Nova requires)."""
    qcow2 = build_test_image()
    raw = tmp_path_factory.mktemp("img") / "test.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)], check=True)
    return raw


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory,
        image_raw: Path) -> Iterator[tuple[NetnsHost, Ceph]]:
    base = tmp_path_factory.mktemp("ceph")
    host = NetnsHost(base / "host", env={"ONESTACK_HOST_ACCEL": "tcg"})
    ceph = Ceph(base / "cluster")
    try:
        host.create()  # this thread now lives in the namespace: so will the daemons
        started = time.monotonic()
        ceph.cluster.up(osds=3, timeout=240)
        print(f"cluster up in {time.monotonic() - started:.1f} s")
        ceph.connect()
        s = ceph.cluster.client_settings()
        host.env.update({"ONESTACK_HOST_STORAGE_DRIVER": "rbd", "ONESTACK_IMAGE_STORE": "rbd",
                         "ONESTACK_VOLUME_BACKEND": "rbd",
                         "ONESTACK_CEPH_CONF": s["conf"], "ONESTACK_CEPH_KEYRING": s["keyring"],
                         "ONESTACK_CEPH_USER": s["user"]})
        host.start()
        yield host, ceph
    finally:
        ceph.close()
        try:
            host.stop()
        finally:
            try:
                print(f"stopped {ceph.cluster.down(purge=True)}")  # by PID, then rm -r
            finally:
                host.cleanup()


@pytest.fixture(scope="module")
def cloud(env: tuple[NetnsHost, Ceph], image_raw: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    host, _ = env
    tmp = tmp_path_factory.mktemp("cloud")
    image = openstack(host, "image", "create", "--disk-format", "raw", "--container-format",
                      "bare", "--file", str(image_raw), "--public", "testraw")
    openstack(host, "network", "create", "net1")
    openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
              "10.30.0.0/24", "sub4")
    openstack(host, "subnet", "create", "--network", "net1", "--ip-version", "6",
              "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "--subnet-range",
              "fd00:30::/64", "sub6")
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    return {"image": image["id"], "user_data": user_data, "tmp": tmp}


def console(host: NetnsHost, server: str) -> str:
    return openstack(host, "console", "log", "show", server, json_output=False)


def wait_console(host: NetnsHost, server: str, pattern: str, timeout: float = 300) -> str:
    def seen() -> str | None:
        text = console(host, server)
        return text if re.search(pattern, text) else None
    try:
        return wait_for(seen, timeout, interval=2, what=f"{pattern!r} on {server}")
    except AssertionError:
        print(console(host, server)[-3000:])
        print(host.log_tail())
        raise


def test_cluster_is_healthy_with_three_replicas(env: tuple[NetnsHost, Ceph]) -> None:
    _, ceph = env
    health, why = ceph.cluster.health()
    assert (health, why) == ("HEALTH_OK", "")
    pools = {p["pool_name"]: p for p in ceph.cluster.ceph("osd", "pool", "ls", "detail")}
    for name in ("images", "volumes", "vms"):
        assert pools[name]["size"] == 3 and pools[name]["min_size"] == 2, pools[name]
        assert "rbd" in pools[name]["application_metadata"]
    osds = ceph.cluster.status()["osdmap"]
    assert osds["num_osds"] == osds["num_up_osds"] == osds["num_in_osds"] == 3
    # The CLI says the same, and lists every daemon with its PID.
    out = subprocess.run([ONESTACK, "ceph", "status", "--state-dir", str(ceph.cluster.dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEALTH_OK" in out.stdout and out.stdout.count("pid ") == 5
    # `up` on an existing directory starts what is not running (the manager, stopped by
    # its PID here) and leaves the rest alone.
    from onestack.ceph.cluster import Daemon

    mon_pid = ceph.cluster.pid(Daemon("mon", "a"))
    assert ceph.cluster.stop_daemon(Daemon("mgr", "x"))
    assert ceph.cluster.pid(Daemon("mgr", "x")) is None
    out = subprocess.run([ONESTACK, "ceph", "up", "--state-dir", str(ceph.cluster.dir)],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "starting mgr.x" in out.stderr and "starting mon.a" not in out.stderr
    assert ceph.cluster.pid(Daemon("mgr", "x")) is not None
    assert ceph.cluster.pid(Daemon("mon", "a")) == mon_pid


def test_image_upload_lands_in_rbd_with_a_protected_snapshot(
        env: tuple[NetnsHost, Ceph], cloud: dict[str, Any], image_raw: Path) -> None:
    host, ceph = env
    image_id = cloud["image"]
    image = ceph.image("images", image_id, read_only=True)
    try:
        snaps = [s["name"] for s in image.list_snaps()]
        assert snaps == ["snap"]
        assert image.is_protected_snap("snap")
        assert image.size() == image_raw.stat().st_size
    finally:
        image.close()
    assert not (host.state_dir / "images" / image_id).exists()  # not a local file
    saved = cloud["tmp"] / "saved.raw"
    openstack(host, "image", "save", "--file", str(saved), image_id, json_output=False)
    assert hashlib.md5(saved.read_bytes()).hexdigest() == \
        hashlib.md5(image_raw.read_bytes()).hexdigest()


def _clone_seconds(ceph: Ceph, parent: str, n: int = 3) -> float:
    """Median time of ``n`` clones of ``images/<parent>@snap`` into ``vms``."""
    times = []
    images_io, vms_io = ceph.ioctx("images"), ceph.ioctx("vms")
    try:
        for i in range(n):
            started = time.perf_counter()
            rbd.RBD().clone(images_io, parent, "snap", vms_io, f"{parent}-clone{i}",
                            features=FEATURES)
            times.append(time.perf_counter() - started)
        for i in range(n):
            rbd.RBD().remove(vms_io, f"{parent}-clone{i}")
    finally:
        images_io.close()
        vms_io.close()
    return sorted(times)[n // 2]


def test_clone_time_is_the_same_for_1_gib_and_1_tib(env: tuple[NetnsHost, Ceph]) -> None:
    _, ceph = env
    io = ceph.ioctx("images")
    try:
        for name, size in (("sparse-1g", GiB), ("sparse-1t", 1024 * GiB)):
            rbd.RBD().create(io, name, size, old_format=False, features=FEATURES)
            with rbd.Image(io, name) as image:
                image.write(b"x" * 4096, 0)
                image.write(b"y" * 4096, size - 4096)  # the last block: a real 1 TiB
                image.create_snap("snap")
                image.protect_snap("snap")
        small = _clone_seconds(ceph, "sparse-1g")
        large = _clone_seconds(ceph, "sparse-1t")
        print(f"clone: 1 GiB {small * 1000:.0f} ms, 1 TiB {large * 1000:.0f} ms")
        # Constant time: only metadata is written whatever the size.
        assert large < max(3 * small, small + 0.5), (small, large)
        assert large < 5.0
    finally:
        for name in ("sparse-1g", "sparse-1t"):
            with rbd.Image(io, name) as image:
                image.unprotect_snap("snap")
                image.remove_snap("snap")
            rbd.RBD().remove(io, name)
        io.close()


@pytest.mark.timeout(900)
def test_guest_boots_from_a_clone_and_survives_an_osd_kill(
        env: tuple[NetnsHost, Ceph], cloud: dict[str, Any]) -> None:
    host, ceph = env
    server = openstack(host, "server", "create", "--image", "testraw", "--flavor", "m1.nano",
                       "--network", "net1", "--user-data", str(cloud["user_data"]), "--wait",
                       "cephvm", timeout=300)
    assert server["status"] == "ACTIVE"
    uuid = server["id"]
    disk = ceph.image("vms", f"{uuid}_disk", read_only=True)
    try:
        pool, parent, snap = disk.parent_info()[:3]
        assert (pool, parent, snap) == ("images", cloud["image"], "snap")
        assert disk.size() == GiB  # grown to the flavor's 1 GiB
    finally:
        disk.close()
    # QEMU opens it through librbd, no local file.
    pid = next(p for f, p in host.pidfile_processes().items() if f.parent.name == uuid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert f"rbd:vms/{uuid}_disk" in cmdline

    wait_console(host, "cephvm", r"ONESTACK-CEPH write 2 rc=")
    victim = ceph.cluster.daemons()[-1]
    assert victim.kind == "osd"
    assert ceph.cluster.stop_daemon(victim, sig=signal.SIGKILL)
    # The monitor marks it down (heartbeat grace 8 s); the guest goes on writing.
    wait_for(lambda: ceph.cluster.status()["osdmap"]["num_up_osds"] == 2, 90, interval=1,
             what="the killed OSD marked down")
    before = len(re.findall(r"ONESTACK-CEPH write \d+", console(host, "cephvm")))
    text = wait_console(host, "cephvm", r"ONESTACK-CEPH end", timeout=400)
    writes = re.findall(r"ONESTACK-CEPH write (\d+) rc=(\d+)", text)
    assert len(writes) == WRITES and all(rc == "0" for _, rc in writes), writes
    written = re.search(r"ONESTACK-CEPH written-md5 ([0-9a-f]{32})", text)
    read = re.search(r"ONESTACK-CEPH read-md5 ([0-9a-f]{32})", text)
    assert written and read and written.group(1) == read.group(1)
    # Some of them were made while the cluster had 2 of its 3 OSDs (degraded PGs).
    assert before < WRITES, f"all {WRITES} writes were done before the OSD was marked down"
    assert ceph.cluster.status()["osdmap"]["num_up_osds"] == 2

    ceph.cluster.start_daemon(victim)
    ceph.cluster.wait_healthy(timeout=180)
    assert ceph.cluster.health() == ("HEALTH_OK", "")
    assert ceph.cluster.status()["osdmap"]["num_up_osds"] == 3
    # What the cluster holds is what the guest wrote, read from the host through librbd.
    disk = ceph.image("vms", f"{uuid}_disk", read_only=True)
    try:
        data = disk.read(WRITE_OFFSET_MIB << 20, WRITE_MIB << 20)
    finally:
        disk.close()
    assert hashlib.md5(data).hexdigest() == written.group(1)

    # A snapshot of the server (qcow2 exported from the RBD disk) becomes an image that is
    # itself an RBD image with its protected snapshot.
    snap = openstack(host, "server", "image", "create", "--name", "cephsnap", "--wait",
                     "cephvm", timeout=300)
    assert openstack(host, "image", "show", snap["id"])["status"] == "active"
    image = ceph.image("images", snap["id"], read_only=True)
    try:
        assert [s["name"] for s in image.list_snaps()] == ["snap"]
    finally:
        image.close()
    openstack(host, "image", "delete", snap["id"], json_output=False)

    # A volume from the image (the rbd volume backend: a clone of the same snapshot),
    # attached to the running guest: QEMU opens it through librbd (a watcher on it).
    vol = openstack(host, "volume", "create", "--size", "1", "--image", cloud["image"],
                    "cephvol")["id"]
    wait_volume(host, vol, "available")
    image = ceph.image("volumes", f"volume-{vol}", read_only=True)
    try:
        assert image.parent_info()[:3] == ("images", cloud["image"], "snap")
    finally:
        image.close()
    openstack(host, "server", "add", "volume", "cephvm", vol, json_output=False)
    wait_volume(host, vol, "in-use")
    wait_for(lambda: watchers(ceph, f"volume-{vol}") >= 1, 60, interval=1,
             what="QEMU opening the volume")
    openstack(host, "server", "remove", "volume", "cephvm", vol, json_output=False)
    wait_volume(host, vol, "available")

    # The image deleted while clones live: its data is set aside, then goes with the
    # last clone.
    openstack(host, "image", "delete", cloud["image"], json_output=False)
    assert pool_names(ceph, "images") == [f"{cloud['image']}.deleted"]
    openstack(host, "volume", "delete", vol, json_output=False)
    wait_for(lambda: pool_names(ceph, "volumes") == [], 60, interval=1, what="volume gone")
    assert pool_names(ceph, "images") == [f"{cloud['image']}.deleted"]  # the disk uses it
    openstack(host, "server", "delete", "--wait", "cephvm", json_output=False, timeout=120)
    assert pool_names(ceph, "vms") == []
    assert pool_names(ceph, "images") == []


def wait_volume(host: NetnsHost, volume: str, status: str, timeout: float = 120) -> None:
    def reached() -> bool:
        current = openstack(host, "volume", "show", volume)["status"]
        if current.startswith("error") and not status.startswith("error"):
            raise AssertionError(f"volume {volume} went to {current}:\n{host.log_tail()}")
        return bool(current == status)
    wait_for(reached, timeout, interval=1, what=f"volume {volume} {status}")


def watchers(ceph: Ceph, name: str) -> int:
    image = ceph.image("volumes", name, read_only=True)
    try:
        return len(list(image.watchers_list()))
    finally:
        image.close()


def pool_names(ceph: Ceph, pool: str) -> list[str]:
    io = ceph.ioctx(pool)
    try:
        return sorted(rbd.RBD().list(io))
    finally:
        io.close()


def test_volume_backend_rbd(env: tuple[NetnsHost, Ceph], image_raw: Path,
                            tmp_path: Path) -> None:
    """Volumes in the ``volumes`` pool: from an image as a clone of its snapshot,
    snapshots as RBD snapshots, a volume from a snapshot, connection info that
    QEMU's rbd driver opens, and a backup and restore through librbd."""
    import uuid

    from onestack.common.config import CephConfig, Config
    from onestack.services.volume.backends import load_backend
    from onestack.services.volume.backends.base import ImageData

    _, ceph = env
    s = ceph.cluster.client_settings()
    config = Config()
    config.ceph = CephConfig(conf=s["conf"], keyring=s["keyring"], user=s["user"])
    backend = load_backend("rbd", config)
    base = tmp_path
    # An image as the image service stores it, to clone from.
    image_id = str(uuid.uuid4())
    backend.client.write_image("images", image_id, image_raw)  # type: ignore[attr-defined]
    data = image_raw.read_bytes()
    vol, snap, vol2, vol3 = (str(uuid.uuid4()) for _ in range(4))
    try:
        backend.create_from_image(vol, ImageData(
            id=image_id, disk_format="raw", size=len(data), virtual_size=len(data),
            open=lambda: iter([data])), 1)
        v = ceph.image("volumes", f"volume-{vol}", read_only=True)
        try:
            assert v.parent_info()[:3] == ("images", image_id, "snap")  # a clone
            assert v.size() == GiB
        finally:
            v.close()
        backend.create_snapshot(snap, vol)
        assert backend.list_snapshots() == [snap]
        backend.create_from_snapshot(vol2, snap, vol, 2)
        info = backend.connection_info(vol2, None)
        assert info["driver_volume_type"] == "rbd"
        assert info["data"]["name"] == f"volumes/volume-{vol2}"
        assert info["data"]["auth_username"] == "onestack" and info["data"]["hosts"]
        # QEMU opens it from the connection info, and sees the image's bytes.
        filename = backend.settings.qemu_filename(  # type: ignore[attr-defined]
            *info["data"]["name"].split("/"))
        out = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(image_raw),
                              filename], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Images are identical" in out.stdout, out
        backend.extend(vol2, 3)
        assert backend.client.size("volumes", f"volume-{vol2}") == 3 * GiB  # type: ignore
        # A backup (posix driver) reads the image through librbd, a restore writes a
        # new image; it then holds the same bytes. The snapshot backs up likewise.
        from onestack.services.volume.backup_drivers.posix import PosixBackupDriver

        driver = PosixBackupDriver(config, root=base / "backups")
        with backend.open_data(vol2) as source:
            made = driver.backup("backups/full", source, None, lambda done, total: None)
        assert made.object_count >= 1
        with backend.open_data(vol, snapshot_id=snap) as source:
            driver.backup("backups/snap", source, "backups/full", lambda done, total: None)
        backend.create(vol3, 3)
        with backend.open_data(vol3, write=True) as target:
            driver.restore("backups/full", target, lambda done, total: None)
        out = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(image_raw),
                              backend.settings.qemu_filename(  # type: ignore[attr-defined]
                                  "volumes", f"volume-{vol3}")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0 and "Images are identical" in out.stdout, out
    finally:
        backend.delete(vol3)
        backend.delete(vol2)
        backend.delete_snapshot(snap, vol)
        backend.delete(vol)
        backend.client.remove_image("images", image_id)  # type: ignore[attr-defined]
    assert backend.list_volumes() == []
    assert image_id not in pool_names(ceph, "images")
