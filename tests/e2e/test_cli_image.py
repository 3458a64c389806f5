"""The Image service with the stock ``openstack`` CLI against a real ``onestack up``.

The server is this module's own (ports 5300-5399), started with a 1 GiB maximum
virtual size so that an oversized image can be refused without writing one, and pages
of 5 images so that the client's lists always go through several pages.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.image_helpers import HOSTILE, TEST_MAX_VIRTUAL_SIZE, hostile_image, qemu_img
from tests.e2e.conftest import (
    HOST,
    CloudEnv,
    ExtraClouds,
    OpenStackCLI,
    Server,
    ServerError,
    port_is_free,
)

pytestmark = pytest.mark.e2e

PORTS = range(5300, 5400)
#: The server's default page size: small, so every list the CLI makes follows `next`.
PAGE_SIZE = 5
MiB = 1 << 20


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("onestack-image")
    candidates = list(PORTS)
    random.shuffle(candidates)
    last: Exception | None = None
    for port in [p for p in candidates if port_is_free(p)][:5]:
        server = Server(state_dir=base / "state", port=port, log_path=base / "server.log",
                        env={"ONESTACK_IMAGE_MAX_VIRTUAL_SIZE": str(TEST_MAX_VIRTUAL_SIZE),
                             "ONESTACK_IMAGE_LIMIT_PARAM_DEFAULT": str(PAGE_SIZE)})
        try:
            server.start()
        except ServerError as exc:
            last = exc
            if "address already in use" in str(exc).lower():
                continue
            raise
        try:
            yield server
        finally:
            server.stop()
        return
    raise ServerError(f"could not start onestack up on a port in 5300-5399: {last}")


@pytest.fixture(scope="module")
def openstack(image_server: Server) -> OpenStackCLI:
    return OpenStackCLI(CloudEnv(image_server.clouds_yaml, "onestack"))


@pytest.fixture(scope="module")
def clouds(image_server: Server, tmp_path_factory: pytest.TempPathFactory) -> ExtraClouds:
    return ExtraClouds(tmp_path_factory.mktemp("image-clouds") / "clouds.yaml", image_server)


def random_file(path: Path, size: int, seed: int = 1) -> Path:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(MiB, left)
            f.write(rng.randbytes(n))
            left -= n
    return path


def digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def store_files(server: Server) -> set[str]:
    root = server.state_dir / "images"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def make_user(openstack: OpenStackCLI, clouds: ExtraClouds, unique: str
              ) -> tuple[CloudEnv, str]:
    """A project with a member user of its own; returns (its cloud, project id)."""
    project = openstack("project", "create", f"img-project-{unique}")["id"]
    password = f"pw-{unique}"
    openstack("user", "create", "--password", password, "--project", project,
              f"img-user-{unique}")
    openstack("role", "add", "--user", f"img-user-{unique}", "--project", project, "member")
    env = clouds.add_user(f"img-{unique}", f"img-user-{unique}", password,
                          project=f"img-project-{unique}")
    return env, project


def test_image_lifecycle(openstack, image_server, tmp_path, unique):
    data = random_file(tmp_path / "disk.raw", 3 * MiB + 123)
    name = f"e2e-image-{unique}"
    image = openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                      "--container-format", "bare", "--min-ram", "64",
                      "--property", "os_distro=debian", "--tag", "e2e", name)
    assert image["name"] == name and image["status"] == "active"
    assert image["size"] == data.stat().st_size
    assert image["checksum"] == digest(data, "md5")
    assert image["disk_format"] == "raw" and image["visibility"] == "shared"
    assert image["properties"]["os_distro"] == "debian"
    assert image["properties"]["os_hash_algo"] == "sha512"
    assert image["properties"]["os_hash_value"] == digest(data, "sha512")
    assert image["tags"] == ["e2e"] and image["min_ram"] == 64
    iid = image["id"]
    assert store_files(image_server) >= {iid}

    listed = openstack("image", "list", "--long")
    row = next(r for r in listed if r["ID"] == iid)
    assert row["Name"] == name and row["Status"] == "active"
    assert row["Checksum"] == image["checksum"]
    assert iid in {r["ID"] for r in openstack("image", "list", "--tag", "e2e")}
    assert iid in {r["ID"] for r in openstack("image", "list", "--property",
                                              "os_distro=debian")}

    renamed = f"{name}-renamed"
    openstack("image", "set", "--name", renamed, "--property", "os_version=12",
              "--tag", "second", "--min-disk", "2", "--protected", iid)
    shown = openstack("image", "show", renamed)
    assert shown["id"] == iid and shown["min_disk"] == 2 and shown["protected"] is True
    assert shown["properties"]["os_version"] == "12"
    assert sorted(shown["tags"]) == ["e2e", "second"]
    openstack("image", "unset", "--property", "os_version", "--tag", "second", iid)
    shown = openstack("image", "show", iid)
    assert "os_version" not in shown["properties"] and shown["tags"] == ["e2e"]

    out = tmp_path / "saved.raw"
    openstack("image", "save", "--file", str(out), iid)
    assert out.read_bytes() == data.read_bytes()

    err = openstack.fails("image", "delete", iid)
    assert "protected" in err.stderr.lower() or "403" in err.stderr, err
    openstack("image", "set", "--unprotected", iid)
    openstack("image", "delete", iid)
    err = openstack.fails("image", "show", iid)
    assert "No Image found" in err.stderr or "404" in err.stderr, err
    assert iid not in store_files(image_server)


def test_large_image_round_trip(openstack, tmp_path, unique):
    data = random_file(tmp_path / "big.raw", 48 * MiB, seed=2)
    image = openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                      f"e2e-big-{unique}")
    assert image["status"] == "active" and image["size"] == 48 * MiB
    assert image["properties"]["os_hash_value"] == digest(data, "sha512")
    out = tmp_path / "big.saved"
    openstack("image", "save", "--file", str(out), image["id"])
    assert digest(out, "sha512") == digest(data, "sha512")
    openstack("image", "delete", image["id"])


def test_deactivate_and_reactivate(openstack, tmp_path, unique):
    data = random_file(tmp_path / "d.raw", MiB)
    image = openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                      f"e2e-deact-{unique}")
    openstack("image", "set", "--deactivate", image["id"])
    assert openstack("image", "show", image["id"])["status"] == "deactivated"
    openstack("image", "set", "--activate", image["id"])
    assert openstack("image", "show", image["id"])["status"] == "active"
    openstack("image", "delete", image["id"])


def test_sharing_between_two_projects(openstack, clouds, tmp_path, unique):
    other, other_project = make_user(openstack, clouds, unique)
    data = random_file(tmp_path / "shared.raw", MiB + 7, seed=3)
    image = openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                      "--shared", f"e2e-shared-{unique}")
    iid = image["id"]
    err = openstack.fails("image", "show", iid, cloud_env=other)
    assert "No Image found" in err.stderr or "404" in err.stderr, err

    member = openstack("image", "add", "project", iid, other_project, json_output=True)
    assert member["status"] == "pending" and member["member_id"] == other_project
    # pending: usable by id, not yet in the other project's list
    assert openstack("image", "show", iid, cloud_env=other)["id"] == iid
    assert iid not in {r["ID"] for r in openstack("image", "list", cloud_env=other)}

    openstack("image", "set", "--accept", iid, cloud_env=other)
    assert iid in {r["ID"] for r in openstack("image", "list", cloud_env=other)}
    members = openstack("image", "member", "list", iid)
    assert [(m["Member ID"], m["Status"]) for m in members] == [(other_project, "accepted")]
    out = tmp_path / "shared.saved"
    openstack("image", "save", "--file", str(out), iid, cloud_env=other)
    assert out.read_bytes() == data.read_bytes()

    # the member may not change, share or delete it
    err = openstack.fails("image", "set", "--name", "stolen", iid, cloud_env=other)
    assert "403" in err.stderr, err
    err = openstack.fails("image", "delete", iid, cloud_env=other)
    assert "403" in err.stderr or "Failed to delete" in err.stderr, err
    # nor publish their own images (only administrators may)
    err = openstack.fails("image", "create", "--public", f"e2e-public-{unique}",
                          cloud_env=other)
    assert "403" in err.stderr, err

    openstack("image", "remove", "project", iid, other_project)
    err = openstack.fails("image", "show", iid, cloud_env=other)
    assert "No Image found" in err.stderr or "404" in err.stderr, err
    openstack("image", "delete", iid)


def test_import_glance_direct(openstack, image_server, tmp_path, unique):
    disk = tmp_path / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(disk), "32M")
    image = openstack("image", "create", "--import", "--file", str(disk),
                      "--disk-format", "qcow2", "--container-format", "bare",
                      f"e2e-import-{unique}")
    shown = openstack("image", "show", image["id"])
    assert shown["status"] == "active", shown
    assert shown["virtual_size"] == 32 * MiB and shown["size"] == disk.stat().st_size
    assert shown["checksum"] == digest(disk, "md5")
    out = tmp_path / "imported.qcow2"
    openstack("image", "save", "--file", str(out), image["id"])
    assert out.read_bytes() == disk.read_bytes()
    assert not any(f.startswith("staging/") for f in store_files(image_server))
    openstack("image", "delete", image["id"])


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_image_is_rejected(openstack, image_server, tmp_path, unique, kind):
    disk_format, words = HOSTILE[kind]
    path = hostile_image(kind, tmp_path)
    name = f"e2e-hostile-{kind}-{unique}"
    err = openstack.fails("image", "create", "--file", str(path), "--disk-format",
                          disk_format, "--container-format", "bare", name)
    assert "400" in err.stderr and words in err.stderr, err
    # the client deletes what it created; nothing active and no data remain
    rows = openstack("image", "list", "--name", name, "--long")
    assert all(r["Status"] != "active" for r in rows), rows
    assert not any(name in f for f in store_files(image_server))


def test_hostile_import_is_killed(openstack, image_server, tmp_path, unique):
    """An import is answered before the client looks at the result (Glance imports in
    the background), so the CLI succeeds; the image it leaves is killed, dataless."""
    path = hostile_image("qcow2-backing-file", tmp_path)
    image = openstack("image", "create", "--import", "--file", str(path),
                      "--disk-format", "qcow2", "--container-format", "bare",
                      f"e2e-hostile-import-{unique}")
    shown = openstack("image", "show", image["id"])
    assert shown["status"] == "killed" and shown.get("size") is None
    assert not any(image["id"] in f for f in store_files(image_server))
    openstack("image", "delete", image["id"])


def _put_partially(server: Server, token: str, image_id: str, announced: int,
                   sent: int) -> None:
    """Start an upload announcing ``announced`` bytes, send ``sent`` and hang up."""
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        head = (f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\n"
                f"Host: {HOST}:{server.port}\r\nX-Auth-Token: {token}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {announced}\r\n\r\n")
        sock.sendall(head.encode())
        chunk = bytes(64 * 1024)
        left = sent
        while left:
            n = min(len(chunk), left)
            sock.sendall(chunk[:n])
            left -= n


def queued_image(server: Server, token: str, name: str) -> dict:
    """A queued image made through the API (``openstack image create`` without
    ``--file`` uploads its stdin, even when that is empty)."""
    r = httpx.post(f"{server.url}/image/v2/images", timeout=10, headers={
        "X-Auth-Token": token}, json={"name": name, "disk_format": "raw",
                                      "container_format": "bare"})
    assert r.status_code == 201, r.text
    return r.json()


def test_interrupted_upload_leaves_nothing(openstack, image_server, unique):
    token = image_server.password_token()
    image = queued_image(image_server, token, f"e2e-interrupted-{unique}")
    _put_partially(image_server, token, image["id"], 64 * MiB, 8 * MiB)
    url = f"{image_server.url}/image/v2/images/{image['id']}"
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        status = httpx.get(url, headers={"X-Auth-Token": token}, timeout=10).json()["status"]
        if status == "queued" and not any(".partial" in f for f in store_files(image_server)):
            break
        time.sleep(0.2)
    assert status == "queued"
    assert not any(image["id"] in f for f in store_files(image_server))
    # the image takes a complete upload afterwards
    r = httpx.put(f"{url}/file", content=b"complete", timeout=10, headers={
        "X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert openstack("image", "show", image["id"])["status"] == "active"
    openstack("image", "delete", image["id"])


def test_negative_cases(openstack, image_server, unique):
    err = openstack.fails("image", "show", f"e2e-missing-{unique}")
    assert "No Image found" in err.stderr or "404" in err.stderr, err
    token = image_server.password_token()
    image = queued_image(image_server, token, f"e2e-neg-{unique}")
    base = f"{image_server.url}/image/v2/images/{image['id']}"
    headers = {"X-Auth-Token": token}
    r = httpx.patch(base, headers={**headers, "Content-Type": "application/json"},
                    content=json.dumps([{"op": "replace", "path": "/name", "value": "x"}]))
    assert r.status_code == 415 and r.json()["code"] == 415, r.text
    r = httpx.put(f"{base}/file", headers={**headers, "Content-MD5": "0" * 32,
                                           "Content-Type": "application/octet-stream"},
                  content=b"data")
    assert r.status_code == 400 and "MD5" in r.json()["message"], r.text
    assert openstack("image", "show", image["id"])["status"] == "queued"
    openstack("image", "delete", image["id"])


def test_list_pages_filters_and_sorts(openstack, image_server, unique):
    token = image_server.password_token()
    tag = f"page-{unique}"
    made = []
    for n in range(12):
        image = queued_image(image_server, token, f"e2e-page-{unique}-{n:02d}")
        r = httpx.put(f"{image_server.url}/image/v2/images/{image['id']}/tags/{tag}",
                      headers={"X-Auth-Token": token}, timeout=10)
        assert r.status_code == 204, r.text
        made.append(image["id"])
    # the client follows the server's next links (pages of 5) to the end ...
    rows = openstack("image", "list", "--tag", tag, "--sort", "name:asc")
    assert [r["ID"] for r in rows] == made
    # ... unless given --limit: then it asks for one page of that size (newest first)
    rows = openstack("image", "list", "--tag", tag, "--limit", "4", "--sort", "name:asc")
    assert [r["ID"] for r in rows] == made[-4:]
    rows = openstack("image", "list", "--tag", tag, "--status", "queued", "--long")
    assert sorted(r["ID"] for r in rows) == sorted(made)
    assert openstack("image", "list", "--tag", tag, "--status", "active") == []
    for image_id in made:
        openstack("image", "delete", image_id)
