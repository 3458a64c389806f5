"""Shared fixtures.

``cloud``: an in-process OneStack (fake drivers, a fresh state dir, a cheap KDF) with an
HTTP client and an admin token. Use ``cloud.request(...)`` or ``cloud.client``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from onestack.api.app import create_app
from onestack.assembly import Services
from onestack.common.config import Config, load_config

ADMIN_PASSWORD = "admin-secret"

# A cheap argon2 cost for tests: correctness does not depend on it.
TEST_ENV = {
    "ONESTACK_IDENTITY_ARGON2_TIME_COST": "1",
    "ONESTACK_IDENTITY_ARGON2_MEMORY_KIB": "1024",
    # Fake host drivers: no QEMU, no bridges (tests/host/ runs the real ones).
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "fake",
    # Volumes in memory (tests/api/test_volume_local.py runs the local backend).
    "ONESTACK_VOLUME_BACKEND": "fake",
    "ONESTACK_HOST_NAME": "compute-1",
    "ONESTACK_HOST_POLL_INTERVAL": "1.0",
}


def make_config(state_dir: Path, **overrides: Any) -> Config:
    config = load_config(state_dir, environ=TEST_ENV, server_port=5000)
    for key, value in overrides.items():
        section, _, name = key.partition("_")
        setattr(getattr(config, section), name, value)
    return config


@dataclass
class Cloud:
    client: TestClient
    services: Services
    config: Config
    admin_token: str
    admin_user_id: str
    admin_project_id: str

    def request(self, method: str, path: str, token: str | None = "admin", **kw: Any):
        headers = dict(kw.pop("headers", {}) or {})
        if token == "admin":
            token = self.admin_token
        if token:
            headers["X-Auth-Token"] = token
        return self.client.request(method, path, headers=headers, **kw)

    def login(self, name: str, password: str, project: str | None = None,
              domain: str = "Default", project_domain: str = "Default") -> str:
        """Password login by name; returns the token (asserts success)."""
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": name, "domain": {"name": domain}, "password": password}}}}}
        if project:
            body["auth"]["scope"] = {"project": {"name": project,
                                                 "domain": {"name": project_domain}}}
        r = self.client.post("/v3/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]


@contextlib.contextmanager
def running_cloud(tmp_path: Path, **overrides: Any) -> Iterator[Cloud]:
    """An in-process cloud on a fresh state dir (``overrides`` as in ``make_config``)."""
    config = make_config(tmp_path / "state", **overrides)
    services = Services(config, admin_password=ADMIN_PASSWORD)
    app = create_app(config, services)
    with TestClient(app, base_url="http://127.0.0.1:5000") as client:
        c = Cloud(client, services, config, "", services.bootstrap.admin_user_id,
                  services.bootstrap.admin_project_id)
        c.admin_token = c.login("admin", ADMIN_PASSWORD, project="admin")
        yield c
    services.close()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with running_cloud(tmp_path) as c:
        yield c
