"""Run OpenStack's own conformance suite (Tempest) against a fresh ``onestack up``.

``make conformance`` runs this with the project's venv. It

1. installs Tempest into its own venv (``build/tempest-venv``, pinned version) once;
2. starts ``onestack up`` on a free loopback port with a throwaway state directory, the
   fake host drivers by default (the API tests check the APIs: servers still go through
   the scheduler, the host link and the agent, but no QEMU boots). ``--real`` uses the
   real drivers (QEMU under TCG, Linux bridges, dnsmasq, the Linux L3 driver; root) in a
   network namespace of the run's own, which Tempest then runs in too, as the host tests
   do (``tests/host/harness.py``); everything made there goes with the namespace;
3. uploads the test image twice (``image_ref`` and ``image_ref_alt``) and writes
   ``tempest.conf`` with the features configured as OneStack implements them
   (``tools/conformance/tempest.conf.in``: what is not supported is said there, not
   skipped by name); ``--validation`` (with ``--real``) turns on Tempest's instance
   validation (``validation.conf.in``: it logs in to its guests over SSH through
   floating IPs) and, without ``--regex``, runs the guideline's tests that do that;
4. runs the API tests of the chosen services and prints pass/fail/skip per service,
   writing ``build/conformance/results.json`` and the failures with their reasons to
   ``build/conformance/failures.txt``.

The server is stopped by its PID whatever happens (with ``--real``, then the guests and
dnsmasq by the PIDs in their pidfiles, and the namespaces by their prefix). Nothing is
sent anywhere but to the server on loopback (and, with ``--real``, to the guests inside
the run's namespace).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
TEMPEST_VENV = BUILD / "tempest-venv"
WORKSPACE = BUILD / "conformance"
TEMPEST_VERSION = "47.0.0"
TEMPLATE = Path(__file__).with_name("tempest.conf.in")
VALIDATION_TEMPLATE = Path(__file__).with_name("validation.conf.in")
BIN = Path(sys.executable).parent
SERVICES = ("identity", "compute", "image", "network", "volume")

#: Keystone's [security_compliance] settings the server runs with (its [identity]
#: options, passed as ONESTACK_IDENTITY_*), told to Tempest as its [identity] user_*
#: options (tempest.conf.in): the two must agree, so both come from here.
SECURITY_COMPLIANCE = {
    "lockout_failure_attempts": 2,
    "lockout_duration": 5,
    "unique_last_password_count": 2,
    "minimum_password_age": 0,
}


def compliance_env() -> dict[str, str]:
    return {f"ONESTACK_IDENTITY_{k.upper()}": str(v) for k, v in SECURITY_COMPLIANCE.items()}


FAKE_DRIVERS = {
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "fake",
    "ONESTACK_HOST_POLL_INTERVAL": "0.5",
}


#: What ``--validation`` runs without ``--regex``: the classes of the guideline's tests
#: that log in to their guests when validation is on (``test_create_server``'s vCPU count
#: and host name checks, which are skipped without it), the guideline's server actions
#: (reboot and rebuild log in before and after; each test starts from an SSH-able
#: server) and volume attachment (counts the guest's disks before and after).
VALIDATION_REGEX = (
    r"^tempest\.api\.compute\.servers\.test_create_server\.ServersTestJSON\."
    r"|^tempest\.api\.compute\.servers\.test_server_actions\.ServerActionsTestJSON\."
    r"(test_reboot_server_hard|test_rebuild_server|test_stop_start_server"
    r"|test_lock_unlock_server)\b"
    r"|^tempest\.api\.compute\.volumes\.test_attach_volume\.AttachVolumeTestJSON\.")
#: Seconds Tempest waits for a server to become ACTIVE (and, with validation, reachable).
BUILD_TIMEOUT = {False: 120, True: 600}


def log(message: str) -> None:
    print(f"[conformance] {message}", flush=True)


def ensure_tempest() -> Path:
    tempest = TEMPEST_VENV / "bin" / "tempest"
    if tempest.exists():
        return tempest
    log(f"installing tempest {TEMPEST_VERSION} into {TEMPEST_VENV}")
    subprocess.run([sys.executable, "-m", "venv", str(TEMPEST_VENV)], check=True)
    subprocess.run([str(TEMPEST_VENV / "bin" / "pip"), "install", "--quiet",
                    f"tempest=={TEMPEST_VERSION}"], check=True)
    return tempest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``onestack up`` in the background, stopped by its PID."""

    def __init__(self, state_dir: Path, port: int, real: bool) -> None:
        self.state_dir = state_dir
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update({"ONESTACK_IDENTITY_ARGON2_TIME_COST": "1",
                    "ONESTACK_IDENTITY_ARGON2_MEMORY_KIB": "1024",
                    "ONESTACK_HOST_NAME": "compute-1",
                    # Tempest logs in hundreds of times from one address.
                    "ONESTACK_IDENTITY_FAILED_LOGINS_PER_SOURCE": "100000",
                    **compliance_env()})
        if not real:
            env.update(FAKE_DRIVERS)
        self.log_path = state_dir.parent / "onestack.log"
        self.proc = subprocess.Popen(
            [str(BIN / "onestack"), "up", "--state-dir", str(state_dir), "--port",
             str(port)], env=env, stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"onestack up exited: see {self.log_path}")
            try:
                if httpx.get(self.url + "/v3", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"onestack up did not answer in {timeout:.0f} s")

    def admin_password(self) -> str:
        data = yaml.safe_load((self.state_dir / "clouds.yaml").read_text())
        return str(data["clouds"]["onestack"]["auth"]["password"])

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RealServer:
    """``onestack up`` with the real host drivers in a network namespace of its own
    (``tests/host/harness.py``'s ``NetnsHost``: a random short prefix on the namespace
    and on everything the host makes). This thread moves into the namespace, so the
    calls here and Tempest (started from here) reach the server on the namespace's
    loopback and the guests through floating IPs on its public bridge; nothing is made
    in the root namespace. ``stop`` removes it all: the server by PID, then the guests
    and dnsmasq by their pidfiles, then every namespace with the prefix."""

    def __init__(self, state_dir: Path) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.host.harness import NetnsHost
        self.state_dir = state_dir
        self.log_path = state_dir.parent / "onestack.log"
        self.host = NetnsHost(state_dir.parent, env={
            "ONESTACK_HOST_NAME": "compute-1", "ONESTACK_HOST_ACCEL": "tcg",
            "ONESTACK_HOST_POLL_INTERVAL": "1.0",
            "ONESTACK_IDENTITY_FAILED_LOGINS_PER_SOURCE": "100000", **compliance_env()})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.host.url

    @property
    def prefix(self) -> str:
        return self.host.prefix

    def wait(self, timeout: float = 120.0) -> None:
        self.host.create()
        try:
            self.host.start(timeout)
        finally:
            if self.host.log_path.exists():
                shutil.copy(self.host.log_path, self.log_path)
        self.proc = self.host.proc

    def admin_password(self) -> str:
        data = yaml.safe_load((self.state_dir / "clouds.yaml").read_text())
        return str(data["clouds"]["onestack"]["auth"]["password"])

    def stop(self) -> None:
        self.host.cleanup()
        if self.host.log_path.exists():
            shutil.copy(self.host.log_path, self.log_path)

    def leftovers(self) -> list[str]:
        """What is still there of this host after ``stop``: namespaces and links with
        its prefix, and processes whose command line names its state directory or its
        guests (QEMU's ``guest=<prefix>...``; dnsmasq's pidfile)."""
        from tests.host.harness import namespaces
        found = [f"namespace {n}" for n in namespaces() if n.startswith(self.prefix)]
        found += [f"link {link}" for link in self.host.links()]
        marks = (str(self.state_dir.parent).encode(), f"guest={self.prefix}".encode())
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if any(mark in cmdline for mark in marks):
                found.append(f"process {proc.name} ({cmdline[:80].decode(errors='replace')})")
        return found


class Admin:
    """Just enough of the APIs to prepare what Tempest's configuration names."""

    def __init__(self, url: str, password: str) -> None:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        r = httpx.post(url + "/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.url = url
        self.client = httpx.Client(headers={"X-Auth-Token": r.headers["X-Subject-Token"]},
                                   timeout=120)
        self.catalog = {e["type"]: next(x["url"] for x in e["endpoints"]
                                        if x["interface"] == "public")
                        for e in r.json()["token"]["catalog"]}

    def upload_image(self, name: str, data: bytes) -> str:
        image = self.client.post(self.catalog["image"] + "/v2/images", json={
            "name": name, "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"})
        image.raise_for_status()
        image_id = str(image.json()["id"])
        self.client.put(self.catalog["image"] + f"/v2/images/{image_id}/file",
                        content=data, headers={"Content-Type": "application/octet-stream"}
                        ).raise_for_status()
        return image_id

    def public_network(self) -> str:
        r = self.client.get(self.catalog["network"] + "/v2.0/networks",
                            params={"router:external": "true"})
        r.raise_for_status()
        return str(r.json()["networks"][0]["id"])

    def network_extensions(self) -> str:
        """The aliases ``GET /v2.0/extensions`` advertises: Tempest runs the tests of
        exactly those (and skips the rest as not enabled)."""
        r = self.client.get(self.catalog["network"] + "/v2.0/extensions")
        r.raise_for_status()
        return ",".join(sorted(e["alias"] for e in r.json()["extensions"]))


def test_image() -> bytes:
    from onestack.services.image.testimage import build_test_image
    return build_test_image().read_bytes()


def write_config(path: Path, server: Server | RealServer, admin: Admin,
                 images: tuple[str, str], services: list[str], real: bool = False,
                 validation: bool = False) -> None:
    values = {
        "build_timeout": str(BUILD_TIMEOUT[real]),
        "validation": (VALIDATION_TEMPLATE.read_text() if validation
                       else "run_validation = false"),
        "url": server.url, "password": server.admin_password(),
        "image_ref": images[0], "image_ref_alt": images[1],
        "public_network_id": admin.public_network(),
        "network_extensions": admin.network_extensions(),
        "lock_path": str(path.parent / "lock"),
        "log_file": str(path.parent.parent / "tempest.log"),
        **{f"user_{k}": str(v) for k, v in SECURITY_COMPLIANCE.items()},
    }
    for service in SERVICES:
        values[f"{service}_available"] = str(
            service in services and (service != "volume" or "volumev3" in admin.catalog
                                     or "block-storage" in admin.catalog)).lower()
    path.write_text(TEMPLATE.read_text().format(**values))


def service_of(test_id: str) -> str:
    m = re.match(r"tempest\.(?:serial_tests\.)?api\.(\w+)\.", test_id)
    return m.group(1) if m else "other"


def results(tempest_venv: Path, workspace: Path) -> list[dict[str, str]]:
    stream = subprocess.run([str(tempest_venv / "bin" / "stestr"), "last", "--subunit"],
                            cwd=workspace, capture_output=True, check=False).stdout
    rows = subprocess.run([str(tempest_venv / "bin" / "subunit2csv")], input=stream,
                          capture_output=True, check=False).stdout.decode(errors="replace")
    return list(csv.DictReader(io.StringIO(rows)))


def summarize(rows: list[dict[str, str]]) -> dict[str, collections.Counter[str]]:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    for row in rows:
        test_id = row["test"].split("[")[0]
        if test_id.startswith("setUpClass (") or test_id.startswith("tearDownClass ("):
            test_id = test_id.split("(", 1)[1].rstrip(")")
        status = {"success": "pass", "failure": "fail", "fail": "fail", "skip": "skip"}.get(
            row["status"], row["status"])
        counts[service_of(test_id)][status] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", default=",".join(SERVICES),
                        help="comma-separated: identity,compute,image,network,volume")
    parser.add_argument("--regex", default="",
                        help="run only the tests matching this (default: the API tests "
                             "of the services)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--real", action="store_true",
                        help="real host drivers (root, QEMU under TCG; in a network "
                             "namespace of the run's own): slow, run it under `heavy`")
    parser.add_argument("--validation", action="store_true",
                        help="with --real: Tempest logs in to its guests over SSH "
                             "(validation.conf.in); without --regex, runs the "
                             "guideline's tests that do")
    parser.add_argument("--guideline-with", type=Path, action="append", default=[],
                        metavar="WORKSPACE",
                        help="also count this earlier run (e.g. the fake-driver full "
                             "run's build/conformance) in the guideline summary")
    parser.add_argument("--keep", action="store_true",
                        help="leave the server running after the tests (prints its URL)")
    parser.add_argument("--workspace", type=Path, default=WORKSPACE,
                        help="where the run's files go (wiped at start; default "
                             "build/conformance); separate ones let runs go side by side")
    args = parser.parse_args()
    workspace: Path = args.workspace.resolve()
    services = [s for s in args.services.split(",") if s]
    unknown = set(services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    if args.validation and not args.real:
        parser.error("--validation needs --real (the fake drivers boot no guest)")
    if args.real and os.geteuid() != 0:
        parser.error("--real needs root (namespaces, bridges, taps)")
    if args.real and args.keep:
        parser.error("--keep is for the fake drivers (a real host lives in its "
                     "namespace, which goes at the end)")
    # everything that needs the outside (Tempest's install, the image's packages) first:
    # with --real this thread moves into a namespace with no way out
    tempest = ensure_tempest()
    data = test_image()
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    state = Path(tempfile.mkdtemp(prefix="onestack-conformance-"))
    server: Server | RealServer = (RealServer(state / "state") if args.real
                                   else Server(state / "state", free_port(), False))
    try:
        server.wait()
        where = f" in namespace {server.host.ns}" if isinstance(server, RealServer) else ""
        log(f"onestack up at {server.url}{where} (log {server.log_path})")
        admin = Admin(server.url, server.admin_password())
        images = (admin.upload_image("conformance-image", data),
                  admin.upload_image("conformance-image-alt", data))
        subprocess.run([str(tempest), "init", "--workspace-path",
                        str(workspace / "workspaces.yaml"), str(workspace / "ws")], check=True,
                       capture_output=True)
        config = workspace / "ws" / "etc" / "tempest.conf"
        write_config(config, server, admin, images, services, args.real, args.validation)
        # the API tests, those Tempest runs one at a time (serial_tests) included
        regex = args.regex or (VALIDATION_REGEX if args.validation else (
            r"^tempest\.(serial_tests\.)?api\.(" + "|".join(services) + r")\."))
        log(f"tempest run --regex {regex!r} --concurrency {args.concurrency}")
        started = time.monotonic()
        subprocess.run([str(tempest), "run", "--regex", regex,
                        "--concurrency", str(args.concurrency)],
                       cwd=workspace / "ws", env={**os.environ, "TEMPEST_CONFIG_DIR":
                                           str(config.parent)},
                       stdout=(workspace / "tempest-run.log").open("wb"),
                       stderr=subprocess.STDOUT, check=False)
        elapsed = time.monotonic() - started
        rows = results(TEMPEST_VENV, workspace / "ws")
        counts = summarize(rows)
        print(f"\n{'service':<10} {'pass':>6} {'fail':>6} {'skip':>6}")
        for service in sorted(counts):
            c = counts[service]
            print(f"{service:<10} {c['pass']:>6} {c['fail']:>6} {c['skip']:>6}")
        total = sum(counts.values(), collections.Counter())
        print(f"{'total':<10} {total['pass']:>6} {total['fail']:>6} {total['skip']:>6}"
              f"   ({elapsed / 60:.1f} min)")
        failures = sorted({r["test"] for r in rows if r["status"] in ("fail", "failure")})
        (workspace / "failures.txt").write_text("\n".join(failures) + "\n")
        (workspace / "results.json").write_text(json.dumps(
            {"elapsed_s": round(elapsed), "counts": {k: dict(v) for k, v in counts.items()},
             "failures": failures}, indent=1))
        from guideline import check  # beside this file; it reads this run's results
        with contextlib.redirect_stdout(io.StringIO()):
            summary, _ = check(workspace)
        log(f"{summary} (the list: tools/conformance/guideline.py {workspace})")
        if args.guideline_with:
            merged = [w.resolve() for w in args.guideline_with] + [workspace]
            with contextlib.redirect_stdout(io.StringIO()):
                summary, _ = check(merged)
            log(f"with {', '.join(map(str, merged[:-1]))}: {summary}")
        log(f"failures: {workspace / 'failures.txt'}; full log: "
            f"{workspace / 'tempest-run.log'}; the server's: {workspace / 'onestack.log'}")
        if args.keep:
            assert isinstance(server, Server)  # --keep is refused with --real
            log(f"server left running at {server.url}, PID {server.proc.pid}")
            return 0
        return 0 if total["fail"] == 0 else 1
    finally:
        if not args.keep:
            server.stop()
            if server.log_path.exists():
                shutil.copy(server.log_path, workspace / "onestack.log")
            if isinstance(server, RealServer):
                left = server.leftovers()  # before the pidfiles go with the state
                log("left behind: " + ", ".join(left) if left else
                    f"nothing left behind (no namespace, link or process of prefix "
                    f"{server.prefix})")
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
