"""Run OpenStack's own conformance suite (Tempest) against a fresh ``onestack up``.

``make conformance`` runs this with the project's venv. It

1. installs Tempest into its own venv (``build/tempest-venv``, pinned version) once;
2. starts ``onestack up`` on a free loopback port with a throwaway state directory, the
   fake host drivers by default (the API tests check the APIs: servers still go through
   the scheduler, the host link and the agent, but no QEMU boots; ``--real`` uses the
   real drivers, which needs root and takes hours under TCG);
3. uploads the test image twice (``image_ref`` and ``image_ref_alt``) and writes
   ``tempest.conf`` with the features configured as OneStack implements them
   (``tools/conformance/tempest.conf.in``: what is not supported is said there, not
   skipped by name);
4. runs the API tests of the chosen services and prints pass/fail/skip per service,
   writing ``build/conformance/results.json`` and the failures with their reasons to
   ``build/conformance/failures.txt``.

The server is stopped by its PID whatever happens. Nothing is sent anywhere but to the
server on loopback.
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
BIN = Path(sys.executable).parent
SERVICES = ("identity", "compute", "image", "network", "volume")

FAKE_DRIVERS = {
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "fake",
    "ONESTACK_HOST_POLL_INTERVAL": "0.5",
}


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
                    "ONESTACK_IDENTITY_FAILED_LOGINS_PER_SOURCE": "100000"})
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


def write_config(path: Path, server: Server, admin: Admin, images: tuple[str, str],
                 services: list[str]) -> None:
    values = {
        "url": server.url, "password": server.admin_password(),
        "image_ref": images[0], "image_ref_alt": images[1],
        "public_network_id": admin.public_network(),
        "network_extensions": admin.network_extensions(),
        "lock_path": str(path.parent / "lock"),
        "log_file": str(path.parent.parent / "tempest.log"),
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
                          capture_output=True, check=False).stdout.decode()
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
                        help="real host drivers (root, QEMU under TCG): very slow")
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
    tempest = ensure_tempest()
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    state = Path(tempfile.mkdtemp(prefix="onestack-conformance-"))
    server = Server(state / "state", free_port(), args.real)
    try:
        server.wait()
        log(f"onestack up at {server.url} (log {server.log_path})")
        admin = Admin(server.url, server.admin_password())
        data = test_image()
        images = (admin.upload_image("conformance-image", data),
                  admin.upload_image("conformance-image-alt", data))
        subprocess.run([str(tempest), "init", "--workspace-path",
                        str(workspace / "workspaces.yaml"), str(workspace / "ws")], check=True,
                       capture_output=True)
        config = workspace / "ws" / "etc" / "tempest.conf"
        write_config(config, server, admin, images, services)
        # the API tests, those Tempest runs one at a time (serial_tests) included
        regex = args.regex or (r"^tempest\.(serial_tests\.)?api\.("
                               + "|".join(services) + r")\.")
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
        log(f"failures: {workspace / 'failures.txt'}; full log: "
            f"{workspace / 'tempest-run.log'}; the server's: {workspace / 'onestack.log'}")
        if args.keep:
            log(f"server left running at {server.url}, PID {server.proc.pid}")
            return 0
        return 0 if total["fail"] == 0 else 1
    finally:
        if not args.keep:
            server.stop()
            if server.log_path.exists():
                shutil.copy(server.log_path, workspace / "onestack.log")
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
