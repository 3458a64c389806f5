"""What every benchmark shares: a free port, a real ``onestack up`` stopped by its PID,
and readings of the machine (CPU model, how busy it is, a process's CPU time)."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(ports: range) -> int:
    """The first port of ``ports`` that nothing listens on (loopback)."""
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (other work skews figures)."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_idle(limit: float, timeout: float) -> float:
    """Wait up to ``timeout`` seconds for the machine to be less than ``limit`` busy."""
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = machine_busy(2.0)
    return busy


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class Server:
    """``onestack up`` in a child process, stopped by its PID."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = (state_dir / "server.out").open("wb")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/onestack"), "up", "--state-dir", str(state_dir),
             "--port", str(port)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"onestack up exited with {self.proc.returncode}; see "
                                 f"{self.state_dir / 'server.out'}")
            try:
                if httpx.get(f"{self.url}/v3", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("onestack up did not become ready")

    def admin_auth(self) -> dict[str, str]:
        """The ``auth`` section of the cloud ``onestack`` in the server's clouds.yaml."""
        data = yaml.safe_load((self.state_dir / "clouds.yaml").read_text())
        return data["clouds"]["onestack"]["auth"]

    def admin_password(self) -> str:
        return self.admin_auth()["password"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
