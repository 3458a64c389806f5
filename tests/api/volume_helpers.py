"""Helpers shared by the Block Storage API tests (tests/api/test_volume_*.py)."""

from __future__ import annotations

import time
from typing import Any

LATEST = "3.70"


def vheaders(version: str = LATEST) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {version}"}


class VolumeClient:
    """Requests to /volume/v3/<project> as one caller, at one microversion."""

    def __init__(self, cloud: Any, token: str | None = "admin",
                 project: str | None = None, version: str = LATEST) -> None:
        self.cloud = cloud
        self.token = token
        self.project = project or cloud.admin_project_id
        self.version = version

    def request(self, method: str, path: str, version: str | None = None, **kw: Any) -> Any:
        headers = {**vheaders(version or self.version), **(kw.pop("headers", None) or {})}
        return self.cloud.request(method, f"/volume/v3/{self.project}{path}",
                                  token=self.token, headers=headers, **kw)

    def ok(self, method: str, path: str, status: int | None = None, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        assert (r.status_code == status) if status else r.status_code < 300, \
            f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def create(self, size: int = 1, wait: str | None = "available", **attrs: Any
               ) -> dict[str, Any]:
        vol = self.ok("POST", "/volumes", status=202,
                      json={"volume": {"size": size, **attrs}})["volume"]
        assert vol["status"] == "creating"
        if wait:
            vol = self.wait(vol["id"], wait)
        return vol

    def show(self, volume_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/volumes/{volume_id}")["volume"]

    def wait(self, volume_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        self.cloud.services.volume.wait_idle(timeout)
        deadline = time.monotonic() + timeout
        while True:
            vol = self.show(volume_id)
            if vol["status"] == status:
                return vol
            assert time.monotonic() < deadline, f"volume {volume_id}: {vol['status']}"
            time.sleep(0.05)

    def gone(self, volume_id: str) -> None:
        self.cloud.services.volume.wait_idle()
        assert self.request("GET", f"/volumes/{volume_id}").status_code == 404

    def action(self, volume_id: str, body: dict[str, Any], **kw: Any) -> Any:
        return self.request("POST", f"/volumes/{volume_id}/action", json=body, **kw)

    def snapshot(self, volume_id: str, **attrs: Any) -> dict[str, Any]:
        snap = self.ok("POST", "/snapshots", status=202, json={"snapshot": {
            "volume_id": volume_id, **attrs}})["snapshot"]
        self.cloud.services.volume.wait_idle()
        return self.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]


def fault(r: Any, status: int, name: str, *words: str) -> str:
    """Assert Cinder's fault body: ``{name: {"message", "code"}}``; the message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    message: str = body[name]["message"]
    for word in words:
        assert word in message, message
    return message
