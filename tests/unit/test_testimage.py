"""Pieces of the test image build that need no packages: the DHCP hook, cpio, modules."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.services.image import testimage
from onestack.services.image.testimage import UDHCPC_SCRIPT, Package, _module_closure, _Newc

FAKE_IP = """#!/bin/sh
echo "$*" >> "$IP_LOG"
case "$*" in *"route del"*) exit 1;; esac
exit 0
"""


def run_hook(tmp_path: Path, **env: str) -> tuple[list[str], str]:
    """Run the udhcpc hook with a fake ``ip`` that records its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ip").write_text(FAKE_IP)
    (bin_dir / "ip").chmod(0o755)
    hook = tmp_path / "udhcpc.script"
    hook.write_text(UDHCPC_SCRIPT)
    log = tmp_path / "ip.log"
    log.unlink(missing_ok=True)
    state = tmp_path / "dhcp.env"
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "IP_LOG": str(log),
                "RESOLV_CONF": str(tmp_path / "resolv.conf"), "DHCP_ENV": str(state),
                "interface": "eth0", "ip": "10.0.0.5", "mask": "24", **env}
    subprocess.run(["sh", str(hook), "bound"], env=full_env, check=True, timeout=10)
    return log.read_text().splitlines(), state.read_text()


def test_dhcp_hook_applies_mtu_and_classless_routes(tmp_path: Path) -> None:
    calls, state = run_hook(tmp_path, mtu="1450", router="10.0.0.1", dns="10.0.0.2",
                            staticroutes="10.0.0.0/8 10.0.0.1 169.254.169.254/32 0.0.0.0 "
                                         "0.0.0.0/0 10.0.0.1")
    assert "addr add 10.0.0.5/24 dev eth0" in calls
    assert "link set dev eth0 mtu 1450" in calls
    assert "route replace 10.0.0.0/8 via 10.0.0.1 dev eth0" in calls
    assert "route replace 169.254.169.254/32 dev eth0" in calls
    assert "route replace 0.0.0.0/0 via 10.0.0.1 dev eth0" in calls
    # RFC 3442: with option 121 the router option is ignored.
    assert not any(c.startswith("route replace default") for c in calls)
    assert "DHCP_ADDRESS='10.0.0.5/24'" in state
    assert "169.254.169.254/32 via 0.0.0.0" in state
    assert (tmp_path / "resolv.conf").read_text() == "nameserver 10.0.0.2\n"


def test_dhcp_hook_without_option_121_uses_the_router(tmp_path: Path) -> None:
    calls, state = run_hook(tmp_path, router="10.0.0.1 10.0.0.254")
    assert "route replace default via 10.0.0.1 dev eth0" in calls
    assert not any("10.0.0.254" in c for c in calls)
    assert not any(" mtu " in c for c in calls)
    assert "DHCP_ROUTES='default via 10.0.0.1'" in state


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """Parse a newc archive: name -> (mode, data, rdev)."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (fields[1], body, (fields[9], fields[10]))


def test_newc_archive_round_trip() -> None:
    cpio = _Newc()
    cpio.directory("dev")
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    cpio.file("odd", b"abc")
    entries = read_newc(cpio.finish())
    assert entries["dev"][0] == 0o40755
    assert entries["dev/console"][0] == 0o20600 and entries["dev/console"][2] == (5, 1)
    assert entries["init"] == (0o100755, b"#!/bin/sh\n", (0, 0))
    assert entries["odd"][1] == b"abc"


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_newc_archive_reads_with_gnu_cpio(tmp_path: Path) -> None:
    cpio = _Newc()
    cpio.directory("etc")
    cpio.file("etc/hostname", b"vm\n")
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=cpio.finish(),
                             capture_output=True, check=True).stdout.decode().split()
    assert listing == ["etc", "etc/hostname"]


def test_module_closure_orders_dependencies_first(tmp_path: Path) -> None:
    def module(path: str, depends: str) -> None:
        ko = tmp_path / path
        ko.parent.mkdir(parents=True, exist_ok=True)
        ko.write_bytes(b"\x7fELF\0license=GPL\0depends=" + depends.encode() + b"\0name=x\0")

    module("kernel/drivers/net/virtio_net.ko", "net_failover,virtio_ring,virtio")
    module("kernel/drivers/net/net_failover.ko", "failover")
    module("kernel/net/core/failover.ko", "")
    module("kernel/drivers/virtio/virtio.ko", "")
    module("kernel/drivers/virtio/virtio_ring.ko", "")
    order = [p.name for p in _module_closure(tmp_path, ["virtio_net"])]
    assert order.index("failover.ko") < order.index("net_failover.ko")
    assert order[-1] == "virtio_net.ko" and len(order) == 5
    with pytest.raises(testimage.TestImageError, match="virtio_blk"):
        _module_closure(tmp_path, ["virtio_blk"])


def test_package_file_name_encodes_the_epoch() -> None:
    pkg = Package("busybox-static", "1:1.35.0-4", "amd64")
    assert pkg.deb_name == "busybox-static_1%3a1.35.0-4_amd64.deb"


def test_initramfs_holds_init_and_modules(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF fake busybox")
    ko = tmp_path / "virtio.ko"
    ko.write_bytes(b"module")
    entries = read_newc(gzip.decompress(testimage._initramfs(busybox, [ko])))
    assert entries["init"][1].startswith(b"#!/bin/busybox sh")
    assert entries["lib/modules/order"][1] == b"virtio\n"
    assert entries["dev/console"][2] == (5, 1)
    # busybox acpid runs this path on the power button (its built-in map).
    mode, handler, _ = entries["etc/acpi/PWRF/00000080"]
    assert mode == 0o100755 and handler.startswith(b"#!/bin/sh")
    assert b"poweroff -f" in handler
    # mdev's hotplug rules: virtio disks run the by-id script on add and remove
    assert b"vd[a-z]+ 0:0 660 */etc/mdev-disk" in entries["etc/mdev.conf"][1]
    assert entries["etc/mdev-disk"][0] == 0o100755
    assert b"\nmdev -d\n" in entries["init"][1]


def test_cache_key_covers_every_script_and_module(monkeypatch: pytest.MonkeyPatch) -> None:
    packages = [Package("busybox-static", "1:1.35.0-4", "amd64")]
    key = testimage._input_hash(packages)
    for name in ("INIT", "UDHCPC_SCRIPT", "ACPI_POWER_BUTTON", "SYSLINUX_CFG", "PASSWD",
                 "MDEV_CONF", "MDEV_DISK"):
        with monkeypatch.context() as patch:
            patch.setattr(testimage, name, getattr(testimage, name) + "# changed\n")
            assert testimage._input_hash(packages) != key, name
    with monkeypatch.context() as patch:
        patch.setattr(testimage, "MODULES", (*testimage.MODULES, "vsock"))
        assert testimage._input_hash(packages) != key
    assert testimage._input_hash([Package("busybox-static", "1:1.35.0-5", "amd64")]) != key


def test_elf_needed_reads_the_dynamic_section() -> None:
    needed, interp = testimage._elf_needed(Path("/bin/sh").read_bytes())
    assert "libc.so.6" in needed
    assert interp == "/" + testimage.LOADER
    with pytest.raises(testimage.TestImageError, match="ELF"):
        testimage._elf_needed(b"#!/bin/sh\n" + b"\0" * 64)


def test_shared_objects_follow_needed_from_the_packages(tmp_path: Path) -> None:
    """The closure of /bin/sh's libraries, found in a tree laid out as the packages are
    (the library directory of the host stands in for the unpacked libc6)."""
    root = tmp_path / "root"
    libdir = root / testimage.LIB_DIRS[0]
    libdir.mkdir(parents=True)
    host_libc = Path("/", testimage.LIB_DIRS[0], "libc.so.6")
    shutil.copyfile(host_libc, libdir / "libc.so.6")
    binaries = {"usr/sbin/dropbear": Path("/bin/sh").read_bytes()}
    with pytest.raises(testimage.TestImageError, match="ld-linux"):
        testimage._shared_objects(root, binaries)
    (root / "lib64").mkdir()
    shutil.copyfile(Path("/", testimage.LOADER), root / testimage.LOADER)
    found = testimage._shared_objects(root, binaries)
    assert set(found) == {f"{testimage.LIB_DIRS[0]}/libc.so.6", testimage.LOADER}
    (libdir / "libc.so.6").unlink()
    with pytest.raises(testimage.TestImageError, match="libc.so.6"):
        testimage._shared_objects(root, binaries)


def test_initramfs_holds_the_ssh_server_and_its_users(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF fake busybox")
    entries = read_newc(gzip.decompress(testimage._initramfs(
        busybox, [], {"usr/sbin/dropbear": b"\x7fELF db"},
        {"lib64/ld-linux-x86-64.so.2": b"\x7fELF ld"})))
    assert entries["usr/sbin/dropbear"] == (0o100755, b"\x7fELF db", (0, 0))
    assert entries["lib64/ld-linux-x86-64.so.2"][1] == b"\x7fELF ld"
    assert b"cirros:*:1000:1000:cirros:/home/cirros:/bin/sh" in entries["etc/passwd"][1]
    assert entries["etc/shells"][1] == b"/bin/sh\n"
    assert "etc/dropbear" in entries and "home/cirros" in entries
    init = entries["init"][1].decode()
    assert "dropbear -R -s" in init and "authorized_keys" in init


def test_init_takes_every_public_key_from_meta_data_json(tmp_path: Path) -> None:
    """The key extraction of /init, run by the host's sh on a meta_data.json as the
    metadata service writes it (the keys' trailing newline escaped)."""
    script = testimage.INIT.split("# public_keys:", 1)[1].split("> /run/keys", 1)[0]
    script = script.split("\n", 1)[1].replace("/run/meta_data.json", str(tmp_path / "md"))
    (tmp_path / "md").write_text(
        '{"uuid": "u", "public_keys": {"a": "ssh-ed25519 AAAA a@b\\n", '
        '"b": "ssh-rsa B/C+= c d"}, "keys": [{"name": "a"}], "name": "vm"}')
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == ["ssh-ed25519 AAAA a@b", "ssh-rsa B/C+= c d"]


def test_mdev_disk_script_links_by_serial_and_unlinks_on_remove(tmp_path: Path) -> None:
    """The mdev hook makes udev's virtio by-id link from the disk's serial and drops the
    disk's links on removal (when its /sys directory is already gone)."""
    sys_block, by_id = tmp_path / "sys" / "block", tmp_path / "dev" / "disk" / "by-id"
    script = tmp_path / "mdev-disk"
    script.write_text(testimage.MDEV_DISK.replace("/sys/block", str(sys_block))
                      .replace("/dev/disk/by-id", str(by_id)))
    (sys_block / "vda").mkdir(parents=True)
    (sys_block / "vda" / "serial").write_text("")  # the boot disk: no serial, no link
    (sys_block / "vdb").mkdir()
    (sys_block / "vdb" / "serial").write_text("c0ffee00-1111-4222-8\n")

    def hook(action: str, dev: str) -> None:
        env = {"PATH": os.environ["PATH"], "MDEV": dev, "ACTION": action}
        subprocess.run(["sh", str(script)], env=env, check=True, timeout=10)

    hook("add", "vda")
    assert not by_id.exists()
    hook("add", "vdb")
    assert os.readlink(by_id / "virtio-c0ffee00-1111-4222-8") == "../../vdb"
    hook("add", "vdb")  # a rescan keeps one link
    assert os.listdir(by_id) == ["virtio-c0ffee00-1111-4222-8"]
    shutil.rmtree(sys_block / "vdb")
    hook("remove", "vda")
    assert os.listdir(by_id) == ["virtio-c0ffee00-1111-4222-8"]
    hook("remove", "vdb")
    assert os.listdir(by_id) == []
