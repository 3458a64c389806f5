"""The attachments API (3.27+) and the contract compute relies on
(``services/volume/attachments.py``): reserve, connect, complete, delete; 409 for a
second server unless multiattach; deleting an attached volume refused; extending an
attached volume through compute's hook (3.42+)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.common.errors import BadRequest, Conflict, NotFound
from tests.api.image_helpers import make_project_member
from tests.api.volume_helpers import VolumeClient, fault
from tests.conftest import Cloud, running_cloud

SERVER_A = "aaaaaaaa-0000-4000-8000-000000000001"
SERVER_B = "bbbbbbbb-0000-4000-8000-000000000002"
CONNECTOR = {"host": "compute-1", "initiator": "iqn.test", "mountpoint": "/dev/vdb"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("attach")), host_agent=False) as c:
        yield c


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> VolumeClient:
    token, project = make_project_member(cloud, "att-member")
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}",
                           json={"quota_set": {"volumes": -1}})
    return VolumeClient(cloud, token, project)


def ctx(cloud: Cloud, client: VolumeClient):  # the caller's validated token
    return cloud.services.identity.tokens.validate(client.token)


def test_contract_reserve_connect_complete_delete(cloud: Cloud, member: VolumeClient
                                                  ) -> None:
    service = cloud.services.volume
    c = ctx(cloud, member)
    vol = member.create()
    att = service.attachments.attachment_create(c, vol["id"], SERVER_A)
    assert att["status"] == "reserved" and att["connection_info"] == {}
    assert member.show(vol["id"])["status"] == "reserved"
    att = service.attachments.attachment_update(c, att["id"], CONNECTOR)
    info = att["connection_info"]
    assert info["driver_volume_type"] == "fake" and info["serial"] == vol["id"]
    assert info["data"]["access_mode"] == "rw" and info["data"]["volume_id"] == vol["id"]
    assert member.show(vol["id"])["status"] == "attaching"
    done = service.attachments.attachment_complete(c, att["id"])
    assert done["status"] == "attached" and done["attached_at"]
    shown = member.show(vol["id"])
    assert shown["status"] == "in-use"
    assert shown["attachments"] == [{
        "server_id": SERVER_A, "attachment_id": att["id"], "attached_at": done["attached_at"],
        "host_name": "compute-1", "volume_id": vol["id"], "device": "/dev/vdb",
        "id": vol["id"]}]
    # attached: no delete, no second server (409), no second attachment to the same
    fault(member.request("DELETE", f"/volumes/{vol['id']}"), 400, "badRequest", "attached")
    with pytest.raises(Conflict):
        service.attachments.attachment_create(c, vol["id"], SERVER_B)
    with pytest.raises(Conflict):
        service.attachments.attachment_create(c, vol["id"], SERVER_A)
    assert [a["id"] for a in service.attachments.attachments_for_instance(SERVER_A)] == \
        [att["id"]]
    service.attachments.attachment_delete(c, att["id"])
    assert member.show(vol["id"])["status"] == "available"
    assert member.show(vol["id"])["attachments"] == []
    with pytest.raises(NotFound):
        service.attachments.attachment_complete(c, att["id"])
    # and the same names on the service itself; with a connector at once
    att = service.attachment_create(c, vol["id"], SERVER_B, CONNECTOR)
    assert att["status"] == "attaching" and att["connection_info"]["data"]
    service.attachment_complete(c, att["id"])
    service.attachment_delete(c, att["id"])
    assert member.request("DELETE", f"/volumes/{vol['id']}").status_code == 202


def test_complete_needs_a_connector(cloud: Cloud, member: VolumeClient) -> None:
    service = cloud.services.volume
    c = ctx(cloud, member)
    vol = member.create()
    att = service.attachment_create(c, vol["id"], SERVER_A)
    with pytest.raises(BadRequest):
        service.attachment_complete(c, att["id"])
    with pytest.raises(BadRequest):
        service.attachment_update(c, att["id"], "not a connector")
    service.attachment_delete(c, att["id"])
    assert member.show(vol["id"])["status"] == "available"


def test_multiattach_type_allows_a_second_server(cloud: Cloud, member: VolumeClient) -> None:
    admin = VolumeClient(cloud)
    admin.ok("POST", "/types", json={"volume_type": {
        "name": "shared", "extra_specs": {"multiattach": "<is> True"}}})
    vol = member.create(volume_type="shared")
    assert vol["multiattach"] is True
    service = cloud.services.volume
    c = ctx(cloud, member)
    first = service.attachment_create(c, vol["id"], SERVER_A, CONNECTOR)
    service.attachment_complete(c, first["id"])
    second = service.attachment_create(c, vol["id"], SERVER_B, CONNECTOR)
    service.attachment_complete(c, second["id"])
    assert len(member.show(vol["id"])["attachments"]) == 2
    service.attachment_delete(c, first["id"])
    assert member.show(vol["id"])["status"] == "in-use"
    service.attachment_delete(c, second["id"])
    assert member.show(vol["id"])["status"] == "available"
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "multiattach": True}}), 400, "badRequest", "multiattach")


def test_attachments_http_api(cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create()
    r = member.request("POST", "/attachments", json={"attachment": {
        "volume_uuid": vol["id"], "instance_uuid": SERVER_A, "connector": CONNECTOR}})
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert att["status"] == "attaching" and att["connection_info"]["serial"] == vol["id"]
    listed = member.ok("GET", "/attachments")["attachments"]
    assert {"id": att["id"], "status": "attaching", "instance": SERVER_A,
            "volume_id": vol["id"]} in listed
    assert member.request("POST", f"/attachments/{att['id']}/action",
                          json={"os-complete": {}}).status_code == 204
    assert member.ok("GET", f"/attachments/{att['id']}")["attachment"]["status"] == "attached"
    r = member.request("POST", "/attachments", json={"attachment": {
        "volume_uuid": vol["id"], "instance_uuid": SERVER_B}})
    fault(r, 409, "conflictingRequest", "multiattach")
    fault(member.request("GET", "/attachments", version="3.26"), 404, "itemNotFound")
    fault(member.request("POST", f"/attachments/{att['id']}/action", version="3.43",
                         json={"os-complete": {}}), 404, "itemNotFound")
    assert member.request("DELETE", f"/attachments/{att['id']}").status_code == 200
    assert member.show(vol["id"])["status"] == "available"
    fault(member.request("POST", "/attachments", json={"attachment": {
        "volume_uuid": "00000000-0000-4000-8000-00000000000c"}}), 404, "itemNotFound")
    token, project = make_project_member(cloud, "att-stranger")
    stranger = VolumeClient(cloud, token, project)
    fault(stranger.request("POST", "/attachments", json={"attachment": {
        "volume_uuid": vol["id"], "instance_uuid": SERVER_B}}), 404, "itemNotFound")


def test_extend_attached_uses_computes_hook(cloud: Cloud, member: VolumeClient) -> None:
    service = cloud.services.volume
    c = ctx(cloud, member)
    vol = member.create(size=1)
    att = service.attachment_create(c, vol["id"], SERVER_A, CONNECTOR)
    service.attachment_complete(c, att["id"])
    # below 3.42 an attached volume cannot grow
    fault(member.action(vol["id"], {"os-extend": {"new_size": 2}}, version="3.41"), 400,
          "badRequest", "available")
    calls: list[tuple[str, int, str]] = []
    previous = service.on_extend_attached
    try:
        service.on_extend_attached = None
        fault(member.action(vol["id"], {"os-extend": {"new_size": 2}}), 400, "badRequest",
              "detach")
        service.register_extend_attached(
            lambda vid, size, requester: calls.append((vid, size, requester.user_id)))
        assert member.action(vol["id"], {"os-extend": {"new_size": 2}}).status_code == 202
        grown = member.wait(vol["id"], "in-use")
        assert grown["size"] == 2 and calls == [(vol["id"], 2, grown["user_id"])]

        def refuse(vid: str, size: int, requester: object) -> None:
            raise RuntimeError("the guest said no")

        service.register_extend_attached(refuse)
        assert member.action(vol["id"], {"os-extend": {"new_size": 3}}).status_code == 202
        failed = member.wait(vol["id"], "error_extending")
        assert failed["size"] == 2
    finally:
        service.on_extend_attached = previous


def test_recovery_drops_unfinished_attachments(cloud: Cloud, member: VolumeClient) -> None:
    service = cloud.services.volume
    c = ctx(cloud, member)
    half = member.create()
    whole = member.create()
    service.attachment_create(c, half["id"], SERVER_A, CONNECTOR)
    done = service.attachment_create(c, whole["id"], SERVER_A, CONNECTOR)
    service.attachment_complete(c, done["id"])
    service.recover()
    assert member.show(half["id"])["status"] == "available"
    assert member.show(half["id"])["attachments"] == []
    assert member.show(whole["id"])["status"] == "in-use"


def test_recovery_keeps_attachments_compute_still_wants(cloud: Cloud,
                                                       member: VolumeClient) -> None:
    service = cloud.services.volume
    c = ctx(cloud, member)
    wanted = member.create()
    unwanted = member.create()
    keep = service.attachment_create(c, wanted["id"], SERVER_A, CONNECTOR)
    service.attachment_create(c, unwanted["id"], SERVER_B, CONNECTOR)
    previous = service.attachment_wanted
    asked: list[tuple[str | None, str]] = []
    try:
        def compute_wants(instance: str | None, attachment: str) -> bool:
            asked.append((instance, attachment))
            return attachment == keep["id"]

        service.attachment_wanted = compute_wants
        service.recover()
    finally:
        service.attachment_wanted = previous
    assert (SERVER_A, keep["id"]) in asked
    assert member.show(wanted["id"])["status"] == "in-use"
    assert member.show(unwanted["id"])["status"] == "available"
    # compute's reconciliation then completes it (idempotent) and, later, deletes it
    assert service.attachment_complete(c, keep["id"])["status"] == "attached"
    service.attachment_delete(c, keep["id"])
    assert member.show(wanted["id"])["status"] == "available"


def test_concurrent_attaches_and_detaches_keep_the_volume_consistent(
        cloud: Cloud, member: VolumeClient) -> None:
    """Ten threads race to attach one volume (one wins, the others get 409); on a
    multiattach volume, detaching every server at once leaves it available."""
    import threading

    service = cloud.services.volume
    c = ctx(cloud, member)
    vol = member.create()
    won: list[str] = []
    refused: list[Exception] = []

    def attach(n: int) -> None:
        try:
            won.append(service.attachment_create(
                c, vol["id"], f"cccccccc-0000-4000-8000-{n:012d}", CONNECTOR)["id"])
        except Conflict as exc:
            refused.append(exc)

    threads = [threading.Thread(target=attach, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 9
    service.attachment_delete(c, won[0])
    VolumeClient(cloud).ok("POST", "/types", json={"volume_type": {
        "name": "shared-race", "extra_specs": {"multiattach": "<is> True"}}})
    shared = member.create(volume_type="shared-race")
    ids = []
    for n in range(6):
        att = service.attachment_create(c, shared["id"], f"dddddddd-0000-4000-8000-{n:012d}",
                                        CONNECTOR)
        service.attachment_complete(c, att["id"])
        ids.append(att["id"])
    threads = [threading.Thread(target=service.attachment_delete, args=(c, a)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shown = member.show(shared["id"])
    assert shown["status"] == "available" and shown["attachments"] == []
    assert member.show(vol["id"])["status"] == "available"
