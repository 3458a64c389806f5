"""``os-volume_attachments`` and boot from volume, end to end in process: the API, the
volume service (fake backend) and the host's agent with the fake hypervisor (which
records what a guest has plugged)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.compute_helpers import (
    BootEnv,
    action,
    boot,
    boot_env,
    latest,
    nova,
    nova_error,
    ok,
    server,
    wait_for,
)
from tests.api.volume_helpers import VolumeClient

GiB = 1 << 30


def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def env(cloud) -> BootEnv:
    return boot_env(cloud)


@pytest.fixture
def volumes(cloud) -> VolumeClient:
    return VolumeClient(cloud)


def active_server(cloud, env: BootEnv, **attrs: Any) -> str:
    created = boot(cloud, env, **attrs)
    wait_for(cloud, created["id"], "ACTIVE")
    return str(created["id"])


def guest_volumes(cloud, server_id: str) -> dict[str, int]:
    """What the (fake) guest has plugged, by volume id."""
    agent = cloud.services.agent
    return agent.hypervisor.attached_volumes(server_id)


def attach(cloud, server_id: str, volume_id: str, microversion: str = "2.96",
           **extra: Any):
    return nova(cloud, "POST", f"/servers/{server_id}/os-volume_attachments",
                microversion=microversion,
                json={"volumeAttachment": {"volumeId": volume_id, **extra}})


def test_attach_list_show_detach(cloud, env: BootEnv, volumes: VolumeClient) -> None:
    sid = active_server(cloud, env)
    vol = volumes.create(size=2)
    body = ok(attach(cloud, sid, vol["id"], tag="data", delete_on_termination=False))
    att = body["volumeAttachment"]
    assert att["volumeId"] == vol["id"] and att["serverId"] == sid
    assert att["device"] == "/dev/vdb" and att["tag"] == "data"
    assert att["delete_on_termination"] is False and "id" not in att
    assert att["attachment_id"] and att["bdm_uuid"]
    # the guest gets it, the volume goes in-use with the attachment
    until(lambda: vol["id"] in guest_volumes(cloud, sid), "the guest to have the volume")
    shown = volumes.wait(vol["id"], "in-use")
    assert shown["attachments"][0]["server_id"] == sid
    assert shown["attachments"][0]["attachment_id"] == att["attachment_id"]
    # Nova's shapes per microversion
    old = ok(nova(cloud, "GET", f"/servers/{sid}/os-volume_attachments"))
    assert old == {"volumeAttachments": [{"id": vol["id"], "volumeId": vol["id"],
                                          "serverId": sid, "device": "/dev/vdb"}]}
    one = ok(nova(cloud, "GET", f"/servers/{sid}/os-volume_attachments/{vol['id']}",
                  microversion="2.79"))["volumeAttachment"]
    assert one["tag"] == "data" and one["delete_on_termination"] is False
    assert server(cloud, sid)["os-extended-volumes:volumes_attached"] == [
        {"id": vol["id"], "delete_on_termination": False}]
    assert server(cloud, sid, microversion=None)[
        "os-extended-volumes:volumes_attached"] == [{"id": vol["id"]}]
    # detach: out of the guest, available again
    r = nova(cloud, "DELETE", f"/servers/{sid}/os-volume_attachments/{vol['id']}")
    assert r.status_code == 202, r.text
    volumes.wait(vol["id"], "available")
    assert vol["id"] not in guest_volumes(cloud, sid)
    assert ok(nova(cloud, "GET", f"/servers/{sid}/os-volume_attachments")) == {
        "volumeAttachments": []}
    nova_error(nova(cloud, "GET", f"/servers/{sid}/os-volume_attachments/{vol['id']}"),
               404, vol["id"])
    console = cloud.services.agent.hypervisor.console_log(sid)
    serial = vol["id"][:20]
    assert f"virtio-blk {serial} attached" in console
    assert f"virtio-blk {serial} detached" in console


def test_attach_errors(cloud, env: BootEnv, volumes: VolumeClient) -> None:
    first = active_server(cloud, env)
    second = active_server(cloud, env)
    vol = volumes.create()
    path = f"/servers/{first}/os-volume_attachments"
    # bad bodies: 400
    nova_error(nova(cloud, "POST", path, json={}), 400, "volumeAttachment")
    nova_error(nova(cloud, "POST", path, json={"volumeAttachment": {}}), 400, "volumeId")
    nova_error(nova(cloud, "POST", path, json={"volumeAttachment": {"volumeId": "x"}}),
               400, "uuid")
    nova_error(attach(cloud, first, vol["id"], microversion="2.48", tag="t"), 400, "tag")
    nova_error(attach(cloud, first, vol["id"], delete_on_termination="yes"), 400,
               "delete_on_termination")
    nova_error(attach(cloud, first, vol["id"], device="vdb"), 400, "device path")
    # unknown volume, unknown server: 404
    nova_error(attach(cloud, first, "6f1f4a52-0000-4000-8000-000000000000"), 404,
               "could not be found")
    nova_error(attach(cloud, "6f1f4a52-0000-4000-8000-000000000001", vol["id"]), 404)
    # attached: the same server again, or another one: Nova's InvalidVolume, 400
    ok(attach(cloud, first, vol["id"]))
    nova_error(attach(cloud, first, vol["id"]), 400, "Invalid volume", "already attached")
    nova_error(attach(cloud, second, vol["id"]), 400, "Invalid volume", vol["id"])
    assert [a["server_id"] for a in volumes.wait(vol["id"], "in-use")["attachments"]] \
        == [first]
    # a device name taken on the server: 409 (Nova's DevicePathInUse)
    other = volumes.create()
    nova_error(attach(cloud, first, other["id"], device="/dev/vdb"), 409, "in use")
    # a server in a state that cannot attach: 409
    ok(action(cloud, second, {"suspend": None}), 202)
    wait_for(cloud, second, "SUSPENDED")
    nova_error(attach(cloud, second, other["id"]), 409, "suspended")
    # nothing was left half-made: the other volume is still available
    assert volumes.show(other["id"])["status"] == "available"
    # detaching what is not attached: 404
    nova_error(nova(cloud, "DELETE", f"{path}/{other['id']}"), 404)


def test_put_is_admin_only_and_swap_is_501(cloud, env: BootEnv,
                                          volumes: VolumeClient) -> None:
    sid = active_server(cloud, env)
    vol, other = volumes.create(), volumes.create()
    ok(attach(cloud, sid, vol["id"]))
    path = f"/servers/{sid}/os-volume_attachments/{vol['id']}"
    nova_error(nova(cloud, "PUT", path, microversion="2.85",
                    json={"volumeAttachment": {"volumeId": other["id"]}}), 501, "Swapping")
    r = nova(cloud, "PUT", path, microversion="2.85", json={"volumeAttachment": {
        "volumeId": vol["id"], "delete_on_termination": True}})
    assert r.status_code == 202, r.text
    assert ok(nova(cloud, "GET", path, microversion="2.85"))["volumeAttachment"][
        "delete_on_termination"] is True
    nova_error(nova(cloud, "PUT", path, microversion="2.84", json={"volumeAttachment": {
        "volumeId": vol["id"], "delete_on_termination": True}}), 400)


def test_attach_to_a_stopped_server_boots_with_it(cloud, env: BootEnv,
                                                  volumes: VolumeClient) -> None:
    sid = active_server(cloud, env)
    ok(action(cloud, sid, {"os-stop": None}), 202)
    wait_for(cloud, sid, "SHUTOFF")
    vol = volumes.create()
    ok(attach(cloud, sid, vol["id"]))
    volumes.wait(vol["id"], "in-use")  # it is on the guest's command line
    ok(action(cloud, sid, {"os-start": None}), 202)
    wait_for(cloud, sid, "ACTIVE")
    until(lambda: vol["id"] in guest_volumes(cloud, sid), "the started guest's volume")
    spec = cloud.services.agent.hypervisor._get(sid)["spec"]
    assert any(d.endswith(f"volume-{vol['id']}") for d in spec["disks"])


def test_extend_while_attached_grows_it_in_the_guest(cloud, env: BootEnv,
                                                     volumes: VolumeClient) -> None:
    sid = active_server(cloud, env)
    vol = volumes.create(size=1)
    ok(attach(cloud, sid, vol["id"]))
    volumes.wait(vol["id"], "in-use")
    r = volumes.action(vol["id"], {"os-extend": {"new_size": 3}}, version="3.42")
    assert r.status_code == 202, r.text
    until(lambda: guest_volumes(cloud, sid).get(vol["id"]) == 3 * GiB,
          "the guest to see 3 GiB")

    # Nova's extend_volume action, its event finished once the host says the guest's
    # disk has grown
    def extend_event() -> dict | None:
        actions = ok(nova(cloud, "GET", f"/servers/{sid}/os-instance-actions"))
        extend = next((a for a in actions["instanceActions"]
                       if a["action"] == "extend_volume"), None)
        if extend is None:
            return None
        shown = ok(nova(cloud, "GET", f"/servers/{sid}/os-instance-actions/"
                                      f"{extend['request_id']}"))["instanceAction"]
        return next((e for e in shown["events"] if e["event"] == "compute_extend_volume"
                     and e["finish_time"]), None)

    assert until(extend_event, "the extend_volume event to finish")["result"] == "Success"


def test_boot_from_volume_delete_on_termination(cloud, env: BootEnv,
                                                volumes: VolumeClient) -> None:
    bdm = [{"uuid": env.image, "source_type": "image", "destination_type": "volume",
            "volume_size": 1, "boot_index": 0, "delete_on_termination": True}]
    created = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm)
    body = wait_for(cloud, created["id"], "ACTIVE")
    assert body["image"] == ""
    attached = body["os-extended-volumes:volumes_attached"]
    assert len(attached) == 1 and attached[0]["delete_on_termination"] is True
    root = attached[0]["id"]
    vol = volumes.wait(root, "in-use")
    assert vol["bootable"] == "true"
    # the guest booted from it, and no local disk was made
    spec = cloud.services.agent.hypervisor._get(created["id"])["spec"]
    assert len(spec["disks"]) == 1 and spec["disks"][0].endswith(f"volume-{root}")
    assert cloud.services.agent.storage.disk(created["id"]) is None
    # its root volume cannot be detached
    nova_error(nova(cloud, "DELETE", f"/servers/{created['id']}/os-volume_attachments/"
                                     f"{root}"), 400, "root device")
    ok(nova(cloud, "DELETE", f"/servers/{created['id']}"), 204)
    until(lambda: volumes.request("GET", f"/volumes/{root}").status_code == 404,
          "the root volume to be deleted with its server")


def test_boot_from_an_existing_volume_keeps_it(cloud, env: BootEnv,
                                               volumes: VolumeClient) -> None:
    vol = volumes.create(size=1, imageRef=env.image)
    bdm = [{"uuid": vol["id"], "source_type": "volume", "destination_type": "volume",
            "boot_index": 0, "delete_on_termination": False}]
    created = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm)
    wait_for(cloud, created["id"], "ACTIVE")
    volumes.wait(vol["id"], "in-use")
    # the same volume cannot boot a second server (Nova's InvalidVolume, 400)
    r = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm, status=400)
    nova_error(r, 400, "Invalid volume")
    ok(nova(cloud, "DELETE", f"/servers/{created['id']}"), 204)
    until(lambda: volumes.show(vol["id"])["status"] == "available",
          "the volume to be available again")


def test_boot_from_a_volume_that_is_not_bootable(cloud, env: BootEnv,
                                                 volumes: VolumeClient) -> None:
    """Nova's ``InvalidBDMVolumeNotBootable``: a 400 before anything is made; as a data
    volume (not the boot device) the same volume is fine."""
    vol = volumes.create(size=1, imageRef=env.image)
    r = volumes.action(vol["id"], {"os-set_bootable": {"bootable": False}})
    assert r.status_code == 200, r.text
    assert volumes.show(vol["id"])["bootable"] == "false"
    bdm = [{"boot_index": "0", "uuid": vol["id"], "source_type": "volume",
            "destination_type": "volume", "delete_on_termination": False}]
    r = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm, status=400)
    nova_error(r, 400, f"Block Device {vol['id']} is not bootable")
    assert ok(nova(cloud, "GET", "/servers"))["servers"] == []
    assert volumes.show(vol["id"])["status"] == "available"
    data = [{"uuid": env.image, "source_type": "image", "destination_type": "local",
             "boot_index": 0},
            {"uuid": vol["id"], "source_type": "volume", "destination_type": "volume",
             "boot_index": -1}]
    created = boot(cloud, env, block_device_mapping_v2=data)
    wait_for(cloud, created["id"], "ACTIVE")
    volumes.wait(vol["id"], "in-use")


def test_bad_block_device_mappings(cloud, env: BootEnv) -> None:
    cases = [
        ([{"uuid": env.image, "source_type": "image", "destination_type": "volume",
           "boot_index": 0}], "non-zero size"),
        ([{"source_type": "blank", "destination_type": "volume", "volume_size": 1,
           "boot_index": 0}], "Boot sequence"),
        ([{"uuid": "6f1f4a52-0000-4000-8000-000000000009", "source_type": "snapshot",
           "destination_type": "volume", "boot_index": 0}], "snapshot"),
    ]
    for bdm, words in cases:
        nova_error(boot(cloud, env, imageRef="", block_device_mapping_v2=bdm, status=400),
                   400, words)
    unknown = [{"uuid": "6f1f4a52-0000-4000-8000-00000000000a", "source_type": "volume",
                "destination_type": "volume", "boot_index": 0}]
    nova_error(boot(cloud, env, imageRef="", block_device_mapping_v2=unknown, status=404),
               404)
    # nothing was created
    assert ok(nova(cloud, "GET", "/servers"))["servers"] == []


def test_data_volume_at_boot_and_server_delete_keeps_it(cloud, env: BootEnv,
                                                        volumes: VolumeClient) -> None:
    data = volumes.create(size=1)
    bdm = [{"uuid": env.image, "source_type": "image", "destination_type": "local",
            "boot_index": 0},
           {"uuid": data["id"], "source_type": "volume", "destination_type": "volume",
            "boot_index": -1}]
    created = boot(cloud, env, block_device_mapping_v2=bdm)
    wait_for(cloud, created["id"], "ACTIVE")
    volumes.wait(data["id"], "in-use")
    assert data["id"] in guest_volumes(cloud, created["id"])
    listed = ok(nova(cloud, "GET", f"/servers/{created['id']}/os-volume_attachments",
                     headers=latest()))["volumeAttachments"]
    assert [(a["volumeId"], a["device"]) for a in listed] == [(data["id"], "/dev/vdb")]
    ok(nova(cloud, "DELETE", f"/servers/{created['id']}"), 204)
    until(lambda: volumes.show(data["id"])["status"] == "available",
          "the data volume to be available again")


def test_reattach_right_after_the_volume_is_available(cloud, env: BootEnv,
                                                      volumes: VolumeClient) -> None:
    """The volume is available as soon as its attachment is deleted, a moment before
    compute drops its entry: attaching it again then is not a 409."""
    sid = active_server(cloud, env)
    vol = volumes.create()
    for _ in range(3):
        ok(attach(cloud, sid, vol["id"]))
        volumes.wait(vol["id"], "in-use")
        assert nova(cloud, "DELETE", f"/servers/{sid}/os-volume_attachments/"
                                     f"{vol['id']}").status_code == 202
        until(lambda: volumes.show(vol["id"])["status"] == "available", "available")
    # a detach in progress whose attachment is gone: the entry is stale
    ok(attach(cloud, sid, vol["id"]))
    volumes.wait(vol["id"], "in-use")
    services = cloud.services
    with services.db.session() as session:
        from onestack.db.models import Instance

        inst = session.get(Instance, sid)
        entry = next(e for e in inst.block_device_mapping if e.get("attachment_id"))
        inst.block_device_mapping = [dict(entry, status="detaching")]
    services.agent.stop()  # nobody finishes the detach
    services.volume.attachment_delete(None, entry["attachment_id"])
    body = ok(attach(cloud, sid, vol["id"]))["volumeAttachment"]
    assert body["attachment_id"] != entry["attachment_id"]
    listed = ok(nova(cloud, "GET", f"/servers/{sid}/os-volume_attachments",
                     microversion="2.89"))["volumeAttachments"]
    assert [a["attachment_id"] for a in listed] == [body["attachment_id"]]


def test_rebuild_of_a_volume_backed_server(cloud, env: BootEnv,
                                           volumes: VolumeClient) -> None:
    bdm = [{"uuid": env.image, "source_type": "image", "destination_type": "volume",
            "volume_size": 1, "boot_index": 0}]
    created = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm)
    wait_for(cloud, created["id"], "ACTIVE")
    from tests.api.compute_helpers import upload_image

    other = upload_image(cloud, name="other")
    nova_error(action(cloud, created["id"], {"rebuild": {"imageRef": other}}), 400,
               "volume-backed")
    # the same image: the guest starts again from its volume, still volume-backed
    assert action(cloud, created["id"], {"rebuild": {"imageRef": env.image}}
                  ).status_code == 202
    body = wait_for(cloud, created["id"], "ACTIVE")
    assert body["image"] == ""
    assert len(body["os-extended-volumes:volumes_attached"]) == 1
    assert cloud.services.agent.storage.disk(created["id"]) is None


def test_snapshot_of_a_volume_backed_server_boots_again(cloud, env: BootEnv,
                                                        volumes: VolumeClient) -> None:
    """createImage of a server booted from a volume (Nova's snapshot_volume_backed): a
    forced snapshot of its volume and an active image with no data mapping it; a
    server booted from that image gets a new volume made from the snapshot."""
    bdm = [{"uuid": env.image, "source_type": "image", "destination_type": "volume",
            "volume_size": 1, "boot_index": 0, "delete_on_termination": True}]
    created = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm)
    wait_for(cloud, created["id"], "ACTIVE")
    root = server(cloud, created["id"])["os-extended-volumes:volumes_attached"][0]["id"]
    nova_error(action(cloud, created["id"], {"createBackup": {
        "name": "b", "backup_type": "daily", "rotation": 1}}), 400, "volume backed")
    r = action(cloud, created["id"], {"createImage": {"name": "snap",
                                                      "metadata": {"k": "v"}}})
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    image = cloud.request("GET", f"/image/v2/images/{image_id}").json()
    assert (image["status"], image["size"], image["name"]) == ("active", 0, "snap")
    assert image["bdm_v2"] == "True" and image["root_device_name"] == "/dev/vda"
    assert image["k"] == "v" and image["instance_uuid"] == created["id"]
    mappings = json.loads(image["block_device_mapping"])
    assert [(m["source_type"], m["destination_type"], m["boot_index"], m["volume_size"])
            for m in mappings] == [("snapshot", "volume", 0, 1)]
    snap = volumes.ok("GET", f"/snapshots/{mappings[0]['snapshot_id']}")["snapshot"]
    assert snap["volume_id"] == root and snap["name"] == "snapshot for snap"
    cloud.services.volume.wait_idle()
    assert volumes.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == \
        "available"
    actions = ok(nova(cloud, "GET", f"/servers/{created['id']}/os-instance-actions"))
    assert "createImage" in [a["action"] for a in actions["instanceActions"]]
    # booting from the image: a new boot volume made from the snapshot, no local disk
    again = boot(cloud, env, imageRef=image_id)
    body = wait_for(cloud, again["id"], "ACTIVE")
    assert body["image"] == ""
    new_root = body["os-extended-volumes:volumes_attached"][0]["id"]
    assert new_root != root
    made = volumes.wait(new_root, "in-use")
    assert made["snapshot_id"] == snap["id"] and made["size"] == 1
    assert cloud.services.agent.storage.disk(again["id"]) is None
    # an unknown snapshot in a mapping: Nova's 400
    bad = [{"uuid": "6f1f4a52-0000-4000-8000-00000000000c", "source_type": "snapshot",
            "destination_type": "volume", "boot_index": 0}]
    nova_error(boot(cloud, env, imageRef="", block_device_mapping_v2=bad, status=400),
               400, "failed to get snapshot")
