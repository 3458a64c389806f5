"""Nova's rescue and unrescue server actions (services/compute/rescue.py).

Without an agent (``quiet``): what the API side checks and records (states, lock,
bodies, images, volume-backed servers, the actions a rescued server refuses). With this
host's agent and the fake drivers (``cloud``): the guest boots from a fresh rescue disk
of the rescue image with its own disk second, and back; the rescue disk goes on
unrescue and on delete.
"""

from __future__ import annotations

import time
import uuid

import pytest

from onestack.agent.reconciler import rescue_disk_name
from tests.api.compute_helpers import (
    action,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    server,
    tenant,
    upload_image,
    wait_for,
)
from tests.api.compute_helpers import (
    instance_row as row,
)


def actions_of(cloud, server_id: str) -> list[str]:
    return [a["action"] for a in ok(nova(cloud, "GET", f"/servers/{server_id}/"
                                         "os-instance-actions"))["instanceActions"]]


# -- API side ---------------------------------------------------------------------------


def test_rescue_records_the_task_and_returns_the_password(quiet, env, sid):
    r = action(quiet, sid, {"rescue": {"adminPass": "s3cret-pass"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"adminPass": "s3cret-pass"}
    inst = row(quiet, sid)
    assert (inst.vm_state, inst.task_state) == ("active", "rescuing")
    assert inst.task_args["rescue_image"]["id"] == env.image  # default: its own image
    body = server(quiet, sid)
    assert (body["status"], body["OS-EXT-STS:task_state"]) == ("ACTIVE", "rescuing")
    assert actions_of(quiet, sid)[0] == "rescue"
    # a second rescue while the first is pending is Nova's 409
    nova_error(action(quiet, sid, {"rescue": None}), 409,
               f"Cannot 'rescue' instance {sid} while it is in task_state rescuing")


@pytest.mark.parametrize("body", [{"rescue": None}, {"rescue": {}}])
def test_rescue_generates_a_password(quiet, sid, body):
    r = action(quiet, sid, body)
    assert r.status_code == 200, r.text
    password = r.json()["adminPass"]
    assert isinstance(password, str) and len(password) >= 8


def test_rescue_with_another_image(quiet, env, sid):
    other = upload_image(quiet, name="rescue-image")
    r = action(quiet, sid, {"rescue": {"rescue_image_ref": other}})
    assert r.status_code == 200, r.text
    assert row(quiet, sid).task_args["rescue_image"]["id"] == other


@pytest.mark.parametrize("body, status, text", [
    ({"rescue": {"bogus": 1}}, 400, "Additional properties are not allowed"),
    ({"rescue": {"adminPass": 5}}, 400, "rescue/adminPass"),
    ({"rescue": {"rescue_image_ref": "not-a-uuid"}}, 400, "rescue/rescue_image_ref"),
    ({"rescue": "yes"}, 400, "is not of type 'object'"),
])
def test_rescue_bad_bodies(quiet, sid, body, status, text):
    nova_error(action(quiet, sid, body), status, text)
    assert row(quiet, sid).task_state is None


def test_rescue_image_must_exist_and_be_visible(quiet, sid):
    missing = str(uuid.uuid4())
    nova_error(action(quiet, sid, {"rescue": {"rescue_image_ref": missing}}), 404,
               f"Image {missing} could not be found.")
    r = quiet.request("POST", "/image/v2/images", json={
        "name": "queued", "disk_format": "raw", "container_format": "bare"})
    queued = r.json()["id"]
    nova_error(action(quiet, sid, {"rescue": {"rescue_image_ref": queued}}), 400,
               "rescue images must be active")
    assert row(quiet, sid).task_state is None


def test_rescue_of_an_unknown_or_foreign_server_is_404(quiet, sid):
    nova_error(action(quiet, str(uuid.uuid4()), {"rescue": None}), 404, "could not be found")
    other = tenant(quiet, "stranger")
    nova_error(action(quiet, sid, {"rescue": None}, token=other.token), 404)
    nova_error(action(quiet, sid, {"unrescue": None}, token=other.token), 404)


@pytest.mark.parametrize("vm_state, allowed", [
    ("active", True), ("stopped", True), ("error", True), ("paused", False),
    ("suspended", False), ("rescued", False), ("resized", False)])
def test_rescue_allowed_states(quiet, sid, vm_state, allowed):
    force_state(quiet, sid, vm_state=vm_state)
    r = action(quiet, sid, {"rescue": None})
    if allowed:
        assert r.status_code == 200, r.text
    else:
        nova_error(r, 409, f"Cannot 'rescue' instance {sid} while it is in vm_state "
                           f"{vm_state}")


def test_unrescue_needs_a_rescued_server(quiet, sid):
    nova_error(action(quiet, sid, {"unrescue": None}), 409,
               f"Cannot 'unrescue' instance {sid} while it is in vm_state active")
    force_state(quiet, sid, vm_state="rescued")
    r = action(quiet, sid, {"unrescue": None})
    assert r.status_code == 202 and r.content == b""
    assert row(quiet, sid).task_state == "unrescuing"
    assert server(quiet, sid)["status"] == "RESCUE"
    assert actions_of(quiet, sid)[0] == "unrescue"


def test_locked_server_is_rescued_by_admins_only(quiet, env):
    member = tenant(quiet, "owner")
    own_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, own_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    assert action(quiet, server_id, {"lock": None}).status_code == 202  # by the admin
    nova_error(action(quiet, server_id, {"rescue": None}, token=member.token), 409,
               f"Instance {server_id} is locked")
    force_state(quiet, server_id, vm_state="rescued")
    nova_error(action(quiet, server_id, {"unrescue": None}, token=member.token), 409,
               f"Instance {server_id} is locked")
    assert action(quiet, server_id, {"unrescue": None}).status_code == 202


def test_volume_backed_server_is_refused(quiet, sid):
    force_state(quiet, sid, block_device_mapping=[
        {"boot_index": 0, "attachment_id": str(uuid.uuid4()), "volume_id": str(uuid.uuid4()),
         "source_type": "volume", "destination_type": "volume"}])
    nova_error(action(quiet, sid, {"rescue": None}), 400,
               f"Instance {sid} cannot be rescued: Cannot rescue a volume-backed instance")
    assert row(quiet, sid).task_state is None


@pytest.mark.parametrize("body", [
    {"reboot": {"type": "HARD"}}, {"reboot": {"type": "SOFT"}}, {"os-stop": None},
    {"os-start": None}, {"pause": None}, {"suspend": None}, {"resize": {"flavorRef": "2"}},
    {"createImage": {"name": "snap"}}, {"rescue": None}])
def test_a_rescued_server_refuses_other_actions(quiet, env, sid, body):
    force_state(quiet, sid, vm_state="rescued")
    r = action(quiet, sid, body)
    assert r.status_code == 409, r.text
    assert "while it is in vm_state rescued" in r.text
    assert row(quiet, sid).task_state is None


def test_a_rescued_server_refuses_rebuild_and_volume_attach(quiet, env, sid):
    force_state(quiet, sid, vm_state="rescued")
    nova_error(action(quiet, sid, {"rebuild": {"imageRef": env.image}}), 409,
               f"Cannot 'rebuild' instance {sid} while it is in vm_state rescued")
    r = nova(quiet, "POST", f"/servers/{sid}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": str(uuid.uuid4())}})
    assert r.status_code in (404, 409), r.text  # Nova checks the volume or the state
    # network changes stay allowed (Nova allows them for a rescued server too)
    quiet.request("POST", "/network/v2.0/security-groups",
                  json={"security_group": {"name": "web"}})
    assert action(quiet, sid, {"addSecurityGroup": {"name": "web"}}).status_code == 202
    assert action(quiet, sid, {"removeSecurityGroup": {"name": "web"}}).status_code == 202
    # and it can be deleted
    assert nova(quiet, "DELETE", f"/servers/{sid}").status_code == 204


# -- with this host's agent (fake drivers) ---------------------------------------------------


def wait_task_free(cloud, server_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if row(cloud, server_id).task_state is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"{server_id} still has task {row(cloud, server_id).task_state}")


def test_rescue_and_unrescue_on_the_host(cloud):
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    agent = cloud.services.agent
    hypervisor, storage = agent.hypervisor, agent.storage
    own_disk = str(storage.disk(server_id).path)
    boots = hypervisor._get(server_id)["boots"]

    r = action(cloud, server_id, {"rescue": {"adminPass": "rescue-me"}})
    assert r.status_code == 200 and r.json() == {"adminPass": "rescue-me"}
    body = wait_for(cloud, server_id, "RESCUE")
    assert body["OS-EXT-STS:vm_state"] == "rescued"
    assert body["OS-EXT-STS:power_state"] == 1
    rescue = storage.disk(rescue_disk_name(server_id))
    assert rescue is not None and str(rescue.path) != own_disk
    assert storage._disks[rescue_disk_name(server_id)]["image_id"] == env.image
    guest = hypervisor._get(server_id)
    assert guest["boots"] == boots + 1
    assert hypervisor.rescued(server_id) == f"file:{rescue.path}"
    # booted from the rescue disk, its own disk second
    assert guest["spec"]["disks"] == [f"file:{rescue.path}", f"file:{own_disk}"]

    r = action(cloud, server_id, {"unrescue": None})
    assert r.status_code == 202
    body = wait_for(cloud, server_id, "ACTIVE")
    assert body["OS-EXT-STS:power_state"] == 1
    guest = hypervisor._get(server_id)
    assert guest["boots"] == boots + 2
    assert hypervisor.rescued(server_id) is None
    assert guest["spec"]["disks"] == [f"file:{own_disk}"]
    assert storage.disk(rescue_disk_name(server_id)) is None  # nothing leaked
    assert rescue_disk_name(server_id) not in storage.list_disks()

    events = []
    for item in ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions"))[
            "instanceActions"]:
        detail = ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions/"
                         f"{item['request_id']}"))["instanceAction"]
        events += [(item["action"], e["event"], e["result"]) for e in detail["events"]]
    assert ("rescue", "compute_rescue_instance", "Success") in events
    assert ("unrescue", "compute_unrescue_instance", "Success") in events


def test_rescue_a_stopped_server_with_another_image_then_delete(cloud):
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    other = upload_image(cloud, name="rescue-image", data=b"\1" * 65536)
    assert action(cloud, server_id, {"os-stop": None}).status_code == 202
    wait_for(cloud, server_id, "SHUTOFF")
    agent = cloud.services.agent
    hypervisor, storage = agent.hypervisor, agent.storage

    r = action(cloud, server_id, {"rescue": {"rescue_image_ref": other}})
    assert r.status_code == 200, r.text
    body = wait_for(cloud, server_id, "RESCUE")
    assert body["OS-EXT-STS:power_state"] == 1  # a rescued server runs
    name = rescue_disk_name(server_id)
    assert storage._disks[name]["image_id"] == other
    assert hypervisor.rescued(server_id) == f"file:{storage.disk(name).path}"

    # a rescued server is deleted with its rescue disk
    assert nova(cloud, "DELETE", f"/servers/{server_id}").status_code == 204
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
            storage.disk(server_id) is not None or hypervisor._get(server_id) is not None):
        time.sleep(0.05)
    assert storage.disk(server_id) is None and hypervisor._get(server_id) is None
    assert name not in storage.list_disks()
    assert other not in storage._bases  # its base is not kept alive by a leftover


def test_leftover_rescue_disks_of_gone_instances_are_removed(cloud):
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    agent = cloud.services.agent
    # a rescue disk of this (desired) instance stays; one of an unknown instance goes
    image = agent.storage._disks[server_id]["image_id"]
    source = agent._image_source(next(
        d for d in agent.control.desired_state(agent.host).instances
        if d.uuid == server_id))
    assert source.id == image
    ghost = str(uuid.uuid4())
    agent.storage.create_disk(rescue_disk_name(ghost), source, 0)
    agent.storage.create_disk(rescue_disk_name(server_id), source, 0)
    agent.run_once(wait=True)
    disks = agent.storage.list_disks()
    assert rescue_disk_name(ghost) not in disks
    assert rescue_disk_name(server_id) in disks
    agent.storage.delete_disk(rescue_disk_name(server_id))
    wait_task_free(cloud, server_id)


def test_rescue_needs_the_member_role(quiet, env):
    owner = tenant(quiet, "rescuers")
    own_env = boot_env(quiet, token=owner.token, image=env.image)
    server_id = boot(quiet, own_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    ident = quiet.services.identity
    user = ident.users.create(name="rescuers-reader", password="reader-secret",
                              domain_id="default")
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user.id, owner.project_id,
                                ident.roles.find("reader").id)
    reader = quiet.login("rescuers-reader", "reader-secret", project="rescuers")
    nova_error(action(quiet, server_id, {"rescue": None}, token=reader), 403,
               "Policy doesn't allow")
    assert action(quiet, server_id, {"rescue": None}, token=owner.token).status_code == 200
    force_state(quiet, server_id, vm_state="rescued", task_state=None)
    nova_error(action(quiet, server_id, {"unrescue": None}, token=reader), 403,
               "Policy doesn't allow")
    assert action(quiet, server_id, {"unrescue": None}, token=owner.token).status_code == 202
