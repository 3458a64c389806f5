"""End-to-end fixtures: a real ``onestack up`` process driven by the stock clients.

``server`` (session): one ``onestack up`` on a free loopback port in 5100-5199 with a
tmp state dir and a cheap argon2 cost. Stopped by its PID at teardown (SIGTERM, then
SIGKILL after a timeout), whatever happened in the tests.

``openstack`` (session): runs the stock ``.venv/bin/openstack`` CLI, adding ``-f json``
where the command prints a resource or a list, and returns the parsed JSON (or the
plain stdout for commands that print nothing or text). A non-zero exit raises
``CLIError`` carrying stderr. ``cloud_env`` chooses the credentials: by default the
admin cloud in the server's own clouds.yaml; ``extra_clouds.add_*`` writes entries for
other users and application credentials into a separate clouds.yaml in tmp.

``start_server`` starts further, test-owned servers (restart, key rotation).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

BIN = Path(sys.executable).parent
ONESTACK = str(BIN / "onestack")
OPENSTACK = str(BIN / "openstack")

PORTS = range(5100, 5200)
HOST = "127.0.0.1"

# A cheap argon2 cost: correctness does not depend on it.
SERVER_ENV = {
    "ONESTACK_IDENTITY_ARGON2_TIME_COST": "1",
    "ONESTACK_IDENTITY_ARGON2_MEMORY_KIB": "1024",
    # Fake host drivers: no QEMU, no bridges (tests/host/ runs the real ones).
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "fake",
    "ONESTACK_HOST_NAME": "compute-1",
    "ONESTACK_HOST_POLL_INTERVAL": "1.0",
}

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 90.0

#: Verbs after which the CLI prints a resource or a list (so ``-f json`` applies) ...
OUTPUT_VERBS = {"create", "show", "list", "issue"}
#: ... and verbs after which it prints nothing (or plain text).
SILENT_VERBS = {"set", "unset", "delete", "add", "remove", "revoke", "contains"}


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any OS_* (so only our clouds.yaml counts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(extra)
    return env


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    candidates = [p for p in PORTS if p not in exclude]
    random.shuffle(candidates)
    for port in candidates:
        if port_is_free(port):
            return port
    raise RuntimeError("no free port in 5100-5199")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies (even SIGKILLed),
    so a crashed test run leaves no server behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerError(RuntimeError):
    pass


@dataclass
class Server:
    """One ``onestack up`` subprocess; owned (and stopped) by whoever started it."""

    state_dir: Path
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def clouds_yaml(self) -> Path:
        return self.state_dir / "clouds.yaml"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def admin_password(self) -> str:
        data = yaml.safe_load(self.clouds_yaml.read_text())
        return data["clouds"]["onestack"]["auth"]["password"]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.returncode = None
        env = clean_env(**SERVER_ENV, **self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [ONESTACK, "up", "--state-dir", str(self.state_dir), "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    self.returncode = self.proc.returncode
                    raise ServerError(f"onestack up exited with {self.returncode} before "
                                      f"answering:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/v3", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise ServerError(f"onestack up did not answer GET /v3 within {timeout}s:"
                                      f"\n{self.log_tail()}")
                time.sleep(0.1)
            # Make sure it was our process that answered (not someone else's on the port).
            if self.proc.poll() is not None:
                raise ServerError(f"onestack up exited while starting:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM by PID, SIGKILL after ``timeout``; returns the exit code."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
                self.returncode = proc.returncode
                self.proc = None
                raise ServerError(f"onestack up ignored SIGTERM for {timeout}s; killed "
                                  f"it:\n{self.log_tail()}") from None
        self.returncode = proc.returncode
        self.proc = None
        return self.returncode

    # -- small HTTP helpers (httpx), for what the CLI cannot show --------------------

    def password_token(self, name: str = "admin", password: str | None = None,
                       project: str | None = "admin") -> str:
        """Password login by name (Default domain); returns the token (asserts 201)."""
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": name, "domain": {"name": "Default"},
                     "password": password if password is not None
                     else self.admin_password()}}}}}
        if project:
            body["auth"]["scope"] = {"project": {"name": project,
                                                 "domain": {"name": "Default"}}}
        r = httpx.post(f"{self.auth_url}/auth/tokens", json=body, timeout=10)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]

    def validate(self, subject: str, auth: str | None = None) -> httpx.Response:
        """GET /v3/auth/tokens for ``subject`` (authenticated by ``auth``, else itself)."""
        return httpx.get(f"{self.auth_url}/auth/tokens", timeout=10, headers={
            "X-Auth-Token": auth or subject, "X-Subject-Token": subject})


def start_server(base: Path, port: int | None = None, attempts: int = 5) -> Server:
    """Start ``onestack up`` with its state in ``base/state``; retries on another port if
    the chosen one was taken in the meantime (unless ``port`` is given)."""
    base.mkdir(parents=True, exist_ok=True)
    tried: set[int] = set()
    last: Exception | None = None
    for _ in range(attempts if port is None else 1):
        p = port or pick_port(tried)
        tried.add(p)
        server = Server(state_dir=base / "state", port=p, log_path=base / "server.log")
        try:
            server.start()
        except ServerError as exc:
            last = exc
            if "address already in use" in str(exc).lower():
                continue
            raise
        return server
    raise ServerError(f"could not start onestack up on any of {sorted(tried)}: {last}")


# -- the CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudEnv:
    """Which clouds.yaml (and which cloud in it) the CLI uses; ``cloud=None`` passes no
    ``--os-cloud`` (for ``--os-auth-type token --os-token ...``)."""

    config_file: Path
    cloud: str | None

    def env(self) -> dict[str, str]:
        return clean_env(OS_CLIENT_CONFIG_FILE=str(self.config_file))

    def args(self) -> list[str]:
        return ["--os-cloud", self.cloud] if self.cloud else []


class CLIError(AssertionError):
    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        super().__init__(f"`{' '.join(argv[1:])}` exited {returncode}:\n{stderr.strip()}"
                         + (f"\nstdout: {stdout.strip()}" if stdout.strip() else ""))


def wants_json(args: tuple[str, ...]) -> bool:
    """Whether the command prints a resource or list: the first verb among the
    positional words decides (global ``--os-*`` options may come first)."""
    for arg in args:
        if arg.startswith("-"):
            continue
        if arg in OUTPUT_VERBS:
            return True
        if arg in SILENT_VERBS:
            return False
    return False


class OpenStackCLI:
    """``openstack(*args, cloud_env=...)``: run the stock CLI and parse its JSON."""

    def __init__(self, admin: CloudEnv) -> None:
        self.admin = admin
        self.calls = 0

    def run(self, *args: str, cloud_env: CloudEnv | None = None,
            json_output: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the CLI; no checks, the completed process is returned."""
        cloud_env = cloud_env or self.admin
        argv = [OPENSTACK, *cloud_env.args(), *args, *(["-f", "json"] if json_output else [])]
        self.calls += 1
        return subprocess.run(argv, env=cloud_env.env(), capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)

    def __call__(self, *args: str, cloud_env: CloudEnv | None = None,
                 json_output: bool | None = None) -> Any:
        """Run the CLI; raise ``CLIError`` (with stderr) on a non-zero exit; return the
        parsed JSON, or stdout for commands without ``-f json``."""
        if json_output is None:
            json_output = wants_json(args)
        proc = self.run(*args, cloud_env=cloud_env, json_output=json_output)
        if proc.returncode != 0:
            raise CLIError(list(proc.args), proc.returncode, proc.stdout, proc.stderr)
        if json_output:
            try:
                return json.loads(proc.stdout)
            except ValueError as exc:
                raise CLIError(list(proc.args), proc.returncode, proc.stdout,
                               f"output is not JSON: {exc}\n{proc.stderr}") from None
        return proc.stdout

    def fails(self, *args: str, cloud_env: CloudEnv | None = None) -> CLIError:
        """Run a command that must fail; returns the error (its stderr in ``.stderr``)."""
        proc = self.run(*args, cloud_env=cloud_env)
        if proc.returncode == 0:
            raise AssertionError(f"`openstack {' '.join(args)}` succeeded but should have "
                                 f"failed:\n{proc.stdout}")
        err = CLIError(list(proc.args), proc.returncode, proc.stdout, proc.stderr)
        if re.search(r"HTTP 500|\b500: Server Error|InternalServerError", proc.stderr):
            raise AssertionError(f"the server failed (500) instead of refusing: {err}")
        return err


class ExtraClouds:
    """A second clouds.yaml (in tmp) for other users and application credentials."""

    def __init__(self, path: Path, server: Server) -> None:
        self.path = path
        self.server = server
        self.clouds: dict[str, Any] = {}
        self._write()

    def _write(self) -> None:
        self.path.write_text(yaml.safe_dump({"clouds": self.clouds}, sort_keys=False))
        self.path.chmod(0o600)

    def add(self, name: str, auth: dict[str, Any], auth_type: str | None = None) -> CloudEnv:
        cloud: dict[str, Any] = {"auth": {"auth_url": self.server.auth_url, **auth},
                                 "region_name": "RegionOne", "interface": "public",
                                 "identity_api_version": 3}
        if auth_type:
            cloud["auth_type"] = auth_type
        self.clouds[name] = cloud
        self._write()
        return CloudEnv(self.path, name)

    def add_user(self, name: str, username: str, password: str, project: str | None = None,
                 domain: str = "Default") -> CloudEnv:
        auth = {"username": username, "password": password, "user_domain_name": domain}
        if project:
            auth.update(project_name=project, project_domain_name=domain)
        return self.add(name, auth)

    def add_app_cred(self, name: str, cred_id: str, secret: str) -> CloudEnv:
        return self.add(name, {"application_credential_id": cred_id,
                               "application_credential_secret": secret},
                        auth_type="v3applicationcredential")

    @property
    def no_cloud(self) -> CloudEnv:
        """No ``--os-cloud``: everything comes from ``--os-*`` flags."""
        return CloudEnv(self.path, None)


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("onestack"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def admin_env(server: Server) -> CloudEnv:
    return CloudEnv(server.clouds_yaml, "onestack")


@pytest.fixture(scope="session")
def openstack(admin_env: CloudEnv) -> OpenStackCLI:
    return OpenStackCLI(admin_env)


@pytest.fixture(scope="session")
def extra_clouds(server: Server, tmp_path_factory: pytest.TempPathFactory) -> ExtraClouds:
    return ExtraClouds(tmp_path_factory.mktemp("clouds") / "clouds.yaml", server)


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps names unique on the shared session server."""
    return uuid.uuid4().hex[:6]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A function-scoped server of the test's own (for restarts and admin commands)."""
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
