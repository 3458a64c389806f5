"""Helpers shared by the Image API tests (tests/api/test_image*.py)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}


def make_project_member(cloud, name: str, role: str = "member") -> tuple[str, str]:
    """A project and a user holding ``role`` on it; returns (token, project id)."""
    ident = cloud.services.identity
    project = ident.projects.create(name=f"{name}-project", domain_id="default")
    user = ident.users.create(name=name, password=f"{name}-secret", domain_id="default")
    with ident.db.session() as s:
        ident.assignments.grant(s, "UserProject", user.id, project.id,
                                ident.roles.find(role).id)
    return cloud.login(name, f"{name}-secret", project=project.name), project.id


def create_image(cloud, token: str | None = "admin", status: int = 201, **body: Any):
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    r = cloud.request("POST", "/image/v2/images", token=token, json=body)
    assert r.status_code == status, r.text
    return r.json()


def upload(cloud, image_id: str, data: bytes, token: str | None = "admin",
           status: int = 204, headers: dict[str, str] | None = None):
    r = cloud.request("PUT", f"/image/v2/images/{image_id}/file", token=token, content=data,
                      headers={**OCTET, **(headers or {})})
    assert r.status_code == status, r.text
    return r


def show(cloud, image_id: str, token: str | None = "admin") -> dict[str, Any]:
    r = cloud.request("GET", f"/image/v2/images/{image_id}", token=token)
    assert r.status_code == 200, r.text
    return r.json()


def patch(cloud, image_id: str, ops: list[dict[str, Any]], token: str | None = "admin",
          status: int = 200):
    r = cloud.request("PATCH", f"/image/v2/images/{image_id}", token=token, json=ops,
                      headers=PATCH)
    assert r.status_code == status, r.text
    return r.json()


def assert_glance_error(r, status: int, *words: str) -> None:
    """Glance's (webob's) error body: ``code``/``title``/``message`` at the top and
    again under ``error``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["title"] and body["message"], body
    assert body["error"]["code"] == status, body
    for word in words:
        assert word in body["message"], body["message"]


def store_files(cloud) -> list[str]:
    """Every file in the image store (staging included), relative to it."""
    root = Path(cloud.config.state_dir) / "images"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


# -- raw ASGI: streaming bodies and clients that go away ---------------------------------


class ASGIResult:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


async def _call(app, method: str, path: str, headers: dict[str, str],
                chunks: AsyncIterator[bytes] | None, disconnect_at_end: bool) -> ASGIResult:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 5000),
    }
    result = ASGIResult()
    state = "body"
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal state
        if state == "body":
            if chunks is None:
                state = "sent"
                return {"type": "http.request", "body": b"", "more_body": False}
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                if disconnect_at_end:
                    state = "gone"
                    return {"type": "http.disconnect"}
                state = "sent"
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        if state == "gone":
            return {"type": "http.disconnect"}
        await never.wait()  # the client stays until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    await app(scope, receive, send)
    return result


def asgi_stream(cloud, method: str, path: str, chunks: Iterable[bytes] | None,
                headers: dict[str, str] | None = None, disconnect_at_end: bool = False,
                on_chunk: Callable[[int], None] | None = None) -> ASGIResult:
    """Send a request straight to the ASGI app, its body chunk by chunk (nothing
    buffered by a test client). ``disconnect_at_end``: after the last chunk the client
    goes away instead of ending the body. ``on_chunk(n)`` runs before chunk ``n``."""

    async def gen() -> AsyncIterator[bytes]:
        for n, chunk in enumerate(chunks or []):
            if on_chunk is not None:
                on_chunk(n)
            yield chunk

    all_headers = {"x-auth-token": cloud.admin_token, **(headers or {})}
    return asyncio.run(_call(cloud.client.app, method, path, all_headers,
                             gen() if chunks is not None else None, disconnect_at_end))


# -- hostile images -------------------------------------------------------------------

#: name -> (declared disk_format, what the 400 says); built by ``hostile_image``.
HOSTILE = {
    "qcow2-backing-file": ("qcow2", "backing file"),
    "qcow2-data-file": ("qcow2", "data_file"),
    "qcow2-declared-raw": ("raw", "qcow2"),
    "qcow2-too-big": ("qcow2", "exceeds the maximum"),
    "vmdk-descriptor-to-host-file": ("vmdk", "vmdk safety checks"),
    "vmdk-flat-extents": ("vmdk", "vmdk safety checks"),
    "vmdk-sparse-extent-to-host-file": ("vmdk", "extent"),
    "vhd-differencing": ("vhd", "parent"),
    "vhdx-parent-locator": ("vhdx", "parent"),
}
#: The largest virtual size the tests allow (``qcow2-too-big`` is 2 GiB).
TEST_MAX_VIRTUAL_SIZE = 1 << 30


def hostile_image(kind: str, directory: Path) -> Path:
    """Write a crafted image of ``kind`` (a key of HOSTILE) that names host files or
    lies about its format; returns its path. Byte-level builders are the inspector's
    own test builders (tests/unit/test_inspect.py)."""
    from tests.unit.test_inspect import (
        vhd_footer,
        vhdx,
        vmdk_descriptor,
        vmdk_sparse,
    )

    path = directory / f"{kind}.img"
    if kind == "qcow2-backing-file":
        qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw",
                 str(path), "1M")
    elif kind == "qcow2-data-file":
        qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={directory / 'data'}",
                 str(path), "1M")
    elif kind == "qcow2-declared-raw":
        qemu_img("create", "-q", "-f", "qcow2", str(path), "1M")
    elif kind == "qcow2-too-big":
        qemu_img("create", "-q", "-f", "qcow2", str(path), "2G")
    elif kind == "vmdk-descriptor-to-host-file":
        path.write_text(vmdk_descriptor("monolithicFlat",
                                        ['RW 2048 FLAT "/etc/passwd" 0']))
    elif kind == "vmdk-flat-extents":
        qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
                 str(path), "1M")
    elif kind == "vmdk-sparse-extent-to-host-file":
        path.write_bytes(vmdk_sparse(vmdk_descriptor(
            "monolithicSparse", ['RW 2048 SPARSE "/etc/passwd"'])))
    elif kind == "vhd-differencing":
        path.write_bytes(vhd_footer(4) + bytes(1024))
    elif kind == "vhdx-parent-locator":
        path.write_bytes(vhdx(parent_locator=True))
    else:
        raise KeyError(kind)
    return path
