"""``createBackup`` (a snapshot image with Nova's backup properties, and the rotation of
a server's older backups), ``injectNetworkInfo`` and ``resetNetwork`` (accepted, nothing
to do, as Nova with libvirt)."""

from __future__ import annotations

import pytest

from onestack.db.models import Instance
from tests.api.compute_helpers import (
    LATEST,
    action,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    tenant,
    wait_for,
)


def _backup(cloud, sid: str, name: str, rotation=2, backup_type="daily",
            microversion: str = LATEST, **extra):
    body = {"name": name, "backup_type": backup_type, "rotation": rotation, **extra}
    return action(cloud, sid, {"createBackup": body}, microversion=microversion)


def _backups(cloud, sid: str, backup_type: str = "daily") -> list[str]:
    images = ok(cloud.request(
        "GET", f"/image/v2/images?image_type=backup&backup_type={backup_type}"
               f"&instance_uuid={sid}&sort_key=created_at&sort_dir=asc"))["images"]
    return [i["name"] for i in images]


def test_create_backup_records_a_snapshot_with_backup_properties(quiet, sid):
    r = _backup(quiet, sid, "b1", metadata={"purpose": "nightly"})
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    image = ok(quiet.request("GET", f"/image/v2/images/{image_id}"))
    assert image["status"] == "queued" and image["name"] == "b1"
    assert (image["image_type"], image["backup_type"], image["instance_uuid"]) == (
        "backup", "daily", sid)
    assert image["purpose"] == "nightly" and image["visibility"] == "private"
    with quiet.services.db.session() as session:
        inst = session.get(Instance, sid)
        assert inst is not None
        assert inst.task_state == "image_snapshot"
        assert inst.task_args == {"image_id": image_id, "backup_type": "daily",
                                  "rotation": 2}
    nova_error(_backup(quiet, sid, "b2"), 409, "task_state image_snapshot")
    actions = ok(nova(quiet, "GET", f"/servers/{sid}/os-instance-actions"))[
        "instanceActions"]
    assert actions[0]["action"] == "createBackup"
    force_state(quiet, sid, task_state=None, task_args={})
    # before 2.45 the image is in Location, and with rotation 0 there is none
    r = _backup(quiet, sid, "b3", microversion="2.44")
    assert r.status_code == 202 and r.content == b""
    assert r.headers["Location"].startswith("http://127.0.0.1:5000/image/v2/images/")
    force_state(quiet, sid, task_state=None, task_args={})
    r = action(quiet, sid, {"createBackup": {"name": "b4", "backup_type": "weekly",
                                             "rotation": "0"}}, microversion="2.44")
    assert r.status_code == 202 and "Location" not in r.headers


@pytest.mark.parametrize("body, message", [
    ({"name": "b", "backup_type": "daily"}, "'rotation' is a required property"),
    ({"name": "b", "rotation": 1}, "'backup_type' is a required property"),
    ({"backup_type": "daily", "rotation": 1}, "'name' is a required property"),
    ({"name": "b", "backup_type": "daily", "rotation": -1}, "createBackup/rotation"),
    ({"name": "b", "backup_type": "daily", "rotation": "x"}, "createBackup/rotation"),
    ({"name": "b", "backup_type": "daily", "rotation": True}, "createBackup/rotation"),
    ({"name": "b", "backup_type": 5, "rotation": 1}, "createBackup/backup_type"),
    ({"name": "", "backup_type": "daily", "rotation": 1}, "createBackup/name"),
    ({"name": "b", "backup_type": "daily", "rotation": 1, "x": 1}, "'x' was unexpected"),
])
def test_create_backup_bad_bodies_are_400(quiet, sid, body, message):
    nova_error(action(quiet, sid, {"createBackup": body}), 400, message)
    assert ok(quiet.request("GET", "/image/v2/images?image_type=backup"))["images"] == []


def test_create_backup_needs_a_member_and_an_existing_server(quiet, sid):
    nova_error(action(quiet, "00000000-0000-0000-0000-000000000000",
                      {"createBackup": {"name": "b", "backup_type": "d", "rotation": 1}}),
               404)
    other = tenant(quiet, "other")
    nova_error(action(quiet, sid, {"createBackup": {"name": "b", "backup_type": "d",
                                                    "rotation": 1}}, token=other.token),
               404)


def test_backups_rotate_on_the_host(cloud):
    """Three daily backups with rotation 2 leave the newest two; another type is not
    touched; the images are really uploaded by the host's agent."""
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")

    def backup(name: str, backup_type: str = "daily", rotation: int = 2) -> str:
        r = _backup(cloud, server_id, name, rotation=rotation, backup_type=backup_type)
        assert r.status_code == 202, r.text
        image_id = r.json()["image_id"]
        wait_for(cloud, server_id, "ACTIVE")
        image = ok(cloud.request("GET", f"/image/v2/images/{image_id}"))
        assert image["status"] == "active" and image["size"] > 0
        return image_id

    first = backup("d1")
    weekly = backup("w1", backup_type="weekly")
    backup("d2")
    assert _backups(cloud, server_id) == ["d1", "d2"]
    backup("d3")
    assert _backups(cloud, server_id) == ["d2", "d3"]
    assert cloud.request("GET", f"/image/v2/images/{first}").status_code == 404
    assert ok(cloud.request("GET", f"/image/v2/images/{weekly}"))["name"] == "w1"
    # rotation 1 keeps only the newest
    backup("d4", rotation=1)
    assert _backups(cloud, server_id) == ["d4"]
    assert _backups(cloud, server_id, "weekly") == ["w1"]
    # tasks API of an image: none kept (Tempest waits on it)
    assert ok(cloud.request("GET", f"/image/v2/images/{weekly}/tasks")) == {"tasks": []}
    assert cloud.request("GET", f"/image/v2/images/{first}/tasks").status_code == 404


def test_inject_network_info_and_reset_network_are_admin_no_ops(quiet, sid):
    before = ok(nova(quiet, "GET", f"/servers/{sid}"))["server"]
    for name in ("injectNetworkInfo", "resetNetwork"):
        r = action(quiet, sid, {name: None})
        assert r.status_code == 202 and r.content == b"", r.text
        nova_error(action(quiet, "00000000-0000-0000-0000-000000000000", {name: None}),
                   404)
    after = ok(nova(quiet, "GET", f"/servers/{sid}"))["server"]
    assert (after["status"], after["OS-EXT-STS:task_state"], after["addresses"]) == (
        before["status"], None, before["addresses"])
    # a member of the owner project may not
    member = tenant(quiet, "member")
    env = boot_env(quiet, token=member.token, cidr="10.9.0.0/24", name="m")
    own = boot(quiet, env)["id"]
    nova_error(action(quiet, own, {"injectNetworkInfo": None}, token=member.token), 403)
