"""A Ceph cluster on one machine, from Debian's packages, for development and tests.

One monitor, one manager and ``osds`` OSDs (BlueStore on sparse files), all bound to
127.0.0.1 (of the network namespace the caller is in), run as daemons with their
pidfiles, sockets, logs and data under one state directory::

    ceph.conf                       generated; the only file a client needs, with...
    ceph.client.admin.keyring       ... the admin's key (``keyring = $dir/ceph.$name.keyring``)
    ceph.client.onestack.keyring    ... OneStack's key: rbd on the pools below only
    mon/ceph-a/                     the monitor's store (and its keyring)
    mgr/ceph-x/keyring              the manager's key
    osd/ceph-<id>/                  an OSD: ``block`` (a sparse file), its keyring
    run/<name>.pid, <name>.asok     pidfiles and admin sockets
    log/<name>.log

Pools ``images``, ``volumes`` and ``vms`` are replicated ``size 3, min_size 2`` with
the ``rbd`` application; CRUSH places replicas on distinct OSDs (not hosts: there is
one host). Daemons are found again by their pidfiles (the process's command line must
name this directory's ``ceph.conf``) and stopped by PID, never by name. ``up`` on an
existing directory starts whatever daemon is not running. See docs/design/ceph.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Pools OneStack uses, and their ``pg_num`` (a small cluster: few PGs peer fast).
POOLS = ("images", "volumes", "vms")
PG_NUM = 16
CLIENT = "onestack"
MON_ID = "a"
MGR_ID = "x"
DEFAULT_OSDS = 3
#: Size of each OSD's sparse block file (only what is written takes space).
OSD_SIZE = 20 << 30
PACKAGES = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common")


class CephError(Exception):
    """The cluster could not be made, started, stopped or asked."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(*argv: str, timeout: float = 120, input: str | None = None) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None
                              else subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise CephError(f"{argv[0]} is not installed (Debian packages: "
                        f"{' '.join(PACKAGES)}; `make ceph-deps`)") from None
    except subprocess.TimeoutExpired:
        raise CephError(f"{' '.join(argv[:3])} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise CephError(f"{' '.join(argv[:4])} failed ({proc.returncode}): {detail}")
    return proc.stdout


@dataclass
class Daemon:
    """One daemon: ``kind`` ``mon``/``mgr``/``osd`` and its id."""

    kind: str
    id: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.id}"


class Cluster:
    """The cluster whose state is in ``state_dir``; ``report`` gets progress lines."""

    def __init__(self, state_dir: Path, report: Callable[[str], None] | None = None) -> None:
        self.dir = Path(state_dir).absolute()
        self.report = report or (lambda _line: None)

    # -- paths ---------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.dir / "ceph.conf"

    def keyring(self, client: str = CLIENT) -> Path:
        return self.dir / f"ceph.client.{client}.keyring"

    @property
    def admin_keyring(self) -> Path:
        return self.keyring("admin")

    def pidfile(self, daemon: Daemon) -> Path:
        return self.dir / "run" / f"{daemon.name}.pid"

    def osd_dir(self, osd_id: str) -> Path:
        return self.dir / "osd" / f"ceph-{osd_id}"

    def exists(self) -> bool:
        return self.conf.exists() and (self.dir / "mon" / f"ceph-{MON_ID}" / "store.db").exists()

    def daemons(self) -> list[Daemon]:
        found = [Daemon("mon", MON_ID), Daemon("mgr", MGR_ID)]
        osd_root = self.dir / "osd"
        if osd_root.is_dir():
            ids = sorted(int(p.name.split("-", 1)[1]) for p in osd_root.iterdir()
                         if p.name.startswith("ceph-") and (p / "ready").exists())
            found += [Daemon("osd", str(i)) for i in ids]
        return found

    def mon_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of the monitor's v1 and v2 addresses, from ``ceph.conf``."""
        out = []
        for line in self.conf.read_text().splitlines():
            if line.strip().startswith("mon_host"):
                for part in line.split("=", 1)[1].strip(" []").split(","):
                    host, port = part.split(":", 1)[1].rsplit(":", 1)
                    out.append((host, int(port)))
        return out

    # -- processes -----------------------------------------------------------------------

    def pid(self, daemon: Daemon) -> int | None:
        """The daemon's live PID: its pidfile names a process whose command line is this
        daemon's binary with this cluster's ``ceph.conf`` (never a reused PID)."""
        try:
            pid = int(self.pidfile(daemon).read_text().split()[0])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        if (argv and argv[0].endswith(f"ceph-{daemon.kind}".encode())
                and str(self.conf).encode() in argv and daemon.id.encode() in argv):
            return pid
        return None

    def _start(self, daemon: Daemon) -> None:
        if self.pid(daemon) is not None:
            return
        self.report(f"starting {daemon.name}")
        # The daemon forks into the background once it is up and writes its pidfile.
        _run(f"ceph-{daemon.kind}", "-c", str(self.conf), "-i", daemon.id, timeout=120)
        deadline = time.monotonic() + 30
        while self.pid(daemon) is None:
            if time.monotonic() > deadline:
                raise CephError(f"{daemon.name} did not start; see "
                                f"{self.dir / 'log' / (daemon.name + '.log')}")
            time.sleep(0.1)

    def stop_daemon(self, daemon: Daemon, sig: int = signal.SIGTERM,
                    timeout: float = 30) -> bool:
        """Stop one daemon by its PID; True if it was running."""
        pid = self.pid(daemon)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self.pid(daemon) == pid:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)
        return True

    def start_daemon(self, daemon: Daemon) -> None:
        self._start(daemon)

    # -- the commands ----------------------------------------------------------------------

    def up(self, osds: int = DEFAULT_OSDS, timeout: float = 300) -> None:
        """Make the cluster if the directory has none, else start its stopped daemons;
        then wait until it is healthy."""
        if osds < 3:
            raise CephError("a cluster with size-3 pools needs 3 OSDs or more")
        started = time.monotonic()
        if self.exists():
            self.report(f"restarting the cluster in {self.dir}")
            for daemon in self.daemons():
                self._start(daemon)
        else:
            self._create(osds)
        self.wait_healthy(timeout)
        self.report(f"HEALTH_OK, all PGs active+clean after {time.monotonic() - started:.1f} s")

    def down(self, purge: bool = False) -> list[str]:
        """Stop every daemon (OSDs first) by PID; ``purge`` removes the directory."""
        stopped = [d.name for d in reversed(self.daemons()) if self.stop_daemon(d)]
        if purge and self.dir.exists():
            if not (self.conf.exists() or (self.dir / "mon").exists()):
                raise CephError(f"{self.dir} does not look like a cluster's directory; "
                                "not removing it")
            shutil.rmtree(self.dir)
        return stopped

    def ceph(self, *args: str, timeout: float = 60) -> Any:
        """``ceph <args> --format json`` as the admin, parsed."""
        out = _run("ceph", "-c", str(self.conf), "-n", "client.admin",
                   "--connect-timeout", "20", *args, "--format", "json", timeout=timeout)
        return json.loads(out) if out.strip() else None

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.ceph("status")
        return status

    def health(self) -> tuple[str, str]:
        """(status, why): ``HEALTH_OK`` with an empty why when every PG is active+clean."""
        status = self.status()
        health = status.get("health", {}).get("status", "?")
        pgmap = status.get("pgmap", {})
        states = {s["state_name"]: s["count"] for s in pgmap.get("pgs_by_state", [])}
        total = pgmap.get("num_pgs", 0)
        clean = states.get("active+clean", 0)
        osdmap = status.get("osdmap", {})
        up, num = osdmap.get("num_up_osds", 0), osdmap.get("num_osds", 0)
        checks = ", ".join(sorted(status.get("health", {}).get("checks", {})))
        why = (f"{health}{' (' + checks + ')' if checks else ''}; OSDs {up}/{num} up; "
               f"PGs {clean}/{total} active+clean"
               + (f" ({', '.join(f'{n} {s}' for s, n in states.items() if s != 'active+clean')})"
                  if total != clean else ""))
        return health, ("" if health == "HEALTH_OK" and total and clean == total else why)

    def wait_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                _health, why = self.health()
            except CephError as exc:
                why = str(exc)
            if not why:
                return
            if why != last:
                self.report(f"waiting: {why}")
                last = why
            if time.monotonic() > deadline:
                raise CephError(f"the cluster is not healthy after {timeout:.0f} s: {why}")
            time.sleep(1)

    # -- creation ----------------------------------------------------------------------------

    def _write_conf(self, fsid: str, v2: int, v1: int) -> None:
        d = self.dir
        self.conf.write_text(f"""\
# Generated by `onestack ceph up`: a one-machine cluster for development and tests.
[global]
fsid = {fsid}
mon_initial_members = {MON_ID}
mon_host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = {d}/ceph.$name.keyring
run_dir = {d}/run
pid_file = {d}/run/$name.pid
admin_socket = {d}/run/$name.asok
log_file = {d}/log/$name.log
# Replicas go to distinct OSDs: there is one host.
osd_crush_chooseleaf_type = 0
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_pool_default_pg_num = {PG_NUM}
osd_pool_default_pgp_num = {PG_NUM}
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
# Sparse files on a shared disk: do not warn about the machine's free space.
mon_data_avail_warn = 5
mon_data_avail_crit = 2

[mon]
mon_data = {d}/mon/$cluster-$id
keyring = {d}/mon/$cluster-$id/keyring

[mgr]
mgr_data = {d}/mgr/$cluster-$id
keyring = {d}/mgr/$cluster-$id/keyring

[osd]
osd_data = {d}/osd/$cluster-$id
keyring = {d}/osd/$cluster-$id/keyring
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = {OSD_SIZE}
bluestore_fsck_on_mount = false
osd_memory_target = 939524096
osd_crush_update_on_start = true
# A one-machine cluster: notice a dead OSD within seconds, re-replicate after 30 s.
osd_heartbeat_grace = 8
osd_heartbeat_interval = 2
mon_osd_down_out_interval = 30
""")

    def _create(self, osds: int) -> None:
        for name in ("run", "log", "mon", "mgr", "osd"):
            (self.dir / name).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        fsid = str(uuid.uuid4())
        v2 = _free_port()
        v1 = _free_port()
        while v1 == v2:
            v1 = _free_port()
        self._write_conf(fsid, v2, v1)
        self.report(f"creating a cluster in {self.dir} (monitor on 127.0.0.1:{v2})")
        conf = str(self.conf)
        mon_dir = self.dir / "mon" / f"ceph-{MON_ID}"
        tmp_keyring = self.dir / "mon.keyring.partial"
        _run("ceph-authtool", "--create-keyring", str(tmp_keyring), "--gen-key", "-n", "mon.",
             "--cap", "mon", "allow *")
        _run("ceph-authtool", "--create-keyring", str(self.admin_keyring), "--gen-key",
             "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
             "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        _run("ceph-authtool", str(tmp_keyring), "--import-keyring", str(self.admin_keyring))
        monmap = self.dir / "monmap"
        _run("monmaptool", "--create", "--fsid", fsid, "--addv", MON_ID,
             f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]", str(monmap))
        _run("ceph-mon", "-c", conf, "--mkfs", "-i", MON_ID, "--monmap", str(monmap),
             "--keyring", str(tmp_keyring))
        shutil.copy(tmp_keyring, mon_dir / "keyring")
        tmp_keyring.unlink()
        monmap.unlink()
        self._start(Daemon("mon", MON_ID))
        self.ceph("config", "set", "mon", "mon_warn_on_insecure_global_id_reclaim_allowed",
                  "false")
        # The manager.
        mgr_dir = self.dir / "mgr" / f"ceph-{MGR_ID}"
        mgr_dir.mkdir(exist_ok=True)
        self._auth(f"mgr.{MGR_ID}", mgr_dir / "keyring", "mon", "allow profile mgr",
                   "osd", "allow *", "mds", "allow *")
        self._start(Daemon("mgr", MGR_ID))
        # The OSDs.
        with ThreadPoolExecutor(osds) as executor:  # mkfs is mostly waiting: all at once
            for future in [executor.submit(self.add_osd) for _ in range(osds)]:
                future.result()
        # Pools and OneStack's key.
        for pool in POOLS:
            self.report(f"pool {pool}: size 3, min_size 2, application rbd")
            self.ceph("osd", "pool", "create", pool, str(PG_NUM), str(PG_NUM), "replicated")
            # size 3, min_size 2: the defaults in ceph.conf.
            self.ceph("osd", "pool", "application", "enable", pool, "rbd")
        osd_caps = ", ".join(f"profile rbd pool={p}" for p in POOLS)
        self._auth(f"client.{CLIENT}", self.keyring(), "mon", "profile rbd",
                   "osd", osd_caps, "mgr", osd_caps)
        self.keyring().chmod(0o600)

    def _auth(self, entity: str, dest: Path, *caps: str) -> None:
        """``ceph auth get-or-create`` the entity with ``caps`` and write its keyring."""
        out = _run("ceph", "-c", str(self.conf), "-n", "client.admin", "auth",
                   "get-or-create", entity, *caps)
        tmp = dest.with_name(dest.name + ".partial")
        tmp.write_text(out)
        tmp.chmod(0o600)
        os.replace(tmp, dest)

    def add_osd(self) -> str:
        """Make one more OSD (BlueStore on a sparse file) and start it; its id."""
        osd_uuid = str(uuid.uuid4())
        osd_id = str(self.ceph("osd", "new", osd_uuid)["osdid"])
        path = self.osd_dir(osd_id)
        path.mkdir(parents=True, exist_ok=True)
        self.report(f"osd.{osd_id}: BlueStore on a {OSD_SIZE >> 30} GiB sparse file")
        self._auth(f"osd.{osd_id}", path / "keyring", "mon", "allow profile osd",
                   "mgr", "allow profile osd", "osd", "allow *")
        _run("ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid,
             timeout=300)
        (path / "ready").write_text("ready\n")
        self._start(Daemon("osd", osd_id))
        return osd_id

    def client_settings(self) -> dict[str, str]:
        """What a client of this cluster is configured with (config ``[ceph]``)."""
        return {"conf": str(self.conf), "keyring": str(self.keyring()), "user": CLIENT}
