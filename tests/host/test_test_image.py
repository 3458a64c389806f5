"""The test image boots under QEMU (TCG) and does every step its init promises.

QEMU's user-mode network (slirp) gives the guest DHCP on 169.254.169.0/24 and IPv6 router
advertisements; ``guestfwd`` sends the guest's connections to 169.254.169.254:80 through
``guestfwd_relay.py`` to a small HTTP server this test runs on 127.0.0.1. Nothing touches
the host's interfaces. ``hostfwd`` forwards a loopback port to the guest's port 22, where
the stock ``ssh`` client logs in with the key the metadata handed out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from onestack.services.image.inspect import inspect_image
from onestack.services.image.testimage import MARKER, build_test_image

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                       reason="qemu-system-x86 not installed"),
]

RELAY = Path(__file__).with_name("guestfwd_relay.py")
BOOT_TIMEOUT = 180


@pytest.fixture(scope="session")
def test_image() -> Path:
    """Built once and cached (the second call is a cache hit)."""
    return build_test_image()


class Metadata(ThreadingHTTPServer):
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), MetadataHandler)


class MetadataHandler(BaseHTTPRequestHandler):
    server: Metadata

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[Metadata]:
    server = Metadata({})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The serial of the test's second (empty, raw) virtio disk: mdev links it in by-id.
DISK_SERIAL = "0123456789abcdef0123"


def boot(image: Path, port: int, console: Path, ssh_port: int = 0,
         disk: Path | None = None) -> subprocess.Popen[bytes]:
    relay = f"{sys.executable} {RELAY} {port}"
    netdev = ("user,id=n0,ipv4=on,net=169.254.169.0/24,ipv6=on,ipv6-prefix=fd00:5::,"
              f"ipv6-prefixlen=64,guestfwd=tcp:169.254.169.254:80-cmd:{relay}")
    if ssh_port:
        netdev += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    return subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nographic",
         "-display", "none", "-monitor", "none", "-nodefaults",
         "-serial", f"file:{console}",
         "-drive", f"file={image},format=qcow2,if=none,id=d0,snapshot=on",
         "-device", "virtio-blk-pci,drive=d0,bootindex=0",
         *(["-drive", f"file={disk},format=raw,if=none,id=d1",
            "-device", f"virtio-blk-pci,drive=d1,serial={DISK_SERIAL}"] if disk else []),
         "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(console: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = console.read_text(errors="replace") if console.exists() else ""
        if text in out:
            return out
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"QEMU exited with {proc.returncode}: {err}\n{out}")
        time.sleep(0.2)
    pytest.fail(f"no {text!r} on the console within {timeout} s:\n{out}")


def uptime(console_text: str, step: str) -> float:
    """The guest uptime stamped on a step's marker line."""
    match = re.search(rf"\[\s*([0-9.]+)\] {MARKER} {step}\b", console_text)
    assert match, f"no {step} marker"
    return float(match.group(1))


def markers(console_text: str) -> dict[str, str]:
    """First word after the marker -> the rest of that line."""
    found: dict[str, str] = {}
    for line in console_text.splitlines():
        if MARKER in line:
            step, _, rest = line.split(MARKER, 1)[1].strip().partition(" ")
            found.setdefault(step, rest)
    return found


def test_image_is_a_safe_small_qcow2(test_image: Path) -> None:
    info = inspect_image(test_image, "qcow2", 1 << 30)
    assert info.format == "qcow2"
    assert test_image.stat().st_size < 20 * 1024 * 1024
    assert build_test_image() == test_image  # cached


def ssh(key: Path, port: int, user: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=30", f"{user}@127.0.0.1", command],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                    reason="needs openssh-client")
def test_boots_and_runs_every_step(test_image: Path, metadata: Metadata,
                                   tmp_path: Path) -> None:
    instance = str(uuid.uuid4())
    token = uuid.uuid4().hex
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@host", "-f",
                    str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    metadata.files = {
        "/openstack/latest/meta_data.json": json.dumps(
            {"uuid": instance, "name": "Test VM", "hostname": "test-vm",
             "public_keys": {"mykey": public + "\n", "other": "ssh-rsa AAAAB3 x@y"}}
        ).encode(),
        "/openstack/latest/user_data": f"#!/bin/sh\necho user-data-says {token}\n".encode(),
    }
    console = tmp_path / "console.log"
    started = time.monotonic()
    ssh_port = free_port()
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 1 << 20)
    proc = boot(test_image, metadata.server_address[1], console, ssh_port, disk)
    try:
        wait_for(console, proc, f"{MARKER} init started", BOOT_TIMEOUT)
        to_init = time.monotonic() - started
        out = wait_for(console, proc, f"{MARKER} done", BOOT_TIMEOUT)
        as_cirros = ssh(key, ssh_port, "cirros", "id -un; hostname; cat /proc/uptime")
        as_root = ssh(key, ssh_port, "root", "id -u")
        # what Tempest's validation runs, behind its shell prologue (busybox ash)
        tempest_like = ssh(key, ssh_port, "cirros",
                           "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin; "
                           "grep -c ^processor /proc/cpuinfo; hostname; lsblk -lb --nodeps")
        # mdev (hotplug): the by-id link udev would make; the nodes mdev touched keep
        # their modes (the cirros user can still write /dev/null)
        devices = ssh(key, ssh_port, "cirros",
                      f"readlink /dev/disk/by-id/virtio-{DISK_SERIAL}; ls /dev/disk/by-id;"
                      " echo x >/dev/null && echo null-ok")
        stranger = tmp_path / "stranger"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                       check=True)
        refused = ssh(stranger, ssh_port, "cirros", "true")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    found = markers(out)
    print(f"init after {to_init:.1f} s; console markers: {found}")
    assert found["dhcp"].startswith("ok 169.254.169.")
    assert "default via 169.254.169.2" in found["dhcp"]
    assert found["ipv6"].startswith("ok fd00:5::")
    assert "169.254.169." in found["addresses"] and "fd00:5::" in found["addresses"]
    assert found["metadata"] == f"ok uuid={instance}"
    assert f"user-data-says {token}" in out
    assert found["user-data"] == "ran rc=0"
    # SSH as the cirros image offers it: both keys of public_keys installed, dropbear
    # listening; the stock client logs in as cirros and as root with the metadata key.
    assert found["ssh"] == "ok keys=2 users=cirros,root"
    assert as_cirros.returncode == 0, as_cirros.stderr
    # the host name is meta_data.json's "hostname", not the display name
    assert as_cirros.stdout.splitlines()[:2] == ["cirros", "test-vm"]
    assert tempest_like.returncode == 0, tempest_like.stderr
    lines = tempest_like.stdout.splitlines()
    assert lines[:2] == ["1", "test-vm"]
    # lsblk as Tempest reads it: the rows with "disk" under the TYPE header
    type_at = lines[2].find("TYPE")
    assert type_at > 0, lines
    assert [line.split()[0] for line in lines[3:]
            if line[type_at:type_at + 4] == "disk"] == ["vda", "vdb"], lines
    assert as_root.returncode == 0 and as_root.stdout.strip() == "0", as_root.stderr
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert devices.returncode == 0, devices.stderr
    # the boot disk has no serial: no link for it, as with udev
    assert devices.stdout.split() == ["../../vdb", f"virtio-{DISK_SERIAL}", "null-ok"]
    print(f"ssh ok marker at {uptime(out, 'ssh')} s of guest uptime; "
          f"done at {uptime(out, 'done')} s")
    assert "/openstack/latest/user_data" in metadata.requests
