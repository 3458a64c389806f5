"""Block Storage with the stock ``openstack`` CLI against a real ``onestack up`` (the
``local`` volume backend: real qcow2 files): create, list, snapshot, volume from a
snapshot and from an image, properties, extend, transfer to another project, Cinder's
errors, delete."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e


def wait_volume(openstack, name, status, timeout=60, cloud_env=None):
    deadline = time.monotonic() + timeout
    while True:
        vol = openstack("volume", "show", name, cloud_env=cloud_env)
        if vol["status"] == status:
            return vol
        assert vol["status"] not in ("error", "error_deleting") or status.startswith("error"), vol
        assert time.monotonic() < deadline, vol
        time.sleep(0.3)


def wait_snapshot(openstack, name, status, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        snap = openstack("volume", "snapshot", "show", name)
        if snap["status"] == status:
            return snap
        assert time.monotonic() < deadline, snap
        time.sleep(0.3)


def wait_gone(openstack, name, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        names = {item["Name"] for item in openstack("volume", "list")}
        if name not in names:
            return
        assert time.monotonic() < deadline, names
        time.sleep(0.3)


def test_volume_lifecycle(openstack, server, unique, tmp_path_factory):
    v1, v2, s1 = f"v1-{unique}", f"v2-{unique}", f"s1-{unique}"
    created = openstack("volume", "create", "--size", "1", v1)
    assert created["size"] == 1 and created["name"] == v1
    vol = wait_volume(openstack, v1, "available")
    assert (server.state_dir / "volumes" / f"volume-{vol['id']}").exists()
    listed = {item["Name"]: item for item in openstack("volume", "list")}
    assert listed[v1]["Size"] == 1 and listed[v1]["Status"] == "available"

    openstack("volume", "set", "--property", "purpose=e2e", "--description", "d1", v1)
    shown = openstack("volume", "show", v1)
    assert shown["properties"] == {"purpose": "e2e"} and shown["description"] == "d1"
    openstack("volume", "unset", "--property", "purpose", v1)
    assert openstack("volume", "show", v1)["properties"] == {}

    snap = openstack("volume", "snapshot", "create", "--volume", v1, s1)
    assert snap["volume_id"] == vol["id"]
    wait_snapshot(openstack, s1, "available")
    assert any(s["Name"] == s1 for s in openstack("volume", "snapshot", "list"))

    from_snap = openstack("volume", "create", "--snapshot", s1, v2)
    assert from_snap["snapshot_id"] == snap["id"]
    assert wait_volume(openstack, v2, "available")["size"] == 1

    openstack("volume", "set", "--size", "2", v1)
    assert wait_volume(openstack, v1, "available")["size"] == 2

    openstack("volume", "set", "--bootable", v1)
    assert openstack("volume", "show", v1)["bootable"] in (True, "true")

    # a volume with a snapshot is not deleted alone
    err = openstack.fails("volume", "delete", v1)
    assert "snapshots" in str(err)
    openstack("volume", "delete", v2)
    openstack("volume", "snapshot", "delete", s1)
    deadline = time.monotonic() + 60
    while any(s["Name"] == s1 for s in openstack("volume", "snapshot", "list")):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    openstack("volume", "delete", v1)
    wait_gone(openstack, v1)
    names = {item["Name"] for item in openstack("volume", "list")}
    assert v1 not in names and v2 not in names
    assert not (server.state_dir / "volumes" / f"volume-{vol['id']}").exists()


def test_volume_from_image(openstack, unique, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vol-image")
    disk = tmp / "disk.raw"
    disk.write_bytes(b"\x42" * (1 << 20))
    image = openstack("image", "create", "--disk-format", "raw", "--container-format",
                      "bare", "--file", str(disk), f"vol-src-{unique}")
    name = f"from-image-{unique}"
    openstack("volume", "create", "--size", "1", "--image", image["id"], name)
    vol = wait_volume(openstack, name, "available")
    assert vol["bootable"] in (True, "true")
    assert vol["volume_image_metadata"]["image_id"] == image["id"]
    openstack("volume", "delete", name)


def test_bad_sizes_and_quota(openstack, unique):
    for size in ("0", "-1"):
        err = openstack.fails("volume", "create", "--size", size, f"bad-{unique}")
        assert "minimum of 1" in str(err) or "must be" in str(err), str(err)
    err = openstack.fails("volume", "create", "--size", str(10**9), f"huge-{unique}")
    assert "quota" in str(err).lower(), str(err)
    assert not [v for v in openstack("volume", "list") if v["Name"].endswith(unique)]


def test_transfer_to_another_project(openstack, extra_clouds, unique):
    project = f"taker-{unique}"
    openstack("project", "create", project)
    openstack("user", "create", "--project", project, "--password", "taker-secret",
              f"taker-{unique}")
    openstack("role", "add", "--project", project, "--user", f"taker-{unique}", "member")
    taker = extra_clouds.add_user(f"taker-{unique}", f"taker-{unique}", "taker-secret",
                                  project=project)
    name = f"gift-{unique}"
    vol = openstack("volume", "create", "--size", "1", name)
    wait_volume(openstack, name, "available")
    request = openstack("volume", "transfer", "request", "create", name)
    assert request["auth_key"]
    assert wait_volume(openstack, name, "awaiting-transfer")
    openstack("volume", "transfer", "request", "accept", "--auth-key", request["auth_key"],
              request["id"], cloud_env=taker)
    moved = wait_volume(openstack, vol["id"], "available", cloud_env=taker)
    assert moved["name"] == name
    assert name not in {v["Name"] for v in openstack("volume", "list")}
    openstack("volume", "delete", vol["id"], cloud_env=taker)


def test_kill_9_during_creates_and_attaches(own_server):
    """kill -9 the server while ten volumes are being made from an image and two are
    being attached; after a restart every volume is available, in-use or error with a
    reason (a user message), no file is left without a volume row, and quota usage
    matches the rows."""
    import os
    import signal

    import httpx

    server = own_server
    token = server.password_token()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "volume 3.70"}
    base = f"{server.url}/volume/v3"
    project = httpx.get(f"{server.auth_url}/auth/tokens", headers={
        "X-Auth-Token": token, "X-Subject-Token": token}).json()["token"]["project"]["id"]
    r = httpx.put(f"{base}/os-quota-sets/{project}", headers=headers,
                  json={"quota_set": {"volumes": 20}})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{server.url}/image/v2/images", headers=headers, json={
        "name": "crash-src", "disk_format": "raw", "container_format": "bare"})
    image_id = r.json()["id"]
    r = httpx.put(f"{server.url}/image/v2/images/{image_id}/file", timeout=120,
                  headers={**headers, "Content-Type": "application/octet-stream"},
                  content=os.urandom(96 << 20))
    assert r.status_code == 204, r.text
    ready = []
    for i in range(2):
        r = httpx.post(f"{base}/volumes", headers=headers,
                       json={"volume": {"size": 1, "name": f"ready-{i}"}})
        ready.append(r.json()["volume"]["id"])
    deadline = time.monotonic() + 30
    while any(httpx.get(f"{base}/volumes/{v}", headers=headers).json()["volume"]["status"]
              != "available" for v in ready):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for i in range(10):
        r = httpx.post(f"{base}/volumes", headers=headers, timeout=30, json={"volume": {
            "size": 1, "imageRef": image_id, "name": f"crash-{i}"}})
        assert r.status_code == 202, r.text
    for i, volume_id in enumerate(ready):
        r = httpx.post(f"{base}/attachments", headers=headers, json={"attachment": {
            "volume_uuid": volume_id, "instance_uuid": f"00000000-0000-4000-8000-00000000000{i}",
            "connector": {"host": "h"}}})
        assert r.status_code == 200, r.text
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.proc = None
    time.sleep(1.0)  # let qemu-img children the dead server left finish writing
    server.start()
    token = server.password_token()
    headers["X-Auth-Token"] = token
    volumes = httpx.get(f"{base}/volumes/detail", headers=headers).json()["volumes"]
    assert len(volumes) == 12
    statuses = {v["name"]: v["status"] for v in volumes}
    assert set(statuses.values()) <= {"available", "in-use", "error"}, statuses
    errors = {v["id"] for v in volumes if v["status"] == "error"}
    messages = httpx.get(f"{base}/messages", headers=headers).json()["messages"]
    assert errors <= {m["resource_uuid"] for m in messages}
    files = {p.name for p in (server.state_dir / "volumes").iterdir()}
    assert not [f for f in files if f.startswith(".partial-")], files
    rows = {f"volume-{v['id']}" for v in volumes}
    assert files <= rows, files - rows
    assert {f"volume-{v['id']}" for v in volumes if v["status"] != "error"} <= files
    usage = httpx.get(f"{base}/os-quota-sets/{project}?usage=true",
                      headers=headers).json()["quota_set"]
    assert usage["volumes"]["in_use"] == 12 and usage["gigabytes"]["in_use"] == 12


def test_types_qos_services_and_limits(openstack, unique):
    vtype = f"gold-{unique}"
    created = openstack("volume", "type", "create", "--property", "tier=1", vtype)
    assert created["name"] == vtype
    openstack("volume", "type", "set", "--property", "speed=fast", vtype)
    shown = openstack("volume", "type", "show", vtype)
    assert shown["properties"] in ({"tier": "1", "speed": "fast"}, "speed='fast', tier='1'")
    qos = openstack("volume", "qos", "create", "--property", "read_iops_sec=100",
                    f"q-{unique}")
    openstack("volume", "qos", "associate", qos["id"], vtype)
    listed = {q["Name"]: q for q in openstack("volume", "qos", "list")}
    assert vtype in str(listed[f"q-{unique}"]["Associations"])
    name = f"typed-{unique}"
    openstack("volume", "create", "--size", "1", "--type", vtype, name)
    assert wait_volume(openstack, name, "available")["type"] == vtype
    services = {s["Binary"] for s in openstack("volume", "service", "list")}
    assert {"cinder-scheduler", "cinder-volume"} <= services
    zones = openstack("availability", "zone", "list", "--volume")
    assert [z["Zone Name"] for z in zones] == ["nova"]
    limits = {row["Name"]: row["Value"] for row in openstack("limits", "show", "--absolute")}
    assert limits.get("totalVolumesUsed", limits.get("total_volumes_used", 0)) >= 1
    openstack("volume", "set", "--type", "__DEFAULT__", "--migration-policy", "never", name)
    assert openstack("volume", "show", name)["type"] == "__DEFAULT__"
    openstack("volume", "delete", name)
    wait_gone(openstack, name)
    openstack("volume", "qos", "disassociate", "--volume-type", vtype, qos["id"])
    openstack("volume", "qos", "delete", qos["id"])
    openstack("volume", "type", "delete", vtype)
