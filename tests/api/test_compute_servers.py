"""/compute/v2.1/servers: create (validation, quotas, networks, scheduling), list with
Nova's filters and pagination, show, update, delete, metadata, tags, ips, policy.

Most tests run without this host's agent (``quiet``), so servers stay in the states the
API side gives them; the last ones let the fake-driver agent take servers to ACTIVE.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from onestack.db.models import ComputeQuota, ComputeService, Instance, Network, Port, ServerGroup
from tests.api.compute_helpers import (
    LATEST,
    add_host,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    quiet_cloud,
    server,
    tenant,
    upload_image,
    wait_for,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One cloud for tests that only send bad requests (nothing is created)."""
    with quiet_cloud(tmp_path_factory.mktemp("shared")) as cloud:
        add_host(cloud, "host-a")
        yield cloud, boot_env(cloud)


def active(cloud, server_id: str) -> None:
    force_state(cloud, server_id, vm_state="active", task_state=None, power_state=1)


def ports_of(cloud, server_id: str) -> list[Port]:
    with cloud.services.db.session() as session:
        return list(session.query(Port).filter(Port.device_id == server_id))


def set_quota(cloud, project_id: str, resource: str, limit: int) -> None:
    with cloud.services.db.session() as session:
        session.add(ComputeQuota(project_id=project_id, resource=resource, hard_limit=limit))


# -- create ----------------------------------------------------------------------------


def test_create_answers_like_nova_and_schedules(quiet, env):
    r = nova(quiet, "POST", "/servers", microversion=LATEST,
             json={"server": env.server(name="web", metadata={"role": "db"})})
    assert r.status_code == 202, r.text
    created = r.json()["server"]
    assert set(created) == {"id", "links", "OS-DCF:diskConfig", "security_groups",
                            "adminPass"}
    assert created["security_groups"] == [{"name": "default"}]
    assert created["OS-DCF:diskConfig"] == "MANUAL" and len(created["adminPass"]) == 12
    self_link = created["links"][0]["href"]
    assert self_link == f"http://127.0.0.1:5000/compute/v2.1/servers/{created['id']}"
    assert created["links"][1]["href"].endswith(f"/compute/servers/{created['id']}")
    assert r.headers["Location"] == self_link

    body = server(quiet, created["id"])
    assert body["status"] == "BUILD" and body["OS-EXT-STS:task_state"] == "spawning"
    assert body["OS-EXT-STS:vm_state"] == "building" and body["progress"] == 0
    assert body["OS-EXT-SRV-ATTR:host"] == "host-a"
    assert body["OS-EXT-SRV-ATTR:hypervisor_hostname"] == "host-a.example.org"
    assert body["OS-EXT-AZ:availability_zone"] == "nova"
    assert body["addresses"] == {}  # hidden while building, as in Nova
    assert body["metadata"] == {"role": "db"} and body["name"] == "web"
    assert body["OS-EXT-SRV-ATTR:hostname"] == "web"
    assert body["hostId"] and body["image"]["id"] == env.image
    [port] = ports_of(quiet, created["id"])
    assert port.device_owner == "compute:nova" and port.binding_host_id == "host-a"
    assert port.binding_vif_type == "bridge"

    active(quiet, created["id"])
    body = server(quiet, created["id"])
    assert body["status"] == "ACTIVE"
    [address] = body["addresses"]["private"]
    assert address == {"version": 4, "addr": "10.0.0.2", "OS-EXT-IPS:type": "fixed",
                       "OS-EXT-IPS-MAC:mac_addr": port.mac_address}
    assert body["security_groups"] == [{"name": "default"}]


def test_create_records_an_action_with_the_request_id(quiet, env):
    r = nova(quiet, "POST", "/servers", microversion=LATEST, json={"server": env.server()})
    request_id = r.headers["x-openstack-request-id"]
    actions = ok(nova(quiet, "GET", f"/servers/{r.json()['server']['id']}/os-instance-actions",
                      microversion=LATEST))["instanceActions"]
    assert [(a["action"], a["request_id"]) for a in actions] == [("create", request_id)]
    assert r.headers["x-compute-request-id"] == request_id  # Nova's name, same id


def test_access_ips_are_normalised(quiet, env):
    body = env.server(accessIPv4="192.0.2.7",
                      accessIPv6="0000:0000:0000:0000:0000:babe:220.12.22.2")
    sid = ok(nova(quiet, "POST", "/servers", json={"server": body}), 202)["server"]["id"]
    shown = server(quiet, sid)
    assert (shown["accessIPv4"], shown["accessIPv6"]) == ("192.0.2.7", "::babe:dc0c:1602")
    updated = ok(nova(quiet, "PUT", f"/servers/{sid}",
                      json={"server": {"accessIPv6": "2001:0DB8:0000::0001"}}))["server"]
    assert updated["accessIPv6"] == "2001:db8::1"


BAD_BODIES = [
    ({"name": None}, "server/name"),
    ({"name": ""}, "server/name"),
    ({"name": " padded"}, "server/name"),
    ({"name": "x" * 256}, "server/name"),
    ({"flavorRef": ""}, "server/flavorRef"),
    ({"flavorRef": True}, "server/flavorRef"),
    ({"imageRef": "not-a-uuid"}, "server/imageRef"),
    ({"metadata": {"bad/key": "v"}}, "server/metadata"),
    ({"metadata": {"k": "v" * 256}}, "server/metadata/k"),
    ({"metadata": {"k": 5}}, "server/metadata/k"),
    ({"metadata": []}, "server/metadata"),
    ({"min_count": 0}, "server/min_count"),
    ({"min_count": "two"}, "server/min_count"),
    ({"max_count": -1}, "server/max_count"),
    ({"min_count": 3, "max_count": 2}, "min_count must be <= max_count"),
    ({"nonsense": 1}, "'nonsense' was unexpected"),
    ({"networks": "everything"}, "server/networks"),
    ({"networks": [{"uuid": "nope"}]}, "server/networks/0/uuid"),
    ({"networks": [{"fixed_ip": "10.0.0.300"}]}, "server/networks/0/fixed_ip"),
    ({"networks": [{}]}, "missing 'uuid'"),
    ({"networks": [{"port": "zzz"}]}, "server/networks/0/port"),
    ({"networks": [{"uuid": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f", "bogus": 1}]},
     "'bogus' was unexpected"),
    ({"accessIPv4": "::1"}, "server/accessIPv4"),
    ({"accessIPv6": "10.0.0.1"}, "server/accessIPv6"),
    ({"user_data": "not base64!"}, "User data needs to be valid base 64."),
    ({"user_data": "A" * 65536}, "server/user_data"),
    ({"user_data": 5}, "server/user_data"),
    ({"config_drive": "maybe"}, "server/config_drive"),
    ({"security_groups": [{"name": ""}]}, "server/security_groups/0/name"),
    ({"security_groups": "default"}, "server/security_groups"),
    ({"security_groups": [{"id": "x"}]}, "'id' was unexpected"),
    ({"OS-DCF:diskConfig": "SOMETIMES"}, "server/OS-DCF:diskConfig"),
    ({"block_device_mapping": [{"volume_id": "x"}]}, "block_device_mapping_v2"),
    ({"block_device_mapping_v2": [{"source_type": "snapshot", "destination_type": "volume",
                                   "uuid": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f",
                                   "boot_index": 0}]}, "failed to get snapshot"),
    ({"block_device_mapping_v2": [{"source_type": "floppy"}]},
     "server/block_device_mapping_v2/0/source_type"),
    ({"block_device_mapping_v2": [{"source_type": "blank", "destination_type": "local",
                                   "boot_index": -1}]}, "only an image can"),
    ({"tags": ["a/b"]}, "server/tags/0"),
    ({"tags": ["t"] * 51}, "server/tags"),
    ({"tags": ["x" * 61]}, "server/tags/0"),
    ({"hostname": "a b"}, "server/hostname"),
    ({"hostname": "x" * 256}, "server/hostname"),
    ({"trusted_image_certificates": ["cert"]}, "trusted_image_certificates"),
    ({"availability_zone": "atlantis"}, "availability zone is not available"),
    ({"host": "a b"}, "server/host"),
    ({"description": "x" * 256}, "server/description"),
]


@pytest.mark.parametrize("change, words", BAD_BODIES)
def test_create_bad_input_is_a_nova_400(shared, change, words):
    cloud, env = shared
    r = boot(cloud, env, status=400, **change)
    nova_error(r, 400, words)
    assert "badRequest" in r.json()


@pytest.mark.parametrize("body, words", [
    ({}, "'server' is a required property"),
    ({"server": []}, "server"),
    ({"server": {"name": "x"}}, "'flavorRef' is a required property"),
    ({"server": {"name": "x", "flavorRef": "1"}}, "'networks' is a required property"),
    ({"server": {"name": "x", "flavorRef": "1", "networks": "none"}, "extra": {}},
     "'extra' was unexpected"),
    ({"server": {"name": "x", "flavorRef": "1", "networks": "none"},
      "os:scheduler_hints": {"group": "nope"}}, "os:scheduler_hints/group"),
])
def test_create_bad_envelopes(shared, body, words):
    nova_error(nova(shared[0], "POST", "/servers", microversion=LATEST, json=body), 400,
               words)


def test_create_refuses_what_cannot_be_booted(quiet, env):
    nova_error(boot(quiet, env, status=400, flavorRef="nope"), 400,
               "Flavor nope could not be found.")
    nova_error(boot(quiet, env, status=400, imageRef="6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"),
               400, "Can not find requested image")
    nova_error(boot(quiet, env, status=400, imageRef=""), 400, "Missing imageRef attribute")
    nova_error(boot(quiet, env, status=400, key_name="missing"), 400,
               "Invalid key_name provided.")
    r = quiet.request("POST", "/image/v2/images", json={"name": "q", "disk_format": "raw",
                                                       "container_format": "bare"})
    queued = r.json()["id"]
    nova_error(boot(quiet, env, status=400, imageRef=queued), 400, f"Image {queued} is not "
               "active.")
    big_ram = upload_image(quiet, min_ram=4096)
    nova_error(boot(quiet, env, status=400, imageRef=big_ram), 400,
               "Flavor's memory is too small")
    big_disk = upload_image(quiet, min_disk=5)
    nova_error(boot(quiet, env, status=400, imageRef=big_disk), 400,
               "Flavor's disk is smaller than the minimum size")
    nova_error(boot(quiet, env, status=400, security_groups=[{"name": "nope"}]), 400,
               "Security group nope not found.")
    nova_error(boot(quiet, env, status=400, networks=[
        {"uuid": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"}]), 400,
        "Network 6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f could not be found.")
    nova_error(boot(quiet, env, status=400, networks=[
        {"port": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"}]), 400,
        "Port id 6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f could not be found.")
    nova_error(boot(quiet, env, status=400, min_count=2, networks=[
        {"uuid": env.network, "fixed_ip": "10.0.0.9"}]), 400, "fixed_ip")
    nova_error(boot(quiet, env, status=400, max_count=2, hostname="one"), 400,
               "single hostname")
    r = quiet.request("POST", "/network/v2.0/networks", json={"network": {"name": "bare"}})
    bare = r.json()["network"]["id"]
    nova_error(boot(quiet, env, status=400, networks=[{"uuid": bare}]), 400,
               "requires a subnet")
    with quiet.services.db.session() as session:
        assert session.query(Instance).count() == 0
        assert session.query(Port).count() == 0


def test_fixed_ip_and_user_ports(quiet, env):
    first = boot(quiet, env, networks=[{"uuid": env.network, "fixed_ip": "10.0.0.50"}])
    [port] = ports_of(quiet, first["id"])
    assert [a.ip_address for a in port.fixed_ips] == ["10.0.0.50"]
    nova_error(boot(quiet, env, status=400,
                    networks=[{"uuid": env.network, "fixed_ip": "10.0.0.50"}]),
               400, "10.0.0.50 is already in use")
    r = quiet.request("POST", "/network/v2.0/ports", json={"port": {"network_id": env.network}})
    user_port = r.json()["port"]["id"]
    second = boot(quiet, env, networks=[{"port": user_port}])
    [port] = ports_of(quiet, second["id"])
    assert port.id == user_port and port.binding_host_id == "host-a"
    nova_error(boot(quiet, env, status=409, networks=[{"port": user_port}]), 409,
               f"Port {user_port} is still in use.")
    nova_error(boot(quiet, env, status=400, networks=[{"port": user_port},
                                                      {"port": user_port}]),
               400, "specified twice")
    # deleting the server deletes the port it made and only unbinds the user's
    for sid in (first["id"], second["id"]):
        assert nova(quiet, "DELETE", f"/servers/{sid}").status_code == 204
        quiet.services.compute.hostapi.instance_deleted(sid)
    with quiet.services.db.session() as session:
        [kept] = session.query(Port).all()
        assert kept.id == user_port and kept.device_id == "" and kept.binding_host_id == ""


def test_networks_auto_none_and_ambiguous(quiet, env):
    auto = boot(quiet, env, networks="auto")
    assert len(ports_of(quiet, auto["id"])) == 1
    none = boot(quiet, env, networks="none")
    assert ports_of(quiet, none["id"]) == []
    active(quiet, none["id"])
    assert "security_groups" not in server(quiet, none["id"])
    boot_env(quiet, cidr="10.1.0.0/24", name="second", image=env.image)
    nova_error(boot(quiet, env, status=409, networks="auto"), 409,
               "Multiple possible networks found")
    # before 2.37 "networks" may be left out: the same choice, or no network at all
    body = env.server()
    del body["networks"]
    nova_error(boot(quiet, None, status=409, microversion="2.36", **body), 409)
    member = tenant(quiet, "lonely")
    lonely = boot(quiet, None, token=member.token, microversion="2.1", name="x",
                  imageRef=env.image, flavorRef="1")
    assert ports_of(quiet, lonely["id"]) == []
    # "auto" with no network: the project's auto-allocated one (more in
    # tests/api/test_network_auto_allocate.py)
    auto = boot(quiet, None, token=member.token, name="x", imageRef=env.image,
                flavorRef="1", networks="auto")
    [port] = ports_of(quiet, auto["id"])
    with quiet.services.db.session() as session:
        assert session.get(Network, port.network_id).name == "auto_allocated_network"


def test_external_networks_are_for_admins(quiet, env):
    member = tenant(quiet, "alice")
    public = ok(quiet.request("GET", "/network/v2.0/networks?name=public"))["networks"][0]
    nova_error(boot(quiet, None, token=member.token, status=403, name="x",
                    imageRef=env.image, flavorRef="1", networks=[{"uuid": public["id"]}]),
               403, "external network")


def test_security_groups_go_on_the_ports(quiet, env):
    r = quiet.request("POST", "/network/v2.0/security-groups",
                      json={"security_group": {"name": "web"}})
    web = r.json()["security_group"]["id"]
    created = boot(quiet, env, security_groups=[{"name": "web"}, {"name": "default"}])
    assert created["security_groups"] == [{"name": "web"}, {"name": "default"}]
    [port] = ports_of(quiet, created["id"])
    groups = ok(quiet.request("GET", f"/network/v2.0/ports/{port.id}"))["port"][
        "security_groups"]
    assert web in groups and len(groups) == 2
    active(quiet, created["id"])
    assert server(quiet, created["id"])["security_groups"] == [{"name": "default"},
                                                               {"name": "web"}]


def test_multi_create_and_reservation_id(quiet, env):
    r = boot(quiet, env, status=202, name="batch", min_count=2, max_count=3)
    reservation = server(quiet, r["id"])["OS-EXT-SRV-ATTR:reservation_id"]
    listed = ok(nova(quiet, "GET", f"/servers/detail?reservation_id={reservation}",
                     microversion=LATEST))["servers"]
    assert sorted(s["name"] for s in listed) == ["batch-1", "batch-2", "batch-3"]
    assert sorted(s["OS-EXT-SRV-ATTR:launch_index"] for s in listed) == [0, 1, 2]
    assert sorted(s["OS-EXT-SRV-ATTR:hostname"] for s in listed) == ["batch-1", "batch-2",
                                                                     "batch-3"]
    r = nova(quiet, "POST", "/servers", microversion=LATEST,
             json={"server": env.server(return_reservation_id=True)})
    assert r.status_code == 202 and set(r.json()) == {"reservation_id"}
    assert r.json()["reservation_id"].startswith("r-")


def test_quotas_are_enforced_and_trimmed(quiet, env):
    member = tenant(quiet, "quota")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    set_quota(quiet, member.project_id, "instances", 2)
    # max_count is trimmed to what the quota allows, as long as min_count fits
    first = boot(quiet, member_env, min_count=1, max_count=5)
    ids = [s["id"] for s in ok(nova(quiet, "GET", "/servers", token=member.token))["servers"]]
    assert first["id"] in ids and len(ids) == 2
    msg = nova_error(boot(quiet, member_env, status=403), 403,
                     "Quota exceeded for instances: Requested 1, but already used 2 of 2 "
                     "instances")
    assert "forbidden" in boot(quiet, member_env, status=403).json(), msg
    set_quota(quiet, member.project_id, "metadata_items", 1)
    nova_error(boot(quiet, member_env, status=403, metadata={"a": "1", "b": "2"}), 403,
               "Maximum number of metadata items exceeds 1")


def test_cores_and_ram_quotas(quiet, env):
    member = tenant(quiet, "cores")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    set_quota(quiet, member.project_id, "ram", 600)
    boot(quiet, member_env)
    nova_error(boot(quiet, member_env, status=403), 403, "Quota exceeded for ram")


# -- scheduling ----------------------------------------------------------------------------


def test_no_valid_host_is_an_error_server_with_a_fault(tmp_path):
    with quiet_cloud(tmp_path) as cloud:
        env = boot_env(cloud)
        member = tenant(cloud, "nohost")
        member_env = boot_env(cloud, token=member.token, image=env.image)
        created = boot(cloud, member_env)
        body = server(cloud, created["id"], token=member.token)
        assert body["status"] == "ERROR" and body["OS-EXT-STS:task_state"] is None
        assert body["fault"]["code"] == 500
        assert body["fault"]["message"] == ("No valid host was found. There are no compute "
                                            "hosts.")
        assert "details" not in body["fault"]  # code 500: for admins only
        assert ports_of(cloud, created["id"]) == []
        add_host(cloud, "small", memory_mb=256, vcpus=1)
        add_host(cloud, "off", memory_mb=8192)
        add_host(cloud, "gone", memory_mb=8192, seen=dt.datetime(2020, 1, 1))
        with cloud.services.db.session() as session:
            session.query(ComputeService).filter_by(host="off").one().disabled = True
        created = boot(cloud, member_env)
        body = server(cloud, created["id"])
        message = body["fault"]["message"]
        assert message.startswith("No valid host was found. ")
        assert "small: not enough RAM (requested 512 MiB, free 384 MiB)" in message
        assert "off: the compute service is disabled" in message
        assert "gone: the compute service is down" in message
        assert body["fault"]["details"] == message  # admins see the details
        actions = ok(nova(cloud, "GET", f"/servers/{created['id']}/os-instance-actions",
                          microversion=LATEST))["instanceActions"]
        assert actions[0]["message"] == "Error"
        detail = ok(nova(cloud, "GET", f"/servers/{created['id']}/os-instance-actions/"
                         f"{actions[0]['request_id']}", microversion=LATEST))
        [event] = detail["instanceAction"]["events"]
        assert event["event"] == "conductor_schedule_and_build_instances"
        assert event["result"] == "Error"
        # an ERROR server can be deleted at once (it is on no host)
        assert nova(cloud, "DELETE", f"/servers/{created['id']}").status_code == 204
        nova_error(nova(cloud, "GET", f"/servers/{created['id']}"), 404)


def test_scheduler_spreads_and_counts_usage(quiet, env):
    add_host(quiet, "host-b", memory_mb=16384)
    with quiet.services.db.session() as session:
        session.query(ComputeService).filter_by(host="host-a").one()
    hosts = [server(quiet, boot(quiet, env)["id"])["OS-EXT-SRV-ATTR:host"] for _ in range(4)]
    assert sorted(hosts) == ["host-a", "host-a", "host-b", "host-b"]


def test_zones_and_forced_hosts(quiet, env):
    add_host(quiet, "host-b", zone="blue")
    body = server(quiet, boot(quiet, env, availability_zone="blue")["id"])
    assert body["OS-EXT-SRV-ATTR:host"] == "host-b"
    assert body["OS-EXT-AZ:availability_zone"] == "blue"
    assert body["pinned_availability_zone"] == "blue"
    assert server(quiet, boot(quiet, env)["id"])["pinned_availability_zone"] is None
    forced = server(quiet, boot(quiet, env, availability_zone="nova:host-a")["id"])
    assert forced["OS-EXT-SRV-ATTR:host"] == "host-a"
    chosen = server(quiet, boot(quiet, env, host="host-b")["id"])
    assert chosen["OS-EXT-SRV-ATTR:host"] == "host-b"
    nova_error(boot(quiet, env, status=400, host="host-z"), 400,
               "Compute host host-z could not be found.")
    nova_error(boot(quiet, env, status=400, availability_zone="a:b:c:d"), 400,
               "Unable to parse availability_zone")
    member = tenant(quiet, "zoned")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    nova_error(boot(quiet, member_env, status=403, availability_zone="nova:host-a"), 403,
               "os_compute_api:servers:create:forced_host")
    nova_error(boot(quiet, member_env, status=403, host="host-a"), 403)


def test_server_group_policies(quiet, env):
    add_host(quiet, "host-b")
    with quiet.services.db.session() as session:
        session.add(ServerGroup(id="11111111-1111-1111-1111-111111111111", name="apart",
                                project_id=quiet.admin_project_id,
                                user_id=quiet.admin_user_id, policy="anti-affinity"))
        session.add(ServerGroup(id="22222222-2222-2222-2222-222222222222", name="together",
                                project_id=quiet.admin_project_id,
                                user_id=quiet.admin_user_id, policy="affinity"))

    def boot_in(group: str, status: int = 202):
        r = nova(quiet, "POST", "/servers", microversion=LATEST,
                 json={"server": env.server(), "os:scheduler_hints": {"group": group}})
        assert r.status_code == status, r.text
        return server(quiet, r.json()["server"]["id"]) if status == 202 else r

    apart = "11111111-1111-1111-1111-111111111111"
    hosts = {boot_in(apart)["OS-EXT-SRV-ATTR:host"] for _ in range(2)}
    assert hosts == {"host-a", "host-b"}
    third = boot_in(apart)
    assert third["status"] == "ERROR" and "anti-affinity" in third["fault"]["message"]
    assert third["server_groups"] == [apart]
    together = "22222222-2222-2222-2222-222222222222"
    assert len({boot_in(together)["OS-EXT-SRV-ATTR:host"] for _ in range(3)}) == 1
    nova_error(boot_in("33333333-3333-3333-3333-333333333333", status=400), 400,
               "Instance group 33333333-3333-3333-3333-333333333333 could not be found.")


# -- list ----------------------------------------------------------------------------------


@pytest.fixture
def three(quiet, env):
    """Servers alpha, beta, gamma (beta ACTIVE with a tag, gamma locked)."""
    ids = {}
    for name in ("alpha", "beta", "gamma"):
        ids[name] = boot(quiet, env, name=name)["id"]
    active(quiet, ids["beta"])
    force_state(quiet, ids["gamma"], locked=True, locked_by="owner")
    nova(quiet, "PUT", f"/servers/{ids['beta']}/tags", microversion=LATEST,
         json={"tags": ["blue", "web"]})
    return ids


def names(r) -> list[str]:
    return [s["name"] for s in ok(r)["servers"]]


def test_list_and_detail(quiet, three):
    listed = ok(nova(quiet, "GET", "/servers"))["servers"]
    assert [s["name"] for s in listed] == ["gamma", "beta", "alpha"]  # newest first
    assert set(listed[0]) == {"id", "name", "links"}
    detail = ok(nova(quiet, "GET", "/servers/detail", microversion=LATEST))["servers"]
    assert [s["name"] for s in detail] == ["gamma", "beta", "alpha"]
    assert "server_groups" not in detail[0] and "host_status" in detail[0]
    assert "servers_links" not in ok(nova(quiet, "GET", "/servers"))


@pytest.mark.parametrize("query, expected", [
    ("name=alp", ["alpha"]),
    ("name=^(be|ga)", ["gamma", "beta"]),
    ("status=ACTIVE", ["beta"]),
    ("status=BUILD&status=ACTIVE", ["gamma", "beta", "alpha"]),
    ("sort_key=display_name&sort_dir=asc", ["alpha", "beta", "gamma"]),
    ("sort_key=display_name", ["gamma", "beta", "alpha"]),
    ("ip=10.0.0.3", ["beta"]),
    ("ip=^10\\.0\\.0\\.", ["gamma", "beta", "alpha"]),
    ("image=nothing", []),
    ("flavor=1", ["gamma", "beta", "alpha"]),
    ("flavor=2", []),
    ("unknown_filter=1", ["gamma", "beta", "alpha"]),
])
def test_list_filters(quiet, three, query, expected):
    assert names(nova(quiet, "GET", f"/servers?{query}")) == expected


@pytest.mark.parametrize("query, expected", [
    ("tags=blue", ["beta"]),
    ("tags=blue,nope", []),
    ("tags-any=nope,web", ["beta"]),
    ("not-tags=blue,web", ["gamma", "alpha"]),
    ("not-tags-any=blue", ["gamma", "alpha"]),
    ("locked=true", ["gamma"]),
    ("locked=false", ["beta", "alpha"]),
    ("sort_key=locked&sort_dir=desc", ["gamma", "beta", "alpha"]),
])
def test_list_filters_of_newer_versions(quiet, three, query, expected):
    assert names(nova(quiet, "GET", f"/servers?{query}", microversion=LATEST)) == expected


def test_list_filter_errors(quiet, three):
    nova_error(nova(quiet, "GET", "/servers?status=WHATEVER", microversion="2.38"), 400,
               "Invalid status value")
    assert names(nova(quiet, "GET", "/servers?status=WHATEVER", microversion="2.37")) == []
    nova_error(nova(quiet, "GET", "/servers?unknown=1", microversion="2.75"), 400,
               "'unknown' was unexpected")
    nova_error(nova(quiet, "GET", "/servers?limit=-1"), 400, "limit")
    nova_error(nova(quiet, "GET", "/servers?limit=x"), 400, "limit")
    nova_error(nova(quiet, "GET", "/servers?marker=nope"), 400, "marker [nope] not found")
    nova_error(nova(quiet, "GET", "/servers?sort_key=bogus"), 400, "sort_key")
    nova_error(nova(quiet, "GET", "/servers?sort_key=vcpus", microversion="2.75"), 400,
               "sort_key")
    assert len(names(nova(quiet, "GET", "/servers?sort_key=vcpus"))) == 3  # ignored
    nova_error(nova(quiet, "GET", "/servers?sort_dir=up"), 400, "sort direction")
    nova_error(nova(quiet, "GET", "/servers?changes-since=yesterday"), 400,
               "changes-since")
    nova_error(nova(quiet, "GET", "/servers?name=(", microversion=LATEST), 400,
               "regular expression")
    nova_error(nova(quiet, "GET", "/servers?locked=maybe", microversion=LATEST), 400,
               "Unrecognized value 'maybe'")
    nova_error(nova(quiet, "GET", "/servers?metadata=x"), 400, "Invalid filter field")
    nova_error(nova(quiet, "GET", "/servers?changes-since=2030-01-02T00:00:00Z&"
                    "changes-before=2030-01-01T00:00:00Z", microversion=LATEST), 400,
               "changes-since must be less than or equal to changes-before")


def test_pagination(quiet, three):
    r = ok(nova(quiet, "GET", "/servers?limit=2"))
    assert [s["name"] for s in r["servers"]] == ["gamma", "beta"]
    [link] = r["servers_links"]
    assert link["rel"] == "next"
    assert link["href"].startswith("http://127.0.0.1:5000/compute/v2.1/servers?")
    assert f"marker={three['beta']}" in link["href"] and "limit=2" in link["href"]
    r = ok(nova(quiet, "GET", f"/servers?limit=2&marker={three['beta']}"))
    assert [s["name"] for s in r["servers"]] == ["alpha"] and "servers_links" not in r
    r = ok(nova(quiet, "GET", "/servers/detail?limit=1&sort_key=display_name&sort_dir=asc"))
    assert [s["name"] for s in r["servers"]] == ["alpha"]
    assert "/compute/v2.1/servers/detail?" in r["servers_links"][0]["href"]
    assert ok(nova(quiet, "GET", "/servers?limit=0")) == {"servers": []}


def test_changes_since_lists_deleted_servers(quiet, three):
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nova(quiet, "DELETE", f"/servers/{three['alpha']}")
    quiet.services.compute.hostapi.instance_deleted(three["alpha"])
    assert names(nova(quiet, "GET", "/servers")) == ["gamma", "beta"]
    r = ok(nova(quiet, "GET", f"/servers/detail?changes-since={before}"))
    statuses = {s["name"]: s["status"] for s in r["servers"]}
    assert statuses == {"alpha": "DELETED", "beta": "ACTIVE", "gamma": "BUILD"}
    assert names(nova(quiet, "GET", "/servers?deleted=true")) == ["alpha"]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(nova(quiet, "GET", f"/servers?changes-since={later}")) == []


def test_projects_see_their_own_servers_only(quiet, env, three):
    member = tenant(quiet, "bob")
    member_env = boot_env(quiet, token=member.token, image=env.image, cidr="10.9.0.0/24")
    mine = boot(quiet, member_env, name="bobs")
    assert names(nova(quiet, "GET", "/servers", token=member.token)) == ["bobs"]
    # non-admins: admin-only filters are ignored, all_tenants is refused
    assert names(nova(quiet, "GET", "/servers?host=host-a&deleted=true",
                      token=member.token)) == ["bobs"]
    nova_error(nova(quiet, "GET", "/servers?all_tenants=1", token=member.token), 403,
               "os_compute_api:servers:index:get_all_tenants")
    assert names(nova(quiet, "GET", "/servers?all_tenants=0", token=member.token)) == ["bobs"]
    nova_error(nova(quiet, "GET", "/servers?sort_key=host", token=member.token), 403,
               "Only administrators can sort servers by host")
    nova_error(nova(quiet, "GET", "/servers?status=DELETED", token=member.token), 403,
               "Only administrators may list deleted instances")
    # admins: their project by default, every project with all_tenants
    assert "bobs" not in names(nova(quiet, "GET", "/servers"))
    assert len(names(nova(quiet, "GET", "/servers?all_tenants=1"))) == 4
    assert names(nova(quiet, "GET", f"/servers?all_tenants&project_id={member.project_id}")
                 ) == ["bobs"]
    assert names(nova(quiet, "GET", "/servers?host=host-a&name=bobs&all_tenants=1")) == [
        "bobs"]
    # another project's server is a 404 everywhere
    for method, path, body in (
            ("GET", f"/servers/{three['alpha']}", None),
            ("PUT", f"/servers/{three['alpha']}", {"server": {"name": "x"}}),
            ("DELETE", f"/servers/{three['alpha']}", None),
            ("POST", f"/servers/{three['alpha']}/action", {"os-stop": None}),
            ("GET", f"/servers/{three['alpha']}/metadata", None),
            ("GET", f"/servers/{three['alpha']}/ips", None),
            ("GET", f"/servers/{three['alpha']}/os-instance-actions", None)):
        nova_error(nova(quiet, method, path, token=member.token, json=body), 404,
                   f"Instance {three['alpha']} could not be found.")
    admin_view = server(quiet, mine["id"])
    assert admin_view["tenant_id"] == member.project_id
    own_view = server(quiet, mine["id"], token=member.token)
    assert "OS-EXT-SRV-ATTR:host" not in own_view and "host_status" not in own_view
    assert own_view["OS-EXT-SRV-ATTR:hostname"] == "bobs"  # 2.90: for everyone


def test_readers_read_and_members_write(quiet, env):
    reader = tenant(quiet, "ro", role="reader")
    nova_error(boot(quiet, None, token=reader.token, status=403, name="x", imageRef=env.image,
                    flavorRef="1", networks="none"), 403,
               "os_compute_api:servers:create")
    assert ok(nova(quiet, "GET", "/servers", token=reader.token)) == {"servers": []}


# -- show, update, delete -----------------------------------------------------------------


def test_show_unknown_ids(quiet):
    for sid in ("6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f", "x" * 300, "nope"):
        nova_error(nova(quiet, "GET", f"/servers/{sid}"), 404, "could not be found")


def test_update(quiet, env):
    sid = boot(quiet, env, name="old")["id"]
    r = nova(quiet, "PUT", f"/servers/{sid}", microversion=LATEST,
             json={"server": {"name": "new", "description": "d", "hostname": "new-host",
                              "accessIPv4": "192.0.2.1", "accessIPv6": "2001:db8::1"}})
    body = ok(r)["server"]
    assert (body["name"], body["description"]) == ("new", "d")
    assert body["OS-EXT-SRV-ATTR:hostname"] == "new-host"
    assert (body["accessIPv4"], body["accessIPv6"]) == ("192.0.2.1", "2001:db8::1")
    assert body["OS-EXT-STS:vm_state"] == "building"  # 2.75: the whole server
    old = ok(nova(quiet, "PUT", f"/servers/{sid}", microversion="2.74",
                  json={"server": {"description": None}}))["server"]
    assert old["description"] is None and "OS-EXT-STS:vm_state" not in old
    for body_, words in (({"server": {"name": ""}}, "server/name"),
                         ({"server": {"hostname": "a b"}}, "server/hostname"),
                         ({"server": {"accessIPv4": "x"}}, "server/accessIPv4"),
                         ({"server": {"locked": True}}, "'locked' was unexpected"),
                         ({"nothing": {}}, "'nothing' was unexpected")):
        nova_error(nova(quiet, "PUT", f"/servers/{sid}", microversion=LATEST, json=body_),
                   400, words)
    nova_error(nova(quiet, "PUT", f"/servers/{sid}", microversion="2.18",
                    json={"server": {"description": "x"}}), 400, "'description' was unexpected")


def test_delete_hands_over_to_the_host_or_deletes_at_once(quiet, env):
    sid = boot(quiet, env)["id"]
    active(quiet, sid)
    assert nova(quiet, "DELETE", f"/servers/{sid}").status_code == 204
    body = server(quiet, sid)
    assert body["OS-EXT-STS:task_state"] == "deleting"
    quiet.services.compute.hostapi.instance_deleted(sid)
    nova_error(nova(quiet, "GET", f"/servers/{sid}"), 404)
    assert ports_of(quiet, sid) == []
    # the host's agent is down: deleted at once (Nova's local delete)
    other = boot(quiet, env)["id"]
    with quiet.services.db.session() as session:
        session.query(ComputeService).filter_by(host="host-a").one().last_seen_at = \
            dt.datetime(2020, 1, 1)
    assert nova(quiet, "DELETE", f"/servers/{other}").status_code == 204
    nova_error(nova(quiet, "GET", f"/servers/{other}"), 404)
    nova_error(nova(quiet, "DELETE", f"/servers/{other}"), 404)


def test_locked_servers_are_deleted_by_admins_only(quiet, env):
    member = tenant(quiet, "lock")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    sid = boot(quiet, member_env)["id"]
    active(quiet, sid)
    assert nova(quiet, "POST", f"/servers/{sid}/action", token=member.token,
                json={"lock": None}).status_code == 202
    nova_error(nova(quiet, "DELETE", f"/servers/{sid}", token=member.token), 409,
               f"Instance {sid} is locked")
    assert nova(quiet, "DELETE", f"/servers/{sid}").status_code == 204


# -- metadata, tags, ips ------------------------------------------------------------------


def test_metadata(quiet, env):
    sid = boot(quiet, env, metadata={"a": "1"})["id"]
    path = f"/servers/{sid}/metadata"
    nova_error(nova(quiet, "POST", path, json={"metadata": {"b": "2"}}), 409,
               f"Cannot 'update metadata' instance {sid} while it is in vm_state building")
    active(quiet, sid)
    assert ok(nova(quiet, "GET", path)) == {"metadata": {"a": "1"}}
    assert ok(nova(quiet, "POST", path, json={"metadata": {"b": "2"}})) == {
        "metadata": {"a": "1", "b": "2"}}
    assert ok(nova(quiet, "PUT", path, json={"metadata": {"c": "3"}})) == {
        "metadata": {"c": "3"}}
    assert ok(nova(quiet, "PUT", f"{path}/d", json={"meta": {"d": "4"}})) == {
        "meta": {"d": "4"}}
    assert ok(nova(quiet, "GET", f"{path}/d")) == {"meta": {"d": "4"}}
    assert nova(quiet, "DELETE", f"{path}/d").status_code == 204
    nova_error(nova(quiet, "GET", f"{path}/d"), 404, "Metadata item was not found")
    nova_error(nova(quiet, "DELETE", f"{path}/d"), 404, "Metadata item was not found")
    nova_error(nova(quiet, "PUT", f"{path}/d", json={"meta": {"e": "4"}}), 400,
               "Request body and URI mismatch")
    nova_error(nova(quiet, "PUT", f"{path}/d", json={"meta": {"d": "4", "e": "5"}}), 400,
               "meta")
    nova_error(nova(quiet, "POST", path, json={"metadata": {"bad/key": "x"}}), 400)
    nova_error(nova(quiet, "POST", path, json={"meta": {}}), 400)
    set_quota(quiet, quiet.admin_project_id, "metadata_items", 2)
    nova_error(nova(quiet, "POST", path, json={"metadata": {"x": "1", "y": "2"}}), 403,
               "Maximum number of metadata items exceeds 2")
    assert server(quiet, sid)["metadata"] == {"c": "3"}


def test_tags(quiet, env):
    sid = boot(quiet, env)["id"]
    path = f"/servers/{sid}/tags"
    nova_error(nova(quiet, "GET", path, microversion="2.25"), 404)
    nova_error(nova(quiet, "PUT", f"{path}/t", microversion=LATEST), 409,
               "Cannot 'update tag' instance")
    active(quiet, sid)
    r = nova(quiet, "PUT", f"{path}/t", microversion=LATEST)
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/servers/{sid}/tags/t")
    assert nova(quiet, "PUT", f"{path}/t", microversion=LATEST).status_code == 204
    assert nova(quiet, "GET", f"{path}/t", microversion=LATEST).status_code == 204
    nova_error(nova(quiet, "GET", f"{path}/u", microversion=LATEST), 404,
               f"Server {sid} has no tag 'u'")
    assert ok(nova(quiet, "PUT", path, microversion=LATEST, json={"tags": ["b", "a", "b"]})
              ) == {"tags": ["a", "b"]}
    assert ok(nova(quiet, "GET", path, microversion=LATEST)) == {"tags": ["a", "b"]}
    assert nova(quiet, "DELETE", f"{path}/a", microversion=LATEST).status_code == 204
    nova_error(nova(quiet, "DELETE", f"{path}/a", microversion=LATEST), 404)
    assert nova(quiet, "DELETE", path, microversion=LATEST).status_code == 204
    assert server(quiet, sid)["tags"] == []
    nova_error(nova(quiet, "PUT", f"{path}/a,b", microversion=LATEST), 400,
               "Tag 'a,b' is invalid")
    nova_error(nova(quiet, "PUT", f"{path}/{'x' * 61}", microversion=LATEST), 400)
    nova_error(nova(quiet, "PUT", f"{path}/t", microversion=LATEST, json={"a": 1}), 400)
    nova_error(nova(quiet, "PUT", path, microversion=LATEST, json={"tags": ["t"] * 51}), 400)
    ok(nova(quiet, "PUT", path, microversion=LATEST,
            json={"tags": [f"t{i}" for i in range(50)]}))
    nova_error(nova(quiet, "PUT", f"{path}/one-more", microversion=LATEST), 400,
               "exceeded the per-server limit 50")


def test_ips(quiet, env):
    sid = boot(quiet, env)["id"]
    assert ok(nova(quiet, "GET", f"/servers/{sid}/ips")) == {"addresses": {}}
    active(quiet, sid)
    assert ok(nova(quiet, "GET", f"/servers/{sid}/ips")) == {
        "addresses": {"private": [{"version": 4, "addr": "10.0.0.2"}]}}
    assert ok(nova(quiet, "GET", f"/servers/{sid}/ips/private")) == {
        "private": [{"version": 4, "addr": "10.0.0.2"}]}
    nova_error(nova(quiet, "GET", f"/servers/{sid}/ips/public"), 404,
               "Instance is not a member of specified network")


def test_dual_stack_addresses(quiet, env):
    quiet.request("POST", "/network/v2.0/subnets", json={"subnet": {
        "network_id": env.network, "cidr": "2001:db8::/64", "ip_version": 6,
        "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}})
    sid = boot(quiet, env)["id"]
    active(quiet, sid)
    addresses = server(quiet, sid)["addresses"]["private"]
    assert [a["version"] for a in addresses] == [4, 6]
    assert addresses[1]["addr"].startswith("2001:db8::")
    assert names(nova(quiet, "GET", "/servers?ip6=^2001:db8::", microversion=LATEST)) == [
        "vm"]


def test_user_data_and_key_pairs(quiet, env):
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    with quiet.services.db.session() as session:
        from onestack.db.models import KeyPair
        session.add(KeyPair(user_id=quiet.admin_user_id, name="mine", public_key="ssh-ed25519 A",
                            fingerprint="f"))
    sid = boot(quiet, env, user_data=user_data, key_name="mine", config_drive=True)["id"]
    body = server(quiet, sid)
    assert body["OS-EXT-SRV-ATTR:user_data"] == user_data
    assert body["key_name"] == "mine" and body["config_drive"] == "True"


# -- with this host's agent ---------------------------------------------------------------


def test_a_server_becomes_active_and_goes_away(cloud):
    env = boot_env(cloud)
    sid = boot(cloud, env)["id"]
    body = wait_for(cloud, sid, "ACTIVE")
    assert body["OS-EXT-STS:power_state"] == 1 and body["OS-SRV-USG:launched_at"]
    assert body["addresses"]["private"][0]["addr"].startswith("10.0.0.")
    assert body["OS-EXT-SRV-ATTR:host"] == "compute-1"
    assert nova(cloud, "DELETE", f"/servers/{sid}").status_code == 204
    for _ in range(200):
        if nova(cloud, "GET", f"/servers/{sid}").status_code == 404:
            break
        import time
        time.sleep(0.05)
    nova_error(nova(cloud, "GET", f"/servers/{sid}"), 404)
    assert ports_of(cloud, sid) == []


def test_server_external_events(quiet, env):
    sid = boot(quiet, env)["id"]
    missing = "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"
    r = nova(quiet, "POST", "/os-server-external-events",
             json={"events": [{"name": "network-changed", "server_uuid": sid}]})
    assert ok(r) == {"events": [{"name": "network-changed", "server_uuid": sid,
                                 "status": "completed", "code": 200}]}
    r = nova(quiet, "POST", "/os-server-external-events", json={"events": [
        {"name": "network-vif-plugged", "server_uuid": sid, "tag": "port", "status": "failed"},
        {"name": "network-changed", "server_uuid": missing}]})
    assert [(e["code"], e.get("tag")) for e in ok(r, 207)["events"]] == [(200, "port"),
                                                                          (404, None)]
    nova_error(nova(quiet, "POST", "/os-server-external-events", json={"events": [
        {"name": "network-changed", "server_uuid": missing}]}), 404)
    for body in ({"events": []}, {"events": [{"name": "power-update", "server_uuid": sid}]},
                 {"events": [{"name": "network-changed"}]},
                 {"events": [{"name": "network-changed", "server_uuid": "x"}]},
                 {"events": [{"name": "network-changed", "server_uuid": sid, "status": "x"}]},
                 {"nothing": []}):
        nova_error(nova(quiet, "POST", "/os-server-external-events", json=body), 400)
    member = tenant(quiet, "events")
    nova_error(nova(quiet, "POST", "/os-server-external-events", token=member.token,
                    json={"events": [{"name": "network-changed", "server_uuid": sid}]}), 403)
