"""The ``onestack`` process itself: clean shutdown, restart on the same state, and the
operator commands (``onestack admin rotate-keys`` / ``reset-password``) on a live server.

Each test runs a server of its own (``own_server``), so it may stop, restart or re-key it.
"""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest
import yaml

from tests.e2e.conftest import ONESTACK, SERVER_ENV, CloudEnv, OpenStackCLI, clean_env

pytestmark = pytest.mark.e2e


def assert_clean_exit(server, returncode):
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal it caught,
    # so a clean exit is 0 or "terminated by SIGTERM" after a finished shutdown.
    log = server.log_path.read_text(errors="replace")
    assert returncode in (0, -signal.SIGTERM), (returncode, server.log_tail())
    assert "Finished server process" in log, server.log_tail()
    assert "Traceback" not in log, server.log_tail()


def admin_command(server, *args):
    proc = subprocess.run([ONESTACK, "admin", *args, "--state-dir", str(server.state_dir)],
                          env=clean_env(**SERVER_ENV), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc


def rotate_keys(server):
    admin_command(server, "rotate-keys")
    # The server re-reads the key repository at most once a second.
    time.sleep(1.2)


def reset_password(server, user, password):
    admin_command(server, "reset-password", user, "--password", password)
    # The server sees other processes' identity writes within a second.
    time.sleep(1.2)


def test_sigterm_exits_cleanly(own_server):
    pid = own_server.pid
    assert pid and own_server.proc.poll() is None
    r = httpx.get(f"{own_server.url}/v3", timeout=5)
    assert r.status_code == 200
    returncode = own_server.stop(timeout=10)  # raises if SIGTERM is ignored for 10 s
    assert_clean_exit(own_server, returncode)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{own_server.url}/v3", timeout=2)


def test_restart_keeps_data_and_tokens(own_server):
    srv = own_server
    password = srv.admin_password()
    token = srv.password_token()
    r = httpx.post(f"{srv.auth_url}/projects", headers={"X-Auth-Token": token}, timeout=10,
                   json={"project": {"name": "before-restart", "domain_id": "default",
                                     "description": "made before the restart"}})
    assert r.status_code == 201, r.text
    project_id = r.json()["project"]["id"]

    assert_clean_exit(srv, srv.stop())
    srv.start()  # same state dir, same port

    r = srv.validate(token)
    assert r.status_code == 200, r.text
    assert r.json()["token"]["project"]["name"] == "admin"
    r = httpx.get(f"{srv.auth_url}/projects", params={"name": "before-restart"},
                  headers={"X-Auth-Token": token}, timeout=10)
    assert r.status_code == 200, r.text
    assert [(p["id"], p["description"]) for p in r.json()["projects"]] == [
        (project_id, "made before the restart")]
    # The admin password survived, and the rewritten clouds.yaml works for the CLI.
    assert srv.admin_password() == password
    cli = OpenStackCLI(CloudEnv(srv.clouds_yaml, "onestack"))
    assert cli("project", "show", "before-restart")["id"] == project_id


def test_rotate_keys_while_running(own_server):
    srv = own_server
    before = srv.password_token()

    rotate_keys(srv)
    assert srv.validate(before).status_code == 200  # still valid under a secondary key
    after = srv.password_token()  # issued under the new primary key
    assert after != before
    assert srv.validate(after).status_code == 200
    assert srv.validate(before, auth=after).status_code == 200

    # max_active_keys = 3: one more rotation drops the key `before` was issued under.
    rotate_keys(srv)
    assert srv.validate(after).status_code == 200
    assert srv.validate(before, auth=after).status_code == 404


def test_reset_password_while_running(own_server):
    srv = own_server
    old_password = srv.admin_password()
    after = srv.password_token()
    reset_password(srv, "admin", "Reset-Secret-42")
    # Every token of the admin user is revoked ...
    r = srv.validate(after)
    assert r.status_code == 401, r.text
    fresh = srv.password_token(password="Reset-Secret-42")
    assert srv.validate(after, auth=fresh).status_code == 404
    # ... the old password no longer works, and the new one does.
    r = httpx.post(f"{srv.auth_url}/auth/tokens", timeout=10, json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": old_password}}}}})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == 401

    # clouds.yaml was rewritten with the new password and still points at this server.
    cloud = yaml.safe_load(srv.clouds_yaml.read_text())["clouds"]["onestack"]
    assert cloud["auth"]["password"] == "Reset-Secret-42"
    assert cloud["auth"]["auth_url"] == srv.auth_url
    token = OpenStackCLI(CloudEnv(srv.clouds_yaml, "onestack"))("token", "issue")
    assert token["id"]
