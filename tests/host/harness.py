"""A OneStack host inside a network namespace, for host tests and benchmarks.

``NetnsHost`` makes a namespace ``<prefix>host`` (the prefix is short and random, so runs
never collide), runs ``onestack up`` in it with the real drivers (QEMU, local disks,
Linux bridges and dnsmasq), and moves the calling thread into it while in use, so that
HTTP calls and the stock CLI started from the test reach the server on the namespace's
own loopback. Nothing is created in the root namespace. ``cleanup()`` removes everything
the host made, even after a failure: processes by the PIDs in their pidfiles (after
checking their command line), then every namespace with the prefix.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
ONESTACK = str(BIN / "onestack")
OPENSTACK = str(BIN / "openstack")
CLONE_NEWNET = 0x40000000
PORT = 5000

HOST_ENV = {
    "ONESTACK_IDENTITY_ARGON2_TIME_COST": "1",
    "ONESTACK_IDENTITY_ARGON2_MEMORY_KIB": "1024",
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "qemu",
    "ONESTACK_HOST_STORAGE_DRIVER": "local",
    "ONESTACK_HOST_NETWORK_DRIVER": "linux",
    "ONESTACK_HOST_NAME": "host-1",
    "ONESTACK_HOST_POLL_INTERVAL": "2.0",
    # The test image powers off on the ACPI button within a second; one still booting
    # misses the press: force it soon rather than wait for the button to be pressed again.
    "ONESTACK_COMPUTE_SHUTDOWN_TIMEOUT": "3",
}


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def namespaces() -> list[str]:
    out = run("ip", "-j", "netns", "list", check=False).stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


@dataclass
class NetnsHost:
    base: Path
    env: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: "o" + secrets.token_hex(2)[:3])
    proc: subprocess.Popen[bytes] | None = None
    _home_ns: int | None = None

    @property
    def ns(self) -> str:
        return f"{self.prefix}host"

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{PORT}"

    @property
    def clouds_yaml(self) -> Path:
        return self.state_dir / "clouds.yaml"

    # -- the namespace ----------------------------------------------------------------

    def create(self) -> None:
        """Make the namespace and move the calling thread into it. It has no way out, so
        whatever needs the outside (building the test image) must happen before."""
        self.base.mkdir(parents=True, exist_ok=True)
        run("ip", "netns", "add", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        self._home_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        _setns(f"/run/netns/{self.ns}")

    def leave(self) -> None:
        """Back to the namespace the test started in."""
        if self._home_ns is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(self._home_ns, CLONE_NEWNET)
            os.close(self._home_ns)
            self._home_ns = None

    # -- the server -------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(HOST_ENV)
        env["ONESTACK_HOST_NAME_PREFIX"] = self.prefix
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [ONESTACK, "up", "--state-dir", str(self.state_dir), "--port", str(PORT)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"onestack up exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v3", timeout=1.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"onestack up did not answer in {timeout}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """kill -9 the server (guests and dnsmasq, being daemons, live on)."""
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- what the host holds --------------------------------------------------------------

    def pidfile_processes(self) -> dict[Path, int]:
        """Live processes named by pidfiles under the state dir (QEMU's ``qemu.pid``,
        dnsmasq's ``pid``), whose command line mentions that pidfile's directory (so a
        reused PID is never taken for ours)."""
        found: dict[Path, int] = {}
        if not self.state_dir.exists():
            return found
        pidfiles = [*self.state_dir.rglob("*.pid"), *self.state_dir.rglob("pid")]
        for pidfile in pidfiles:
            try:
                pid = int(pidfile.read_text().split()[0])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, ValueError, IndexError):
                continue
            if str(pidfile.parent).encode() in cmdline or pidfile.parent.name.encode() \
                    in cmdline:
                found[pidfile] = pid
        return found

    def links(self) -> list[str]:
        out = run("ip", "-j", "link", "show", check=False).stdout.strip()
        return [link["ifname"] for link in json.loads(out or "[]")
                if link["ifname"].startswith(self.prefix)]

    def cleanup(self) -> None:
        """Everything this host made goes, whatever state the test left it in."""
        with contextlib.suppress(Exception):
            self.stop(timeout=15)
        for _pidfile, pid in self.pidfile_processes().items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.leave()
        for name in namespaces():
            if name.startswith(self.prefix):
                run("ip", "netns", "del", name, check=False)


def openstack(host: NetnsHost, *args: str, json_output: bool = True,
              timeout: float = 120) -> Any:
    """The stock CLI against the host's cloud; raises with stderr on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(host.clouds_yaml)
    argv = [OPENSTACK, "--os-cloud", "onestack", *args]
    if json_output:
        argv += ["-f", "json"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stderr.strip()}\n{proc.stdout.strip()}")
    return json.loads(proc.stdout) if json_output else proc.stdout


def wait_for(predicate: Any, timeout: float, interval: float = 0.5, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@contextlib.contextmanager
def netns_host(base: Path, **env: str) -> Iterator[NetnsHost]:
    host = NetnsHost(base, env=dict(env))
    try:
        host.create()
        host.start()
        yield host
    finally:
        host.cleanup()
