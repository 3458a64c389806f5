"""Personality files (before 2.57): kept with the server, limited by the injected_*
quotas, replaced on rebuild, and served to the guest by the metadata service and the
config drive as Nova serves them (``files`` in meta_data.json, ``openstack/content/``)."""

from __future__ import annotations

import base64
import json

from tests.api.compute_helpers import (
    action,
    boot,
    boot_env,
    nova,
    nova_error,
    wait_for,
)

V = "2.56"


def _file(path: str, data: bytes) -> dict[str, str]:
    return {"path": path, "contents": base64.b64encode(data).decode()}


def _guest_files(cloud, uuid: str) -> dict[str, bytes]:
    """What the guest reads: meta_data.json's ``files`` and each content_path."""
    docs = cloud.services.compute.metadata.documents(uuid)
    meta = json.loads(docs.lookup("/openstack/latest/meta_data.json").body)
    return {f["path"]: docs.lookup(f"/openstack{f['content_path']}").body
            for f in meta.get("files", [])}


def test_files_reach_the_metadata_service_and_config_drive_and_rebuild_replaces_them(cloud):
    env = boot_env(cloud)
    created = boot(cloud, env, microversion=V, config_drive=True, personality=[
        _file("/etc/motd", b"hello\n"), _file("/root/bin.dat", bytes(range(256)))])
    wait_for(cloud, created["id"], "ACTIVE")
    assert _guest_files(cloud, created["id"]) == {"/etc/motd": b"hello\n",
                                                  "/root/bin.dat": bytes(range(256))}
    drive = cloud.services.compute.hostapi.config_drive_files(created["id"])
    assert drive["openstack/content/0000"] == b"hello\n"
    meta = json.loads(drive["openstack/latest/meta_data.json"])
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"},
                             {"path": "/root/bin.dat", "content_path": "/content/0001"}]
    docs = cloud.services.compute.metadata.documents(created["id"])
    assert docs.lookup("/openstack/content/0002") is None
    # rebuild with other files replaces them
    r = action(cloud, created["id"], {"rebuild": {
        "imageRef": env.image, "personality": [_file("/etc/issue", b"new")]}},
        microversion=V)
    assert r.status_code == 202, r.text
    wait_for(cloud, created["id"], "ACTIVE")
    assert _guest_files(cloud, created["id"]) == {"/etc/issue": b"new"}


def test_limits_and_bad_input(cloud):
    env = boot_env(cloud)
    project = cloud.admin_project_id
    r = nova(cloud, "PUT", f"/os-quota-sets/{project}", microversion=V, json={
        "quota_set": {"injected_files": 1, "injected_file_path_bytes": 10,
                      "injected_file_content_bytes": 8}})
    assert r.status_code == 200, r.text
    nova_error(boot(cloud, env, microversion=V, status=403, personality=[
        _file("/a", b"1"), _file("/b", b"2")]), 403, "Personality file limit exceeded")
    nova_error(boot(cloud, env, microversion=V, status=403, personality=[
        _file("/a/very/long/path", b"1")]), 403, "path exceeds maximum 10")
    nova_error(boot(cloud, env, microversion=V, status=403, personality=[
        _file("/a", b"123456789")]), 403, "content exceeds maximum 8")
    nova_error(boot(cloud, env, microversion=V, status=400, personality=[
        {"path": "/a", "contents": "not base64!"}]), 400, "cannot be decoded")
    nova_error(boot(cloud, env, microversion=V, status=400, personality=[
        {"path": "/a", "contents": "", "mode": "0600"}]), 400)
    nova_error(boot(cloud, env, microversion=V, status=400, personality="x"), 400)
    # gone from 2.57
    nova_error(boot(cloud, env, microversion="2.57", status=400,
                    personality=[_file("/a", b"1")]), 400)
    # within the limits it boots
    ok = boot(cloud, env, microversion=V, personality=[_file("/a", b"12345678")])
    wait_for(cloud, ok["id"], "ACTIVE")
    assert _guest_files(cloud, ok["id"]) == {"/a": b"12345678"}
