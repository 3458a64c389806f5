"""Helpers for the server tests (tests/api/test_compute_servers.py, _actions.py,
_microversions.py); other Compute tests may use them too.

- ``quiet_cloud``: a ``cloud`` whose host agent does not run, so servers stay exactly in
  the states the API side gives them (register hosts with ``add_host``);
- ``BootEnv`` / ``boot_env``: what a server needs - an active image, a network with a
  subnet, a flavor - made for a project;
- ``boot``, ``server``, ``action``, ``wait_for``: the requests the tests repeat.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.db.models import Instance, utcnow
from tests.api.network_helpers import Tenant, tenant
from tests.api.nova_helpers import V21, add_host, nova, nova_error, ok
from tests.conftest import Cloud, running_cloud

__all__ = ["V21", "BootEnv", "Tenant", "action", "add_host", "boot", "boot_env",
           "force_state", "latest", "nova", "nova_error", "ok", "quiet_cloud", "server",
           "tenant", "upload_image", "wait_for"]

#: The newest microversion, as a header value.
LATEST = "2.96"


def latest(microversion: str = LATEST) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {microversion}"}


@contextlib.contextmanager
def quiet_cloud(tmp_path: Path, **overrides: Any) -> Iterator[Cloud]:
    """Like the ``cloud`` fixture, without this host's agent: nothing converges."""
    with running_cloud(tmp_path, host_agent=False, **overrides) as cloud:
        yield cloud


# -- what a server needs -------------------------------------------------------------------


def upload_image(cloud, token: str | None = "admin", data: bytes = b"\0" * 65536,
                 **attrs: Any) -> str:
    """An active raw image (public when the admin makes it); returns its id."""
    attrs.setdefault("name", "cirros")
    attrs.setdefault("disk_format", "raw")
    attrs.setdefault("container_format", "bare")
    if token == "admin":
        attrs.setdefault("visibility", "public")
    r = cloud.request("POST", "/image/v2/images", token=token, json=attrs)
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    r = cloud.request("PUT", f"/image/v2/images/{image_id}/file", token=token, content=data,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return image_id


@dataclass
class BootEnv:
    image: str
    network: str
    subnet: str
    flavor: str = "1"
    token: str | None = "admin"

    def server(self, **attrs: Any) -> dict[str, Any]:
        """A create body for this environment (``networks`` on the network)."""
        body: dict[str, Any] = {"name": "vm", "imageRef": self.image,
                                "flavorRef": self.flavor,
                                "networks": [{"uuid": self.network}]}
        body.update(attrs)
        return body


def boot_env(cloud, token: str | None = "admin", cidr: str = "10.0.0.0/24",
             image: str | None = None, name: str = "private") -> BootEnv:
    """A network with an IPv4 subnet for ``token``'s project, and an image (a public
    one the admin uploads, unless given)."""
    r = cloud.request("POST", "/network/v2.0/networks", token=token,
                      json={"network": {"name": name}})
    assert r.status_code == 201, r.text
    network = r.json()["network"]["id"]
    r = cloud.request("POST", "/network/v2.0/subnets", token=token,
                      json={"subnet": {"network_id": network, "cidr": cidr,
                                       "ip_version": 4}})
    assert r.status_code == 201, r.text
    return BootEnv(image or upload_image(cloud), network, r.json()["subnet"]["id"],
                   token=token)


# -- requests -----------------------------------------------------------------------------


def boot(cloud, env: BootEnv | None = None, token: str | None = None,
         microversion: str | None = LATEST, status: int = 202, **server: Any) -> Any:
    """POST /servers; with ``env``, its defaults under ``server``. Returns the body's
    ``server`` on 202, else the response."""
    body = env.server(**server) if env is not None else server
    token = token if token is not None else (env.token if env is not None else "admin")
    r = nova(cloud, "POST", "/servers", token=token, microversion=microversion,
             json={"server": body})
    if status != 202:
        return r
    assert r.status_code == 202, r.text
    return r.json()["server"]


def server(cloud, server_id: str, token: str | None = "admin",
           microversion: str | None = LATEST) -> dict[str, Any]:
    return ok(nova(cloud, "GET", f"/servers/{server_id}", token=token,
                   microversion=microversion))["server"]


def action(cloud, server_id: str, body: dict[str, Any], token: str | None = "admin",
           microversion: str | None = LATEST):
    return nova(cloud, "POST", f"/servers/{server_id}/action", token=token,
                microversion=microversion, json=body)


def wait_for(cloud, server_id: str, status: str, token: str | None = "admin",
             timeout: float = 20.0, task_state: Any = None) -> dict[str, Any]:
    """Poll until the server shows ``status`` with no task pending (the agent's work
    done); fails with the last body."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = server(cloud, server_id, token)
        if body["status"] == status and body["OS-EXT-STS:task_state"] == task_state:
            return body
        time.sleep(0.05)
    raise AssertionError(f"server {server_id} did not reach {status}: {body}")


def force_state(cloud, server_id: str, **values: Any) -> None:
    """Set instance columns as the host side would (tests without an agent)."""
    with cloud.services.db.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        for key, value in values.items():
            setattr(inst, key, value)
        if values.get("vm_state") == "active" and inst.launched_at is None:
            inst.launched_at = utcnow()
        inst.updated_at = utcnow()


def instance_row(cloud, server_id: str) -> Any:
    """The server's database row (an ``Instance``), as it stands now."""
    with cloud.services.db.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        return inst
