"""Nova's shelve, shelveOffload and unshelve server actions (services/compute/shelve.py).

Without an agent (``quiet``): what the API side checks and records (states, lock,
bodies per microversion, policy, the shelve image and its properties, scheduling of an
offloaded server). With this host's agent and the fake drivers (``cloud``): the guest is
stopped, its disk uploaded to the shelve image and then everything it held on the host
released (guest, disk, taps; ports unbound); unshelve boots it from the shelve image with
its ports bound again, and the image is deleted.
"""

from __future__ import annotations

import time
import uuid

import pytest

from onestack.db.models import Image, Instance, Port, utcnow
from tests.api.compute_helpers import (
    action,
    add_host,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    server,
    tenant,
    wait_for,
)


def row(cloud, server_id: str) -> Instance:
    with cloud.services.db.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        session.expunge(inst)
        return inst


def ports_of(cloud, server_id: str) -> list[Port]:
    with cloud.services.db.session() as session:
        rows = list(session.query(Port).filter(Port.device_id == server_id))
        for p in rows:
            session.expunge(p)
        return rows


def images_named(cloud, name: str, token: str | None = "admin") -> list[dict]:
    r = cloud.request("GET", f"/image/v2/images?name={name}", token=token)
    assert r.status_code == 200, r.text
    return r.json()["images"]


def actions_of(cloud, server_id: str) -> list[str]:
    return [a["action"] for a in ok(nova(cloud, "GET", f"/servers/{server_id}/"
                                         "os-instance-actions"))["instanceActions"]]


def events_of(cloud, server_id: str) -> list[tuple[str, str, str]]:
    events = []
    for item in ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions"))[
            "instanceActions"]:
        detail = ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions/"
                         f"{item['request_id']}"))["instanceAction"]
        events += [(item["action"], e["event"], e["result"]) for e in detail["events"]]
    return events


def image_gone(cloud, image_id: str) -> bool:
    with cloud.services.db.session() as session:
        image = session.get(Image, image_id)
        return image is None or image.status == "deleted"


# -- API side ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{"shelve": None}, {"shelve": {}}])
def test_shelve_makes_the_image_and_records_the_task(quiet, env, sid, body):
    r = action(quiet, sid, body)
    assert r.status_code == 202 and r.content == b"", r.text
    inst = row(quiet, sid)
    assert (inst.vm_state, inst.task_state) == ("active", "shelving")
    image_id = inst.task_args["image_id"]
    assert inst.task_args["offload"] is True  # shelved_offload_time 0
    assert inst.system_metadata["shelved_image_id"] == image_id
    assert inst.system_metadata["shelved_host"] == "host-a"
    assert "shelved_at" in inst.system_metadata
    [image] = images_named(quiet, "vm-shelved")
    assert image["id"] == image_id and image["status"] == "queued"
    assert image["image_type"] == "snapshot"
    assert image["instance_uuid"] == sid
    assert image["base_image_ref"] == env.image
    assert image["disk_format"] == "qcow2" and image["visibility"] == "private"
    assert actions_of(quiet, sid)[0] == "shelve"
    # a second shelve while the first is pending is Nova's 409
    nova_error(action(quiet, sid, {"shelve": None}), 409,
               f"Cannot 'shelve' instance {sid} while it is in task_state shelving")


@pytest.mark.parametrize("vm_state, allowed", [
    ("active", True), ("stopped", True), ("paused", True), ("suspended", True),
    ("error", False), ("rescued", False), ("resized", False), ("shelved", False),
    ("shelved_offloaded", False)])
def test_shelve_allowed_states(quiet, sid, vm_state, allowed):
    force_state(quiet, sid, vm_state=vm_state)
    r = action(quiet, sid, {"shelve": None})
    if allowed:
        assert r.status_code == 202, r.text
    else:
        nova_error(r, 409, f"Cannot 'shelve' instance {sid} while it is in vm_state "
                           f"{vm_state}")
        assert images_named(quiet, "vm-shelved") == []  # no image left behind


@pytest.mark.parametrize("body, text", [
    ({"shelve": {"bogus": 1}}, "Additional properties are not allowed"),
    ({"shelve": "yes"}, "is not of type 'object'"),
    ({"shelveOffload": {"x": 1}}, "Additional properties are not allowed"),
])
def test_shelve_bad_bodies(quiet, sid, body, text):
    force_state(quiet, sid, vm_state="shelved" if "shelveOffload" in body else "active")
    nova_error(action(quiet, sid, body), 400, text)
    assert row(quiet, sid).task_state is None


def test_shelve_of_unknown_or_foreign_server_is_404(quiet, sid):
    for name in ("shelve", "unshelve", "shelveOffload"):
        nova_error(action(quiet, str(uuid.uuid4()), {name: None}), 404, "could not be found")
    other = tenant(quiet, "stranger")
    nova_error(action(quiet, sid, {"shelve": None}, token=other.token), 404)
    nova_error(action(quiet, sid, {"unshelve": None}, token=other.token), 404)


def test_locked_server_is_shelved_by_admins_only(quiet, env):
    member = tenant(quiet, "owner")
    own_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, own_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    assert action(quiet, server_id, {"lock": None}).status_code == 202  # by the admin
    nova_error(action(quiet, server_id, {"shelve": None}, token=member.token), 409,
               f"Instance {server_id} is locked")
    force_state(quiet, server_id, vm_state="shelved_offloaded", host=None)
    nova_error(action(quiet, server_id, {"unshelve": None}, token=member.token), 409,
               f"Instance {server_id} is locked")
    # the admin's shelve of the member's server: the image is the member's project's
    force_state(quiet, server_id, vm_state="active", host="host-a")
    assert action(quiet, server_id, {"shelve": None}).status_code == 202
    [image] = images_named(quiet, "vm-shelved", token=member.token)
    assert image["owner"] == member.project_id


def test_shelve_offload_is_for_admins_and_shelved_servers(quiet, env):
    member = tenant(quiet, "owner2")
    own_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, own_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    nova_error(action(quiet, server_id, {"shelveOffload": None}), 409,
               f"Cannot 'shelveOffload' instance {server_id} while it is in vm_state "
               "active")
    force_state(quiet, server_id, vm_state="shelved")
    r = action(quiet, server_id, {"shelveOffload": None}, token=member.token)
    assert r.status_code == 403, r.text
    assert action(quiet, server_id, {"shelveOffload": {}}).status_code == 202
    assert row(quiet, server_id).task_state == "shelving_offloading"
    assert actions_of(quiet, server_id)[0] == "shelveOffload"


def test_volume_backed_server_is_shelved_without_an_image(quiet, sid):
    force_state(quiet, sid, block_device_mapping=[
        {"boot_index": 0, "attachment_id": str(uuid.uuid4()), "volume_id": str(uuid.uuid4()),
         "source_type": "volume", "destination_type": "volume"}])
    assert action(quiet, sid, {"shelve": None}).status_code == 202
    inst = row(quiet, sid)
    assert inst.task_state == "shelving"
    assert inst.task_args == {"image_id": None, "offload": True}
    assert "shelved_image_id" not in inst.system_metadata
    assert images_named(quiet, "vm-shelved") == []


def test_shelve_without_offload_when_the_time_says_so(quiet, sid):
    quiet.services.compute.config.compute.shelved_offload_time = -1
    assert action(quiet, sid, {"shelve": None}).status_code == 202
    assert row(quiet, sid).task_args["offload"] is False


def test_unshelve_needs_a_shelved_server(quiet, sid):
    nova_error(action(quiet, sid, {"unshelve": None}), 409,
               f"Cannot 'unshelve' instance {sid} while it is in vm_state active")
    force_state(quiet, sid, vm_state="shelved", system_metadata={
        "shelved_image_id": "x"})
    r = action(quiet, sid, {"unshelve": None})
    assert r.status_code == 202 and r.content == b""
    inst = row(quiet, sid)
    assert inst.task_state == "unshelving" and inst.host == "host-a"
    assert server(quiet, sid)["status"] == "SHELVED"
    assert actions_of(quiet, sid)[0] == "unshelve"


def test_unshelve_of_a_shelved_server_takes_no_zone_or_host(quiet, sid):
    force_state(quiet, sid, vm_state="shelved")
    nova_error(action(quiet, sid, {"unshelve": {"availability_zone": "nova"}},
                      microversion="2.77"), 409,
               "The server status must be SHELVED_OFFLOADED")
    nova_error(action(quiet, sid, {"unshelve": {"host": "host-a"}}, microversion="2.91"),
               409, "The server status must be SHELVED_OFFLOADED")


@pytest.mark.parametrize("microversion, body, text", [
    ("2.1", {"unshelve": {"availability_zone": "nova"}},
     "Additional properties are not allowed"),
    ("2.76", {"unshelve": "x"}, "is not of type 'object'"),
    ("2.77", {"unshelve": {}}, "'availability_zone' is a required property"),
    ("2.77", {"unshelve": {"availability_zone": None}}, "unshelve/availability_zone"),
    ("2.77", {"unshelve": {"host": "host-a"}}, "Additional properties are not allowed"),
    ("2.91", {"unshelve": {"foo": "bar"}}, "Additional properties are not allowed"),
    ("2.91", {"unshelve": {"host": 5}}, "unshelve/host"),
    ("2.91", {"unshelve": {"availability_zone": 5}}, "unshelve/availability_zone"),
])
def test_unshelve_bad_bodies(quiet, sid, microversion, body, text):
    force_state(quiet, sid, vm_state="shelved_offloaded", host=None, node=None)
    nova_error(action(quiet, sid, body, microversion=microversion), 400, text)
    assert row(quiet, sid).task_state is None


def _offloaded(quiet, sid):
    force_state(quiet, sid, vm_state="shelved_offloaded", host=None, node=None,
                task_state=None, power_state=4, launched_at=utcnow(),
                system_metadata={"shelved_image_id": str(uuid.uuid4())})


def test_unshelve_an_offloaded_server_schedules_it(quiet, sid):
    add_host(quiet, "host-b")
    _offloaded(quiet, sid)
    r = action(quiet, sid, {"unshelve": {"host": "host-b"}}, microversion="2.91")
    assert r.status_code == 202, r.text
    inst = row(quiet, sid)
    assert (inst.host, inst.task_state) == ("host-b", "unshelving")
    assert inst.task_args["image_id"] == inst.system_metadata["shelved_image_id"]
    assert all(p.binding_host_id == "host-b" for p in ports_of(quiet, sid))
    body = server(quiet, sid)
    assert body["OS-EXT-SRV-ATTR:host"] == "host-b"


def test_unshelve_to_a_host_is_for_admins(quiet, env):
    member = tenant(quiet, "owner3")
    own_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, own_env)["id"]
    _offloaded(quiet, server_id)
    r = action(quiet, server_id, {"unshelve": {"host": "host-a"}}, token=member.token,
               microversion="2.91")
    assert r.status_code == 403, r.text
    nova_error(action(quiet, server_id, {"unshelve": {"host": "nowhere"}},
                      microversion="2.91"), 400, "Compute host nowhere could not be found.")
    nova_error(action(quiet, server_id, {"unshelve": {"availability_zone": "atlantis"}},
                      microversion="2.77"), 400,
               "The requested availability zone is not available")
    nova_error(action(quiet, server_id, {"unshelve": {"availability_zone": "atlantis",
                                                      "host": "host-a"}},
                      microversion="2.91"), 400,
               "The requested availability zone is not available")
    assert row(quiet, server_id).task_state is None


def test_unshelve_with_a_zone_pins_it_and_null_unpins(quiet, sid):
    _offloaded(quiet, sid)
    r = action(quiet, sid, {"unshelve": {"availability_zone": "nova"}},
               microversion="2.77")
    assert r.status_code == 202, r.text
    assert row(quiet, sid).pinned_availability_zone == "nova"
    _offloaded(quiet, sid)
    r = action(quiet, sid, {"unshelve": {"availability_zone": None}}, microversion="2.91")
    assert r.status_code == 202, r.text
    inst = row(quiet, sid)
    assert inst.pinned_availability_zone is None and inst.host == "host-a"


def test_unshelve_with_no_host_fitting_keeps_it_offloaded(quiet, sid):
    _offloaded(quiet, sid)
    with quiet.services.db.session() as session:
        from onestack.db.models import ComputeNode
        for node in session.query(ComputeNode):
            node.memory_mb = 1
    r = action(quiet, sid, {"unshelve": None})
    assert r.status_code == 202, r.text
    inst = row(quiet, sid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("shelved_offloaded", None, None)
    assert ("unshelve", "conductor_unshelve_instance", "Error") in events_of(quiet, sid)


def test_offloaded_server_counts_against_the_quota_not_the_host(quiet, env, sid):
    _offloaded(quiet, sid)
    limits = ok(nova(quiet, "GET", "/limits"))["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == 1
    assert limits["totalCoresUsed"] >= 1
    hypervisors = ok(nova(quiet, "GET", "/os-hypervisors/detail", microversion="2.1"))
    assert all(h["running_vms"] == 0 for h in hypervisors["hypervisors"])


# -- with this host's agent (fake drivers) ---------------------------------------------------


def wait_gone(cloud, server_id: str, timeout: float = 20.0) -> None:
    agent = cloud.services.agent
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.hypervisor._get(server_id) is None and agent.storage.disk(server_id) is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"{server_id} still on the host")


def test_shelve_offload_and_unshelve_on_the_host(cloud):
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    agent = cloud.services.agent
    hypervisor, storage, network = agent.hypervisor, agent.storage, agent.network
    [port] = ports_of(cloud, server_id)
    assert port.id in network.list_ports()

    r = action(cloud, server_id, {"shelve": None})
    assert r.status_code == 202, r.text
    body = wait_for(cloud, server_id, "SHELVED_OFFLOADED")
    assert body["OS-EXT-SRV-ATTR:host"] is None
    assert body["OS-EXT-SRV-ATTR:hypervisor_hostname"] is None
    assert body["OS-EXT-STS:power_state"] == 4
    # the guest, its disk and its tap are gone; the port stays, unbound
    assert hypervisor._get(server_id) is None
    assert storage.disk(server_id) is None and server_id not in storage.list_disks()
    assert port.id not in network.list_ports()
    [port] = ports_of(cloud, server_id)
    assert port.binding_host_id == "" and port.status == "DOWN"
    # the shelve image holds the disk
    [image] = images_named(cloud, "vm-shelved")
    assert image["status"] == "active" and image["size"] > 0
    assert image["instance_uuid"] == server_id
    assert row(cloud, server_id).system_metadata["shelved_image_id"] == image["id"]
    # it still counts against the project
    limits = ok(nova(cloud, "GET", "/limits"))["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == 1

    r = action(cloud, server_id, {"unshelve": None})
    assert r.status_code == 202, r.text
    body = wait_for(cloud, server_id, "ACTIVE")
    assert body["OS-EXT-SRV-ATTR:host"] == agent.host
    assert body["OS-EXT-STS:power_state"] == 1
    # booted from a disk made from the shelve image, the port bound and plugged again
    assert storage._disks[server_id]["image_id"] == image["id"]
    assert hypervisor._get(server_id) is not None
    [port] = ports_of(cloud, server_id)
    assert port.binding_host_id == agent.host and port.status == "ACTIVE"
    assert port.id in network.list_ports()
    # the shelve image is deleted, the shelve forgotten
    assert image_gone(cloud, image["id"])
    assert images_named(cloud, "vm-shelved") == []
    assert row(cloud, server_id).system_metadata == {}

    events = events_of(cloud, server_id)
    assert ("shelve", "compute_shelve_instance", "Success") in events
    assert ("unshelve", "compute_unshelve_instance", "Success") in events


def test_shelve_kept_then_offloaded_then_deleted(cloud):
    cloud.services.compute.config.compute.shelved_offload_time = -1
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    agent = cloud.services.agent
    assert action(cloud, server_id, {"pause": None}).status_code == 202
    wait_for(cloud, server_id, "PAUSED")
    assert action(cloud, server_id, {"shelve": None}).status_code == 202
    body = wait_for(cloud, server_id, "SHELVED")
    assert body["OS-EXT-SRV-ATTR:host"] == agent.host
    assert body["OS-EXT-STS:power_state"] == 4
    # still on the host, stopped
    assert agent.storage.disk(server_id) is not None
    assert agent.hypervisor.power_state(server_id) != 1

    # unshelve of a shelved server: it starts again on its host from its own disk
    assert action(cloud, server_id, {"unshelve": None}).status_code == 202
    wait_for(cloud, server_id, "ACTIVE")
    assert agent.hypervisor.power_state(server_id) == 1
    [image] = images_named(cloud, "vm-shelved", token="admin") or [None]
    assert image is None  # its shelve image went too

    assert action(cloud, server_id, {"shelve": None}).status_code == 202
    wait_for(cloud, server_id, "SHELVED")
    assert action(cloud, server_id, {"shelveOffload": None}).status_code == 202
    body = wait_for(cloud, server_id, "SHELVED_OFFLOADED")
    assert body["OS-EXT-SRV-ATTR:host"] is None
    wait_gone(cloud, server_id)
    assert ("shelveOffload", "compute_shelve_offload_instance", "Success") in \
        events_of(cloud, server_id)
    [image] = images_named(cloud, "vm-shelved")

    # deleting an offloaded server deletes its shelve image
    assert nova(cloud, "DELETE", f"/servers/{server_id}").status_code == 204
    r = nova(cloud, "GET", f"/servers/{server_id}")
    assert r.status_code == 404
    assert image_gone(cloud, image["id"])
    assert ports_of(cloud, server_id) == []  # compute's port went with it


def test_offloaded_after_the_offload_time(cloud):
    cloud.services.compute.config.compute.shelved_offload_time = 1
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    assert action(cloud, server_id, {"shelve": None}).status_code == 202
    wait_for(cloud, server_id, "SHELVED")
    started = time.monotonic()
    body = wait_for(cloud, server_id, "SHELVED_OFFLOADED", timeout=30)
    assert body["OS-EXT-SRV-ATTR:host"] is None
    assert time.monotonic() - started > 0.2
    wait_gone(cloud, server_id)


def test_volume_backed_server_shelved_and_unshelved_on_the_host(cloud):
    from tests.api.volume_helpers import VolumeClient

    volumes = VolumeClient(cloud)
    env = boot_env(cloud)
    bdm = [{"uuid": env.image, "source_type": "image", "destination_type": "volume",
            "volume_size": 1, "boot_index": 0, "delete_on_termination": True}]
    server_id = boot(cloud, env, imageRef="", block_device_mapping_v2=bdm)["id"]
    body = wait_for(cloud, server_id, "ACTIVE")
    root = body["os-extended-volumes:volumes_attached"][0]["id"]
    agent = cloud.services.agent
    assert action(cloud, server_id, {"shelve": None}).status_code == 202
    body = wait_for(cloud, server_id, "SHELVED_OFFLOADED")
    assert body["OS-EXT-SRV-ATTR:host"] is None
    assert agent.hypervisor._get(server_id) is None
    # no image; the volume stays attached
    assert images_named(cloud, "vm-shelved") == []
    assert [v["id"] for v in body["os-extended-volumes:volumes_attached"]] == [root]
    assert volumes.wait(root, "in-use")["status"] == "in-use"
    assert action(cloud, server_id, {"unshelve": None}).status_code == 202
    wait_for(cloud, server_id, "ACTIVE")
    spec = agent.hypervisor._get(server_id)["spec"]
    assert len(spec["disks"]) == 1 and spec["disks"][0].endswith(f"volume-{root}")
    assert agent.storage.disk(server_id) is None


def test_a_failed_upload_leaves_no_image(cloud, monkeypatch):
    from onestack.drivers.storage.base import StorageError

    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    agent = cloud.services.agent

    def broken(uuid, dest):
        raise StorageError("the disk could not be read")

    monkeypatch.setattr(agent.storage, "snapshot", broken)
    assert action(cloud, server_id, {"shelve": None}).status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and row(cloud, server_id).task_state is not None:
        time.sleep(0.05)
    inst = row(cloud, server_id)
    assert inst.task_state is None and inst.vm_state in ("active", "stopped")
    assert inst.host == agent.host and inst.system_metadata == {}
    assert images_named(cloud, "vm-shelved") == []
    assert ("shelve", "compute_shelve_instance", "Error") in events_of(cloud, server_id)
    assert agent.storage.disk(server_id) is not None  # nothing was offloaded


def test_unshelve_to_a_host_outside_the_zone_is_409(quiet, sid):
    _offloaded(quiet, sid)
    force_state(quiet, sid, pinned_availability_zone="nova")
    with quiet.services.db.session() as session:
        from onestack.db.models import ComputeService
        service = session.query(ComputeService).filter_by(host="host-a").one()
        service.availability_zone = "elsewhere"
    nova_error(action(quiet, sid, {"unshelve": {"host": "host-a"}}, microversion="2.91"),
               409, 'Host "host-a" is not in the availability zone "nova".')
    # unpinned in the same request, it may go there
    r = action(quiet, sid, {"unshelve": {"host": "host-a", "availability_zone": None}},
               microversion="2.91")
    assert r.status_code == 202, r.text
    inst = row(quiet, sid)
    assert (inst.host, inst.pinned_availability_zone) == ("host-a", None)
