"""A tiny BIOS-bootable qcow2 test image, built from Debian packages only.

``build_test_image`` fetches its packages with ``apt-get download`` (the cloud kernel,
busybox-static, syslinux-common, and Debian's dropbear SSH server with the shared
libraries it links), unpacks them with ``dpkg-deb -x`` into a scratch directory (nothing
is installed on the host), and assembles:

- an initramfs (cpio newc, gzip; written here, so device nodes need no root) holding
  busybox, the virtio and ACPI power button modules, an ``/init`` script, acpid's
  power button handler, and ``dropbear``/``dropbearkey`` with only the shared objects
  their ``DT_NEEDED`` entries reach (and the dynamic loader), read from the ELF files;
- a raw disk with syslinux's MBR and one FAT16 partition (``mkfs.fat --offset``,
  ``mcopy``, ``syslinux --offset --install``: no root, no loop devices) holding the
  kernel, the initramfs and ``syslinux.cfg``;
- the qcow2 (``qemu-img convert``; not compressed: SYSLINUX reads the kernel in small
  pieces and QEMU inflates a whole compressed cluster for each, which made loading the
  kernel take about 1 s instead of 0.3 s under TCG).

The guest's init starts busybox ``mdev -d`` (hotplug over netlink: it keeps udev's
``/dev/disk/by-id/virtio-<serial>`` links for virtio disks as they come and go), busybox
``acpid`` (the ACPI power button powers the guest off at once, as a cloud image does),
brings eth0 up with DHCP (honouring the MTU and
classless static routes options), fetches the OpenStack metadata from 169.254.169.254
over IPv4 as soon as it has an address (as cloud-init does), then waits for its IPv6
SLAAC address, prints its addresses, fetches and runs a ``#!`` user data, and prints a
``[<uptime>] ONESTACK-TEST: ...`` line on the serial console for every step (the guest's
uptime in seconds: where its boot time goes).

SSH, as the cirros image offers it: the public key(s) of the metadata service
(``public_keys`` of ``meta_data.json``; the EC2 ``public-keys/0/openssh-key`` when the
OpenStack tree is not there) go to ``authorized_keys`` of both login users, ``cirros``
(uid 1000, what Tempest's ``image_ssh_user`` defaults to) and ``root``; dropbear then
listens on port 22 (IPv4 and IPv6; key logins only, no passwords) and the console says
``ssh ok``. Host keys are made by dropbear itself on the first connection (``-R``), one
per guest, so booting pays nothing for them.

Results are cached under ``<cache>/test-image/`` keyed on a hash of every input (the
package versions, the scripts, this module's build constants), so a second build is
instant. The cache directory is ``$ONESTACK_CACHE_DIR`` if set, else ``build/`` of the
source checkout when running from one, else ``$XDG_CACHE_HOME/onestack``
(``~/.cache/onestack``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from onestack.common.errors import OneStackError

#: Bump when the layout changes in a way the hashed inputs do not show.
BUILD_VERSION = "5"
KERNEL_PACKAGE = "linux-image-cloud-amd64"
#: dropbear-bin and the packages holding the shared objects it needs (which files are
#: taken is decided by the binaries' DT_NEEDED entries, not by this list).
SSH_PACKAGES = ("dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1",
                "libgmp10", "zlib1g")
PACKAGES = ("busybox-static", "syslinux-common", *SSH_PACKAGES)
#: The SSH binaries copied from dropbear-bin (path in the package and in the guest).
SSH_BINARIES = ("usr/sbin/dropbear", "usr/bin/dropbearkey")
#: Where Debian's dynamic loader and libraries live (the loader's built-in search path).
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "lib64/ld-linux-x86-64.so.2"
#: Guest users: cirros (as the cirros image, Tempest's default image_ssh_user) and root.
PASSWD = ("root:*:0:0:root:/root:/bin/sh\n"
          "cirros:*:1000:1000:cirros:/home/cirros:/bin/sh\n")
GROUP = "root:x:0:\ncirros:x:1000:\n"
#: Kernel modules the guest needs (their dependencies are added from .modinfo): virtio,
#: the ACPI power button as an input device (``button``, ``evdev``) for acpid, and the
#: virtio RNG (the hypervisor gives one; dropbear's first key wants the pool ready).
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "button", "evdev", "virtio_rng")
#: Host tools and the Debian package each comes from.
HOST_TOOLS = {"apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg",
              "mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux",
              "qemu-img": "qemu-utils"}

FAT_MIB = 24  # the kernel is 14 MB (LZ4) and the initramfs about 3.5 MB
PART_START = 2048  # sectors: the partition starts at 1 MiB
MARKER = "ONESTACK-TEST:"
FILE_TIME = 1_700_000_000  # mtime of the files on the FAT (2023-11-14)

#: ``cryptomgr.notests``: the crypto self-tests hold up the end of the kernel's boot by
#: about 0.2 s under TCG.
KERNEL_CMDLINE = "console=ttyS0 quiet panic=10 cryptomgr.notests"

SYSLINUX_CFG = f"""\
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND {KERNEL_CMDLINE}
"""

INIT = r"""#!/bin/busybox sh
# OneStack test image init: ACPI power button, network, metadata, user data; one marker
# line per step, stamped with the guest's uptime.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp
mount -t devpts devpts /dev/pts 2>/dev/null
exec </dev/console >/dev/console 2>&1
mark() { read -r up _ </proc/uptime; echo "[$up] ONESTACK-TEST: $*"; }
mark "init started kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
# Hotplug: busybox mdev as a netlink daemon (the kernel has no uevent helper for
# /proc/sys/kernel/hotplug). It scans /sys once, then follows uevents; /etc/mdev.conf
# keeps /dev/disk/by-id/virtio-<serial> for every virtio disk, as udev does.
mdev -d
# The ACPI power button (button.ko) reaches acpid through evdev; acpid runs
# /etc/acpi/PWRF/00000080, which powers off: a stop takes a second, not a timeout.
if grep -qs "Power Button" /sys/class/input/input*/name \
        && acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid; then
    mark "acpid listening for the power button"
else
    mark "acpid not started (no ACPI power button)"
fi
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e /sys/class/net/eth0 ]; then
    mark "no eth0 (needs a virtio-net NIC)"
else
    # No random wait (up to 1 s) before each IPv6 duplicate address detection (one for
    # the link-local address, one for the SLAAC one).
    echo 0 > /proc/sys/net/ipv6/conf/eth0/router_solicitation_delay
    ip link set eth0 up
    if udhcpc -i eth0 -s /etc/udhcpc.script -O mtu -O staticroutes -t 10 -T 2 -n -q \
            >/tmp/udhcpc.log 2>&1; then
        . /run/dhcp.env
        mark "dhcp ok $DHCP_ADDRESS mtu $(cat /sys/class/net/eth0/mtu) routes $DHCP_ROUTES"
    else
        mark "dhcp failed"; cat /tmp/udhcpc.log
    fi
fi

# Metadata over IPv4 as soon as DHCP is done (as cloud-init does), while IPv6 settles.
md=http://169.254.169.254/openstack/latest
fetch() {
    # Debian's busybox wget segfaults with -T: bound it with timeout instead.
    n=0
    while [ $n -lt 5 ]; do
        rm -f "$2"
        timeout 10 wget -q -O "$2" "$1" 2>/dev/null && return 0
        n=$((n + 1)); sleep 1
    done
    return 1
}
if fetch "$md/meta_data.json" /run/meta_data.json; then
    uuid=$(sed -n 's/.*"uuid" *: *"\([^"]*\)".*/\1/p' /run/meta_data.json)
    # The host name as cirros takes it: meta_data.json's "hostname" (Nova's sanitised,
    # lower-case form of the server name), the display name only when there is none.
    name=$(sed -n 's/.*"hostname" *: *"\([^"]*\)".*/\1/p' /run/meta_data.json)
    [ -n "$name" ] || name=$(sed -n 's/.*"name" *: *"\([^"]*\)".*/\1/p' /run/meta_data.json)
    [ -n "$name" ] && hostname "$name"
    mark "metadata ok uuid=$uuid"
    # public_keys: {"name": "ssh-... key", ...} (one key per line; \n and \/ unescaped)
    sed -n 's/.*"public_keys" *: *{\([^}]*\)}.*/\1/p' /run/meta_data.json \
        | sed 's/", *"/"\n"/g' | sed -n 's/^ *"[^"]*" *: *"\(.*\)" *$/\1/p' \
        | sed 's/\\n/\n/g; s/\\\//\//g' | grep -v '^ *$' > /run/keys
else
    mark "metadata failed"
    # The EC2 tree's key, as the cirros image reads it (one try: metadata is not there).
    timeout 10 wget -q -O /run/keys \
        http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key 2>/dev/null
fi
[ -f /run/keys ] || : > /run/keys
for home in /root /home/cirros; do
    mkdir -p "$home/.ssh"
    cp /run/keys "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
done
chown -R cirros:cirros /home/cirros
# -R: host keys made on the first connection (none at boot); -s: keys only, no passwords.
dropbear -R -s -E -p 22 -P /run/dropbear.pid 2>/run/dropbear.log
i=0
while ! netstat -ltn 2>/dev/null | grep -q ':22 ' && [ $i -lt 50 ]; do
    sleep 0.05; i=$((i + 1))
done
if netstat -ltn 2>/dev/null | grep -q ':22 '; then
    mark "ssh ok keys=$(grep -c . /run/keys) users=cirros,root"
else
    mark "ssh failed"; cat /run/dropbear.log
fi

if [ -e /sys/class/net/eth0 ]; then
    i=0
    v6=""
    while [ $i -lt 100 ]; do
        # SLAAC: any address beyond link scope (QEMU's user network hands out fec0::/64,
        # which is site scope), once duplicate address detection is over.
        v6=$(ip -o -6 addr show dev eth0 | grep -v -e "scope link" -e tentative \
             | awk '{print $4}' | head -n 1)
        [ -n "$v6" ] && break
        sleep 0.1; i=$((i + 1))
    done
    if [ -n "$v6" ]; then mark "ipv6 ok $v6"; else mark "ipv6 none"; fi
fi
mark "addresses $(ip -o addr show | awk '$2 != "lo" {printf "%s ", $4}')"

if timeout 10 wget -q -O /run/user_data "$md/user_data" 2>/dev/null \
        && [ -s /run/user_data ]; then
    if [ "$(head -c 2 /run/user_data)" = "#!" ]; then
        chmod +x /run/user_data
        /run/user_data
        mark "user-data ran rc=$?"
    else
        mark "user-data present, not a script"
    fi
else
    mark "user-data none"
fi
mark "done uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do setsid cttyhack sh -l; sleep 1; done
"""

#: Run by busybox acpid on the power button (its built-in map: KEY_POWER ->
#: ``PWRF/00000080`` under its config directory, executed directly). acpid's output goes
#: to its log, so the marker goes to the console itself.
ACPI_POWER_BUTTON = r"""#!/bin/sh
read -r up _ </proc/uptime
echo "[$up] ONESTACK-TEST: acpi power button, powering off" >/dev/console
exec poweroff -f
"""

#: busybox mdev's rules: every virtio disk runs ``/etc/mdev-disk`` when it comes and
#: before it goes (``*``). mdev also sets the mode of every node it meets (devtmpfs
#: made them already), 0660 by default: the world-usable ones keep 0666.
MDEV_CONF = ("null|zero|full|random|urandom|tty|ptmx 0:0 666\n"
             "vd[a-z]+ 0:0 660 */etc/mdev-disk\n")

#: The by-id link udev's 60-persistent-storage rules make for a virtio disk:
#: ``/dev/disk/by-id/virtio-<serial>`` -> ``../../vdX`` (no link without a serial). On
#: removal ``/sys/block/vdX`` is already gone, so the links pointing at it are dropped.
MDEV_DISK = r"""#!/bin/sh
d=/dev/disk/by-id
if [ "$ACTION" = remove ]; then
    for l in "$d"/virtio-*; do
        [ "$(readlink "$l")" = "../../$MDEV" ] && rm -f "$l"
    done
else
    serial=$(cat "/sys/block/$MDEV/serial" 2>/dev/null)
    [ -n "$serial" ] || exit 0
    mkdir -p "$d"
    ln -sfn "../../$MDEV" "$d/virtio-$serial"
fi
exit 0
"""

#: busybox has no ``lsblk``; Tempest's volume tests count a guest's disks with
#: ``lsblk -lb --nodeps`` (the rows whose TYPE column says ``disk``). This prints that
#: listing from /sys/block (whole disks, sizes in bytes), whatever the options.
LSBLK = r"""#!/bin/sh
f="%-7s %-7s %2s %14s %2s %-4s %s\n"
printf "$f" NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINTS
for d in /sys/block/*; do
    n=${d##*/}
    case $n in loop*|ram*|zram*) continue ;; sr*) t=rom ;; *) t=disk ;; esac
    printf "$f" "$n" "$(cat "$d/dev")" "$(cat "$d/removable")" \
        "$(($(cat "$d/size") * 512))" "$(cat "$d/ro")" "$t" ""
done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
# udhcpc hook: address, MTU (option 26), classless static routes (option 121, which
# replaces the router option per RFC 3442), DNS. Writes /run/dhcp.env for /init.
resolv=${RESOLV_CONF:-/etc/resolv.conf}
state=${DHCP_ENV:-/run/dhcp.env}
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
    routes=""
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            if [ "$2" = "0.0.0.0" ]; then
                ip route replace "$1" dev "$interface"
            else
                ip route replace "$1" via "$2" dev "$interface"
            fi
            routes="$routes$1 via $2, "
            shift 2
        done
    elif [ -n "$router" ]; then
        for r in $router; do
            ip route replace default via "$r" dev "$interface"
            routes="${routes}default via $r, "
            break
        done
    fi
    : > "$resolv"
    for d in $dns; do echo "nameserver $d" >> "$resolv"; done
    echo "DHCP_ADDRESS='$ip/$mask'" > "$state"
    echo "DHCP_ROUTES='${routes%, }'" >> "$state"
    ;;
esac
exit 0
"""


class TestImageError(OneStackError):
    """The test image could not be built (the message says which step and why)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` writes (an epoch's ':' as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


Report = Callable[[str], None]


def default_cache_dir() -> Path:
    """``$ONESTACK_CACHE_DIR``, else ``build/`` of a source checkout, else XDG cache."""
    env = os.environ.get("ONESTACK_CACHE_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "onestack").is_dir():
        return checkout / "build"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "onestack"


def cached_test_image(cache_dir: Path | None = None) -> Path | None:
    """The newest test image already built (never builds one), or None."""
    images = sorted(((cache_dir or default_cache_dir()) / "test-image").glob(
        "onestack-test-*.qcow2"), key=lambda p: p.stat().st_mtime)
    return images[-1] if images else None


def build_test_image(output: Path | None = None, cache_dir: Path | None = None,
                     report: Report | None = None) -> Path:
    """Build (or take from the cache) the test image; return its path.

    With ``output`` the image is copied there and that path is returned.
    ``report`` is called with a short description as each step starts.
    """
    step = report or (lambda _message: None)
    cache = cache_dir or default_cache_dir()
    _require_host_tools()
    step("resolving Debian packages")
    packages = _resolve_packages()
    key = _input_hash(packages)
    image = cache / "test-image" / f"onestack-test-{key[:16]}.qcow2"
    if not image.is_file():
        image.parent.mkdir(parents=True, exist_ok=True)
        debs = cache / "debs"
        step(f"downloading {len(packages)} packages")
        _download(packages, debs)
        with tempfile.TemporaryDirectory(prefix="onestack-test-image-") as scratch:
            _assemble(Path(scratch), packages, debs, image, step)
        for stale in image.parent.glob("onestack-test-*.qcow2"):
            if stale != image:
                stale.unlink(missing_ok=True)
    if output is None:
        return image
    step(f"copying to {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, output)
    return output


# --- packages ---------------------------------------------------------------------------

def _require_host_tools() -> None:
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in HOST_TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise TestImageError("Missing host tools: " + ", ".join(missing)
                             + "; `make deps` installs them")


def _run(args: list[str], cwd: Path | None = None, what: str = "") -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise TestImageError(f"{what or args[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise TestImageError(f"{what or ' '.join(args)} failed: " + " / ".join(detail))
    return done.stdout


def _candidates(names: list[str]) -> dict[str, dict[str, str]]:
    """The candidate versions' control fields, from the local apt lists (one call)."""
    out = _run(["apt-cache", "show", "--no-all-versions", *names],
               what="apt-cache show (run apt-get update?)")
    stanzas: dict[str, dict[str, str]] = {}
    for block in out.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if not line.startswith(" ") and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if "Package" in fields and "Version" in fields:
            stanzas.setdefault(fields["Package"], fields)
    missing = [n for n in names if n not in stanzas]
    if missing:
        raise TestImageError(f"No installable version of {', '.join(missing)}; "
                             "run apt-get update")
    return stanzas


def _resolve_packages() -> list[Package]:
    """Candidate versions; the kernel meta package pins the versioned kernel package."""
    stanzas = _candidates([KERNEL_PACKAGE, *PACKAGES])
    depends = stanzas[KERNEL_PACKAGE].get("Depends", "")
    match = re.search(r"(linux-image-[0-9][^\s,(]*-cloud-amd64) \(= ([^)\s]+)\)", depends)
    if not match:
        raise TestImageError(f"{KERNEL_PACKAGE} names no versioned kernel package")
    kernel = Package(match.group(1), match.group(2), stanzas[KERNEL_PACKAGE]["Architecture"])
    return [kernel, *(Package(n, stanzas[n]["Version"], stanzas[n]["Architecture"])
                      for n in PACKAGES)]


def _download(packages: Iterable[Package], debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in packages if not (debs / p.deb_name).is_file()]
    if wanted:
        _run(["apt-get", "download", "-q", *(f"{p.name}={p.version}" for p in wanted)],
             cwd=debs, what="apt-get download")
    for p in packages:
        if not (debs / p.deb_name).is_file():
            raise TestImageError(f"apt-get download did not produce {p.deb_name}")


def _input_hash(packages: Iterable[Package]) -> str:
    h = hashlib.sha256()
    for part in (BUILD_VERSION, str(FAT_MIB), " ".join(MODULES), SYSLINUX_CFG, INIT,
                 UDHCPC_SCRIPT, ACPI_POWER_BUTTON, MDEV_CONF, MDEV_DISK, LSBLK, PASSWD,
                 GROUP,
                 " ".join(SSH_BINARIES),
                 *(p.deb_name for p in packages)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


# --- assembly ---------------------------------------------------------------------------

def _assemble(scratch: Path, packages: list[Package], debs: Path, image: Path,
              step: Report) -> None:
    root = scratch / "root"
    step("unpacking packages")
    for p in packages:
        _run(["dpkg-deb", "-x", str(debs / p.deb_name), str(root)], what=f"unpack {p.name}")
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise TestImageError(f"expected one kernel in the package, found {len(kernels)}")
    kver = kernels[0].name.removeprefix("vmlinuz-")
    busybox = root / "bin" / "busybox"
    mbr = root / "usr" / "lib" / "syslinux" / "mbr" / "mbr.bin"
    for needed in (busybox, mbr):
        if not needed.is_file():
            raise TestImageError(f"{needed.relative_to(root)} missing from the packages")

    step("building the initramfs")
    modules = _module_closure(root / "lib" / "modules" / kver, MODULES)
    binaries = {b: (root / b).read_bytes() for b in SSH_BINARIES}
    initrd = scratch / "initrd.gz"
    initrd.write_bytes(_initramfs(busybox, modules, binaries, _shared_objects(root, binaries)))

    step("making the disk")
    raw = scratch / "disk.raw"
    _make_disk(raw, scratch, kernels[0], initrd, mbr.read_bytes())

    step("converting to qcow2")
    partial = image.with_name(f".{image.name}.{os.getpid()}.partial")
    _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
          str(partial)], what="qemu-img convert")
    partial.replace(image)


def _modinfo(ko: Path, field: str) -> list[str]:
    """Values of a .modinfo field, read from the module file's NUL-separated strings."""
    values: list[str] = []
    needle = field.encode() + b"="
    for chunk in ko.read_bytes().split(b"\0"):
        if chunk.startswith(needle):
            values.extend(v for v in chunk[len(needle):].decode().split(",") if v)
    return values


def _module_closure(moddir: Path, names: Iterable[str]) -> list[Path]:
    """The modules and their dependencies, dependencies first (insmod order)."""
    index = {ko.name.removesuffix(".ko").replace("-", "_"): ko for ko in moddir.rglob("*.ko")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise TestImageError(f"kernel module {name} not in the kernel package")
        for dep in _modinfo(index[name], "depends"):
            visit(dep)
        order.append(index[name])

    for name in names:
        visit(name)
    return order


def _elf_needed(data: bytes) -> tuple[list[str], str | None]:
    """A 64-bit little-endian ELF file's DT_NEEDED names and its PT_INTERP, if any."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise TestImageError("not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interp = None
    for i in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
        elif p_type == 3:  # PT_INTERP
            interp = data[offset:offset + filesz].rstrip(b"\0").decode()
    if dynamic is None:
        return [], interp

    def file_offset(vaddr: int) -> int:
        for start, offset, size in loads:
            if start <= vaddr < start + size:
                return offset + vaddr - start
        raise TestImageError(f"ELF address {vaddr:#x} is in no loaded segment")

    needed_at: list[int] = []
    strtab = None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED
            needed_at.append(value)
        elif tag == 5:  # DT_STRTAB
            strtab = file_offset(value)
    if strtab is None:
        raise TestImageError("ELF file has DT_NEEDED but no DT_STRTAB")
    names = [data[strtab + at:data.index(b"\0", strtab + at)].decode() for at in needed_at]
    return names, interp


def _shared_objects(root: Path, binaries: dict[str, bytes]) -> dict[str, bytes]:
    """Guest path -> contents of every shared object the binaries need (transitively),
    found in the unpacked packages' library directories, and the dynamic loader."""
    found: dict[str, bytes] = {}
    pending = list(binaries.values())
    loader_name = LOADER.rsplit("/", 1)[1]
    seen: set[str] = {loader_name}  # libc needs the loader: it goes to LOADER only
    while pending:
        needed, interp = _elf_needed(pending.pop())
        if interp is not None and interp.lstrip("/") != LOADER:
            raise TestImageError(f"unexpected dynamic loader {interp}")
        for name in needed:
            if name in seen:
                continue
            seen.add(name)
            for d in LIB_DIRS:
                path = root / d / name
                if path.exists():
                    data = path.read_bytes()  # through symlinks: one regular file
                    found[f"{LIB_DIRS[0]}/{name}"] = data
                    pending.append(data)
                    break
            else:
                raise TestImageError(f"shared object {name} is in none of the packages")
    # libc6 ships the loader in its library directory and LOADER as an absolute symlink
    # to it, which must not be followed out of the unpacked tree.
    for candidate in (*(root / d / loader_name for d in LIB_DIRS), root / LOADER):
        if candidate.is_file() and not candidate.is_symlink():
            found[LOADER] = candidate.read_bytes()
            return found
    raise TestImageError(f"{LOADER} missing from the packages")


class _Newc:
    """A cpio "newc" archive writer (what the kernel unpacks as an initramfs)."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               ) -> None:
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0)
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.out.write(name.encode() + b"\0")
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def _initramfs(busybox: Path, modules: list[Path], binaries: dict[str, bytes] | None = None,
               libraries: dict[str, bytes] | None = None) -> bytes:
    cpio = _Newc()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys",
              "run", "tmp", "root", "lib", "lib/modules", "etc/acpi", "etc/acpi/PWRF",
              "etc/dropbear", "home", "home/cirros", "lib64", *LIB_DIRS[:1]):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", INIT.encode(), 0o755)
    cpio.file("etc/udhcpc.script", UDHCPC_SCRIPT.encode(), 0o755)
    cpio.file("etc/mdev.conf", MDEV_CONF.encode())
    cpio.file("etc/mdev-disk", MDEV_DISK.encode(), 0o755)
    cpio.file("usr/bin/lsblk", LSBLK.encode(), 0o755)
    cpio.file("etc/acpi/PWRF/00000080", ACPI_POWER_BUTTON.encode(), 0o755)
    cpio.file("etc/passwd", PASSWD.encode())
    cpio.file("etc/group", GROUP.encode())
    cpio.file("etc/shells", b"/bin/sh\n")
    for path, data in (binaries or {}).items():
        cpio.file(path, data, 0o755)
    for path, data in (libraries or {}).items():
        cpio.file(path, data, 0o755)
    cpio.file("etc/hostname", b"onestack-test\n")
    names = []
    for ko in modules:
        name = ko.name.removesuffix(".ko")
        names.append(name)
        cpio.file(f"lib/modules/{name}.ko", ko.read_bytes())
    cpio.file("lib/modules/order", ("\n".join(names) + "\n").encode())
    return gzip.compress(cpio.finish(), compresslevel=9, mtime=0)


def _make_disk(raw: Path, scratch: Path, kernel: Path, initrd: Path, mbr_code: bytes) -> None:
    """MBR (syslinux's boot code + one bootable FAT16 partition) and the FAT contents."""
    fat_sectors = FAT_MIB * 2048
    total = (PART_START + fat_sectors) * 512
    with open(raw, "wb") as f:
        f.truncate(total)
    # --invariant and fixed file times make builds nearly byte-identical (only the times
    # syslinux stamps on its own ldlinux.* files differ).
    _run(["mkfs.fat", "--invariant", "-i", "0E57AC4D", "-F", "16", "-n", "ONESTACK",
          "-h", str(PART_START), "--offset", str(PART_START), str(raw),
          str(fat_sectors // 2)], what="mkfs.fat")
    cfg = scratch / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    image_at = f"{raw}@@{PART_START * 512}"
    shutil.copyfile(kernel, scratch / "vmlinuz")
    files = [scratch / "vmlinuz", initrd, cfg]
    for path in files:
        os.utime(path, (FILE_TIME, FILE_TIME))
    _run(["mcopy", "-m", "-i", image_at, "-o", *map(str, files), "::"], what="mcopy")
    _run(["syslinux", "--offset", str(PART_START * 512), "--install", str(raw)],
         what="syslinux --install")
    if len(mbr_code) > 440:
        raise TestImageError("syslinux mbr.bin is larger than 440 bytes")
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x0E, b"\xfe\xff\xff",
                        PART_START, fat_sectors)
    sector = bytearray(512)
    sector[:len(mbr_code)] = mbr_code
    sector[446:462] = entry
    sector[510:512] = b"\x55\xaa"
    with open(raw, "r+b") as f:
        f.write(sector)
