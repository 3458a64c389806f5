"""QemuDriver runs the test image through a guest's whole life, with real QEMU.

The guest has no NICs (its init prints "no eth0"), so nothing touches the host's
network. It boots a qcow2 overlay of the test image under TCG; one guest goes through
every step in turn. The serial console socket doubles as a way to run commands in the
guest (the test image ends in a root shell on ttyS0).

Every QEMU a test starts is killed at teardown, by the PID in its pidfile and only after
``/proc/<pid>/cmdline`` shows it is that guest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.hypervisor import GuestDisk, GuestSpec, HypervisorError, PowerState, load
from onestack.drivers.hypervisor.qemu import ACCEL_PROBE_FILE, QemuDriver
from onestack.drivers.hypervisor.qmp import connect_unix
from onestack.services.image.testimage import MARKER, build_test_image

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None
                       or shutil.which("qemu-img") is None,
                       reason="qemu-system-x86 / qemu-utils not installed"),
]

BOOT_TIMEOUT = 120  # TCG on a busy 2-core host
INIT = f"{MARKER} init started"
ACPID = f"{MARKER} acpid listening"
POWER_BUTTON = f"{MARKER} acpi power button, powering off"
DONE = f"{MARKER} done"
#: A guest that hears the power button is off within a second or two, even under TCG;
#: only one that ignores it waits out the timeout.
ACPI_OFF_WITHIN = 10.0


@pytest.fixture(scope="session")
def test_image() -> Path:
    return build_test_image()


def kill_guests(instances: Path) -> None:
    """SIGKILL every guest QEMU under ``instances`` (pidfile PID, cmdline checked)."""
    for pidfile in instances.glob("*/qemu.pid"):
        guest = pidfile.parent.name
        try:
            pid = int(pidfile.read_text().strip())
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if guest.encode() in args:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "instances"
    try:
        yield path
    finally:
        kill_guests(path)


def overlay(image: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image), str(path)], check=True)
    return path


def guest_spec(disk: Path) -> GuestSpec:
    return GuestSpec(uuid=str(uuid.uuid4()), name="test-vm", vcpus=1, memory_mib=128,
                     disks=[GuestDisk.file(disk)])


def pid_of(instances: Path, guest: str) -> int:
    return int((instances / guest / "qemu.pid").read_text())


def alive(pid: int, guest: str) -> bool:
    try:
        return guest.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def wait_console(driver: QemuDriver, guest: str, text: str, count: int = 1,
                 timeout: float = BOOT_TIMEOUT) -> str:
    """Wait until ``text`` shows ``count`` times on the console; return the console."""
    deadline = time.monotonic() + timeout
    while True:
        out = driver.console_log(guest)
        if out.count(text) >= count:
            return out
        state = driver.power_state(guest)
        if state not in (PowerState.RUNNING, PowerState.PAUSED) or time.monotonic() > deadline:
            qemu_log = (driver.instances_dir / guest / "qemu.log")
            pytest.fail(f"{text!r} x{count} not on the console ({state.name}) after "
                        f"{timeout} s:\n{out[-3000:]}\nqemu.log: "
                        f"{qemu_log.read_text() if qemu_log.exists() else '-'}")
        time.sleep(0.2)


def run_in_guest(driver: QemuDriver, guest: str, command: str, expect: str,
                 timeout: float = 60) -> str:
    """Type ``command`` into the guest's serial shell until ``expect`` (a regex) shows up
    in the console output that follows; return the match."""
    before = len(driver.console_log(guest))
    deadline = time.monotonic() + timeout
    with connect_unix(driver.serial_socket(guest), timeout=5) as sock:
        while time.monotonic() < deadline:
            sock.sendall(command.encode() + b"\n")
            resend = time.monotonic() + 5  # the shell may not be there yet
            while time.monotonic() < resend:
                match = re.search(expect, driver.console_log(guest)[before:])
                if match:
                    return match.group(0)
                time.sleep(0.2)
    pytest.fail(f"no {expect!r} after {command!r}:\n{driver.console_log(guest)[-2000:]}")


def test_a_guest_lives_its_whole_life(test_image: Path, instances: Path,
                                      tmp_path: Path) -> None:
    driver = QemuDriver(instances, accel="tcg", name_prefix="t1-")
    spec = guest_spec(overlay(test_image, tmp_path / "disks" / "disk.qcow2"))
    guest = spec.uuid
    gdir = instances / guest

    started = time.monotonic()
    driver.spawn(spec)
    assert driver.power_state(guest) == PowerState.RUNNING
    wait_console(driver, guest, INIT)
    print(f"spawn to {INIT!r} under TCG: {time.monotonic() - started:.1f} s")
    for name in ("qemu.pid", "qmp.sock", "console.sock", "console.log", "spec.json"):
        assert (gdir / name).exists(), name
    assert json.loads((gdir / "spec.json").read_text())["uuid"] == guest
    pid = pid_of(instances, guest)
    # Daemonized in its own session: killing the agent (or its process group) spares it.
    assert os.getsid(pid) != os.getsid(0)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert f"guest=t1-{guest}" in args and "accel=tcg" in " ".join(args)
    assert driver.host_info().accel == "tcg"

    wait_console(driver, guest, DONE)  # init is over: a shell waits on ttyS0
    assert "no eth0" in driver.console_log(guest)
    assert run_in_guest(driver, guest, 'echo "dmi=$(cat /sys/class/dmi/id/product_name)"',
                        r"dmi=OpenStack Nova") == "dmi=OpenStack Nova"
    assert run_in_guest(driver, guest, 'echo "serial=$(cat /sys/class/dmi/id/product_serial)"',
                        r"serial=[0-9a-f-]{36}") == f"serial={guest}"

    # Diagnostics, measured: QMP's vCPU threads and block stats, /proc of the QEMU
    # process (the guest has read its disk to boot; it has no NIC).
    diag = driver.diagnostics(guest)
    assert (diag.state, diag.hypervisor, diag.nics) == ("running", "qemu", [])
    assert [c.id for c in diag.cpus] == [0] and (diag.cpus[0].time or 0) > 0
    assert [d.name for d in diag.disks] == ["disk0"]
    assert (diag.disks[0].read_bytes or 0) > 0 and (diag.disks[0].read_requests or 0) > 0
    assert diag.memory_max_mib == 128 and (diag.memory_used_mib or 0) > 0
    assert diag.uptime is not None and diag.uptime >= 1
    later = driver.diagnostics(guest)
    assert (later.cpus[0].time or 0) >= (diag.cpus[0].time or 0)

    driver.pause(guest)
    assert driver.power_state(guest) == PowerState.PAUSED
    driver.unpause(guest)
    assert driver.power_state(guest) == PowerState.RUNNING

    # A restarted agent: a new driver adopts the running guest and restarts nothing.
    adopter = load("qemu", instances_dir=instances, accel="tcg", name_prefix="t1-")
    assert adopter.list_guests() == {guest: PowerState.RUNNING}
    adopter.spawn(spec)
    assert pid_of(instances, guest) == pid and alive(pid, guest)

    # Suspend: memory to disk, no process; resume continues the same boot.
    up_before = float(run_in_guest(driver, guest, 'echo "up=$(cut -d" " -f1 /proc/uptime)"',
                                   r"up=[0-9.]+")[3:])
    suspended = time.monotonic()
    adopter.suspend(guest)
    print(f"suspend: {time.monotonic() - suspended:.1f} s")
    assert driver.power_state(guest) == PowerState.SUSPENDED
    assert not alive(pid, guest)
    assert (gdir / "saved-state").is_file()
    assert driver.list_guests() == {guest: PowerState.SUSPENDED}
    resumed = time.monotonic()
    driver.resume(spec)
    print(f"resume: {time.monotonic() - resumed:.1f} s")
    assert driver.power_state(guest) == PowerState.RUNNING
    assert not (gdir / "saved-state").exists()
    up_after = float(run_in_guest(driver, guest, 'echo "again=$(cut -d" " -f1 /proc/uptime)"',
                                  r"again=[0-9.]+")[6:])
    assert up_after >= up_before
    assert driver.console_log(guest).count(INIT) == 1
    pid = pid_of(instances, guest)

    # Hard reboot: a reset of the same process.
    driver.reboot(spec, hard=True)
    wait_console(driver, guest, INIT, count=2)
    assert pid_of(instances, guest) == pid

    # Soft reboot: the guest powers off on the ACPI power button, then starts again.
    wait_console(driver, guest, ACPID, count=2)
    rebooted = time.monotonic()
    driver.reboot(spec, hard=False, timeout=60)
    assert time.monotonic() - rebooted < ACPI_OFF_WITHIN
    assert driver.console_log(guest).count(POWER_BUTTON) == 1
    wait_console(driver, guest, INIT, count=3)
    assert not alive(pid, guest)
    pid = pid_of(instances, guest)

    driver.power_off(guest)
    assert driver.power_state(guest) == PowerState.SHUTDOWN
    assert not alive(pid, guest)
    assert driver.list_guests() == {guest: PowerState.SHUTDOWN}
    assert driver.console_log(guest, lines=200).count(INIT) == 3  # the log stays

    started = time.monotonic()
    driver.spawn(spec)
    assert driver.power_state(guest) == PowerState.RUNNING
    wait_console(driver, guest, INIT, count=4)
    print(f"spawn after power off to {INIT!r}: {time.monotonic() - started:.1f} s")
    pid = pid_of(instances, guest)

    driver.destroy(guest)
    assert not alive(pid, guest)
    assert not gdir.exists()
    assert driver.power_state(guest) == PowerState.NOSTATE
    assert driver.list_guests() == {}
    driver.destroy(guest)  # idempotent
    assert (tmp_path / "disks" / "disk.qcow2").is_file()  # disks are not ours


def test_stop_is_an_acpi_power_off(test_image: Path, instances: Path,
                                   tmp_path: Path) -> None:
    """The guest powers itself off on the ACPI power button, long before the timeout."""
    driver = QemuDriver(instances, accel="tcg", name_prefix="t2-")
    spec = guest_spec(overlay(test_image, tmp_path / "disks" / "disk.qcow2"))
    guest = spec.uuid

    driver.spawn(spec)
    wait_console(driver, guest, ACPID)
    pid = pid_of(instances, guest)
    started = time.monotonic()
    driver.power_off(guest, timeout=60)
    took = time.monotonic() - started
    print(f"ACPI power off of a booted guest: {took:.1f} s")
    assert driver.power_state(guest) == PowerState.SHUTDOWN and not alive(pid, guest)
    # The guest's own handler ran (its marker is the last thing it printed), and the
    # power off came well before the 60 s after which it would have been forced.
    assert driver.console_log(guest, lines=3).count(POWER_BUTTON) == 1
    assert took < ACPI_OFF_WITHIN

    # Pressed while the guest still boots (nothing listens yet): the driver presses
    # again every few seconds, so it still powers off by itself.
    driver.spawn(spec)
    pid = pid_of(instances, guest)
    started = time.monotonic()
    driver.power_off(guest, timeout=60)
    took = time.monotonic() - started
    print(f"ACPI power off pressed during boot: {took:.1f} s")
    assert driver.power_state(guest) == PowerState.SHUTDOWN and not alive(pid, guest)
    assert driver.console_log(guest).count(POWER_BUTTON) == 2
    assert took < 45


def test_start_failures_say_why(tmp_path: Path, instances: Path) -> None:
    driver = QemuDriver(instances, accel="tcg")
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * (1 << 20))
    spec = guest_spec(raw)  # declared qcow2
    with pytest.raises(HypervisorError, match=r"QEMU failed to start.*qcow2"):
        driver.spawn(spec)
    assert driver.power_state(spec.uuid) == PowerState.SHUTDOWN

    missing = guest_spec(tmp_path / "missing.qcow2")
    with pytest.raises(HypervisorError, match="does not exist"):
        driver.spawn(missing)
    with pytest.raises(HypervisorError, match="not running"):
        driver.pause(spec.uuid)
    with pytest.raises(HypervisorError, match="no saved state"):
        driver.resume(spec)
    driver.power_off(spec.uuid, timeout=5)
    driver.destroy(spec.uuid)
    driver.destroy(missing.uuid)
    assert driver.list_guests() == {}


def test_host_info(instances: Path) -> None:
    info = QemuDriver(instances, accel="tcg").host_info()
    out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    assert match
    major, minor, micro = map(int, match.groups())
    assert info.hypervisor_version == major * 1_000_000 + minor * 1_000 + micro
    assert (info.hypervisor_type, info.accel) == ("QEMU", "tcg")
    assert info.vcpus == os.cpu_count()
    assert info.memory_mib > 0
    assert info.cpu_info["arch"] == "x86_64"


def test_auto_accel_picks_what_really_works(test_image: Path, tmp_path: Path,
                                            instances: Path) -> None:
    """``auto`` probes once; its verdict is checked against a real guest under KVM."""
    started = time.monotonic()
    driver = QemuDriver(instances, accel="auto", probe_kernel=test_image)
    accel = driver.host_info().accel
    print(f"auto -> {accel} in {time.monotonic() - started:.1f} s: {driver.accel_reason}")
    assert accel in ("kvm", "tcg") and driver.accel_reason
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert accel == "tcg"
        return
    probe = json.loads((tmp_path / ACCEL_PROBE_FILE).read_text())
    assert probe["accel"] == accel
    # Cached: a second driver (a restarted agent) does not probe again.
    again = QemuDriver(instances, accel="auto", probe_kernel=test_image)
    assert again.host_info().accel == accel
    assert ACCEL_PROBE_FILE in again.accel_reason

    kvm = QemuDriver(tmp_path / "kvm-instances", accel="kvm")
    spec = guest_spec(overlay(test_image, tmp_path / "kvm-disk.qcow2"))
    try:
        if accel == "kvm":
            kvm.spawn(spec)
            wait_console(kvm, spec.uuid, INIT, timeout=60)
            return
        # The probe said KVM fails: a KVM guest must indeed not get to its init.
        try:
            kvm.spawn(spec)
        except HypervisorError as exc:
            print(f"KVM guest failed to start, as the probe said: {exc}")
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert INIT not in kvm.console_log(spec.uuid)
            if kvm.power_state(spec.uuid) != PowerState.RUNNING:
                break
            time.sleep(0.5)
    finally:
        kill_guests(tmp_path / "kvm-instances")
