"""The Ceph pieces that need no cluster: QEMU's rbd file names, monitors read from a
ceph.conf, pidfiles that name someone else's process, the CLI's refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from onestack.ceph.client import CephSettings
from onestack.ceph.cluster import Cluster, Daemon


def test_qemu_filename_escapes_colons(tmp_path: Path) -> None:
    s = CephSettings(conf="/srv/a:b/ceph.conf", keyring="/k/ring", user="onestack")
    assert s.qemu_filename("vms", "x_disk") == (
        "rbd:vms/x_disk:id=onestack:conf=/srv/a\\:b/ceph.conf:keyring=/k/ring")
    assert ":keyring=" not in CephSettings(conf="/c").qemu_filename("p", "i")


def test_monitors_from_ceph_conf(tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nfsid = x\nmon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]\n")
    assert CephSettings(conf=str(conf)).monitors() == [("127.0.0.1", 3300),
                                                       ("127.0.0.1", 6789)]
    conf.write_text("[global]\nmon host = 10.0.0.1, 10.0.0.2:6790\n")
    assert CephSettings(conf=str(conf)).monitors() == [("10.0.0.1", 6789),
                                                       ("10.0.0.2", 6790)]


def test_a_pidfile_naming_another_process_is_not_ours(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    mon = Daemon("mon", "a")
    (tmp_path / "run").mkdir()
    cluster.pidfile(mon).write_text(f"{os.getpid()}\n")  # this test, not a ceph-mon
    assert cluster.pid(mon) is None
    assert cluster.stop_daemon(mon) is False  # nothing is signalled
    cluster.pidfile(mon).write_text("not a pid\n")
    assert cluster.pid(mon) is None


def test_cli_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    onestack = str(Path(sys.executable).parent / "onestack")
    out = subprocess.run([onestack, "ceph", "status", "--state-dir", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no cluster" in out.stderr
    out = subprocess.run([onestack, "ceph", "up", "--state-dir", str(tmp_path / "c"),
                          "--osds", "2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "3 OSDs" in out.stderr
    out = subprocess.run([onestack, "up", "--state-dir", str(tmp_path / "s"), "--storage",
                          "nfs"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "local or rbd" in out.stderr
    # --purge refuses a directory that is no cluster's.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious").write_text("x")
    out = subprocess.run([onestack, "ceph", "down", "--state-dir", str(tmp_path / "d"),
                          "--purge"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and (tmp_path / "d" / "precious").exists()
