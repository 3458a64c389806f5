"""Compute microversions: negotiation, the echo headers, version documents, and what
each microversion changes in server bodies and requests."""

from __future__ import annotations

import pytest

from onestack.api.compute.microversion import MAX_VERSION
from tests.api.compute_helpers import (
    action,
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
)

MAX = f"{MAX_VERSION[0]}.{MAX_VERSION[1]}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One cloud with an ACTIVE server of a member's project (read-only tests)."""
    with quiet_cloud(tmp_path_factory.mktemp("mv")) as cloud:
        add_host(cloud, "host-a")
        member = tenant(cloud, "mv")
        env = boot_env(cloud, token=member.token)
        sid = boot(cloud, env, name="vm", description="about", tags=["a"])["id"]
        force_state(cloud, sid, vm_state="active", task_state=None, power_state=1)
        yield cloud, member, sid


# -- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers, echoed", [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.47"}, "2.47"),
    ({"OpenStack-API-Version": "compute latest"}, MAX),
    ({"X-OpenStack-Nova-API-Version": "2.26"}, "2.26"),
    ({"OpenStack-API-Version": "volume 3.10, compute 2.9"}, "2.9"),
    ({"OpenStack-API-Version": "compute 2.30", "X-OpenStack-Nova-API-Version": "2.5"},
     "2.30"),
])
def test_negotiation_and_echo_headers(world, headers, echoed):
    cloud, member, _ = world
    r = cloud.request("GET", "/compute/v2.1/servers", token=member.token, headers=headers)
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == f"compute {echoed}"
    assert r.headers["X-OpenStack-Nova-API-Version"] == echoed
    assert "OpenStack-API-Version" in r.headers["Vary"]
    assert r.headers["x-openstack-request-id"].startswith("req-")


@pytest.mark.parametrize("value", ["2.0", "2.97", "3.0", "1.1", "2", "two", "2.1.1"])
def test_versions_out_of_range_are_406(world, value):
    cloud, member, _ = world
    r = cloud.request("GET", "/compute/v2.1/servers", token=member.token,
                      headers={"OpenStack-API-Version": f"compute {value}"})
    nova_error(r, 406)
    assert "HTTPNotAcceptable" in r.json()
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"


def test_errors_carry_the_version_too(world):
    cloud, member, _ = world
    r = nova(cloud, "GET", "/servers/6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f",
             token=member.token, microversion="2.60")
    nova_error(r, 404)
    assert "itemNotFound" in r.json()
    assert r.headers["OpenStack-API-Version"] == "compute 2.60"
    nova_error(cloud.request("GET", "/compute/v2.1/servers", token=None), 401)


def test_version_documents(world):
    cloud, _, _ = world
    versions = ok(cloud.request("GET", "/compute/", token=None))["versions"]
    assert versions == [{
        "id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": "http://127.0.0.1:5000/compute/v2/"}]}, {
        "id": "v2.1", "status": "CURRENT", "version": MAX, "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": "http://127.0.0.1:5000/compute/v2.1/"}]}]
    for path in ("/compute/v2.1", "/compute/v2.1/"):
        version = ok(cloud.request("GET", path, token=None))["version"]
        assert (version["id"], version["version"], version["min_version"]) == (
            "v2.1", MAX, "2.1")
        assert version["links"][0] == {"rel": "self",
                                       "href": "http://127.0.0.1:5000/compute/v2.1/"}
        assert version["media-types"][0]["type"] == \
            "application/vnd.openstack.compute+json;version=2.1"
    # every listed self link leads to a version document with the same self link
    for listed in versions:
        [self_link] = [link for link in listed["links"] if link["rel"] == "self"]
        path = self_link["href"].removeprefix("http://127.0.0.1:5000")
        version = ok(cloud.request("GET", path, token=None))["version"]
        assert version["id"] == listed["id"]
        assert [link for link in version["links"] if link["rel"] == "self"] == [self_link]


def test_the_catalog_points_at_v21(world):
    cloud, member, _ = world
    catalog = ok(cloud.request("GET", "/v3/auth/catalog", token=member.token))["catalog"]
    [compute] = [s for s in catalog if s["type"] == "compute"]
    assert compute["name"] == "nova"
    assert {e["url"] for e in compute["endpoints"]} == {
        "http://127.0.0.1:5000/compute/v2.1"}


# -- server bodies -------------------------------------------------------------------------

#: microversion -> keys a member sees that the previous row's version does not show.
ADDED = [
    ("2.9", {"locked"}),
    ("2.19", {"description"}),
    ("2.26", {"tags"}),
    ("2.63", {"trusted_image_certificates"}),
    ("2.71", {"server_groups"}),
    ("2.73", {"locked_reason"}),
    ("2.90", {"OS-EXT-SRV-ATTR:hostname"}),
    ("2.96", {"pinned_availability_zone"}),
]


def test_show_grows_with_the_microversion(world):
    cloud, member, sid = world
    previous = set(server(cloud, sid, token=member.token, microversion="2.1"))
    assert {"id", "name", "status", "addresses", "flavor", "image", "OS-EXT-STS:vm_state",
            "OS-EXT-AZ:availability_zone", "os-extended-volumes:volumes_attached",
            "OS-SRV-USG:launched_at", "config_drive", "key_name", "hostId",
            "security_groups", "progress"} <= previous
    assert not any(k.startswith("OS-EXT-SRV-ATTR") for k in previous)
    for version, added in ADDED:
        keys = set(server(cloud, sid, token=member.token, microversion=version))
        assert keys - previous == added, version
        previous = keys


def test_flavor_becomes_a_dict_at_247(world):
    cloud, member, sid = world
    old = server(cloud, sid, token=member.token, microversion="2.46")["flavor"]
    assert old == {"id": "1", "links": [
        {"rel": "bookmark", "href": "http://127.0.0.1:5000/compute/flavors/1"}]}
    new = server(cloud, sid, token=member.token, microversion="2.47")["flavor"]
    assert new == {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
                   "original_name": "m1.tiny", "extra_specs": {}}


def test_admin_only_fields(world):
    cloud, member, sid = world
    admin_21 = server(cloud, sid, microversion="2.1")
    assert admin_21["OS-EXT-SRV-ATTR:host"] == "host-a"
    assert "OS-EXT-SRV-ATTR:reservation_id" not in admin_21
    admin_23 = server(cloud, sid, microversion="2.3")
    assert admin_23["OS-EXT-SRV-ATTR:launch_index"] == 0
    assert admin_23["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    assert "host_status" not in admin_23
    assert server(cloud, sid, microversion="2.16")["host_status"] == "UP"
    assert "host_status" not in server(cloud, sid, token=member.token, microversion="2.16")


def test_server_groups_are_not_in_lists(world):
    cloud, member, _ = world
    [listed] = ok(nova(cloud, "GET", "/servers/detail", token=member.token,
                       microversion="2.71"))["servers"]
    assert "server_groups" not in listed and "locked" in listed


def test_description_defaults_to_the_name_before_219(world):
    cloud, member, _ = world
    env = boot_env(cloud, token=member.token, cidr="10.7.0.0/24", name="other")
    sid = boot(cloud, env, microversion="2.1", name="named")["id"]
    assert server(cloud, sid, token=member.token, microversion="2.19")["description"] == \
        "named"
    assert boot(cloud, env, microversion="2.18", description="x", status=400).status_code \
        == 400


# -- requests by microversion --------------------------------------------------------------


@pytest.mark.parametrize("microversion, extra, ok_", [
    ("2.36", {"networks": "auto"}, False),       # a string only from 2.37
    ("2.37", {"networks": "auto"}, True),
    ("2.31", {"networks": [{"uuid": "NET", "tag": "nic1"}]}, False),
    ("2.32", {"networks": [{"uuid": "NET", "tag": "nic1"}]}, True),
    ("2.40", {"networks": [{"uuid": "NET", "tag": "nic1"}]}, False),
    ("2.42", {"networks": [{"uuid": "NET", "tag": "nic1"}]}, True),
    ("2.51", {"tags": ["x"]}, False),
    ("2.52", {"tags": ["x"]}, True),
    ("2.73", {"host": "host-a"}, False),
    ("2.74", {"host": "host-a"}, True),
    ("2.89", {"hostname": "h1"}, False),
    ("2.90", {"hostname": "h1"}, True),
    ("2.90", {"hostname": "h1.example.org"}, False),
    ("2.94", {"hostname": "h1.example.org"}, True),
    ("2.56", {"personality": []}, True),
    ("2.57", {"personality": []}, False),
    ("2.62", {"trusted_image_certificates": None}, False),
    ("2.63", {"trusted_image_certificates": None}, True),
])
def test_create_body_by_microversion(tmp_path, microversion, extra, ok_):
    with quiet_cloud(tmp_path) as cloud:
        add_host(cloud, "host-a")
        env = boot_env(cloud)
        body = env.server()
        if isinstance(extra.get("networks"), list):
            extra = {**extra, "networks": [{**n, "uuid": env.network}
                                           for n in extra["networks"]]}
        body.update(extra)
        r = nova(cloud, "POST", "/servers", microversion=microversion, json={"server": body})
        assert r.status_code == (202 if ok_ else 400), r.text


def test_create_image_answer_changes_at_245(world):
    cloud, member, sid = world
    r = action(cloud, sid, {"createImage": {"name": "s1"}}, token=member.token,
               microversion="2.44")
    assert r.status_code == 202 and "Location" in r.headers and not r.content
    force_state(cloud, sid, task_state=None, task_args={})
    r = action(cloud, sid, {"createImage": {"name": "s2"}}, token=member.token,
               microversion="2.45")
    assert r.status_code == 202 and "image_id" in r.json() and "Location" not in r.headers
    force_state(cloud, sid, task_state=None, task_args={})


def test_update_answer_is_the_full_server_from_275(world):
    cloud, member, sid = world
    old = ok(nova(cloud, "PUT", f"/servers/{sid}", token=member.token, microversion="2.74",
                  json={"server": {"name": "vm"}}))["server"]
    assert "OS-EXT-STS:vm_state" not in old and "OS-EXT-AZ:availability_zone" not in old
    assert old["addresses"]["private"][0] == {"version": 4, "addr": "10.0.0.2"}
    new = ok(nova(cloud, "PUT", f"/servers/{sid}", token=member.token, microversion="2.75",
                  json={"server": {"name": "vm"}}))["server"]
    assert new["OS-EXT-STS:vm_state"] == "active" and "OS-EXT-IPS:type" in \
        new["addresses"]["private"][0]
    assert set(new) == set(server(cloud, sid, token=member.token, microversion="2.75"))


def test_unknown_list_parameters_are_refused_from_275(world):
    cloud, member, _ = world
    assert nova(cloud, "GET", "/servers?bogus=1", token=member.token,
                microversion="2.74").status_code == 200
    nova_error(nova(cloud, "GET", "/servers?bogus=1", token=member.token,
                    microversion="2.75"), 400, "bogus")
    # known but admin-only: still ignored for members
    assert nova(cloud, "GET", "/servers?host=x", token=member.token,
                microversion="2.75").status_code == 200


def test_filters_members_gain_at_283(world):
    cloud, member, _ = world
    assert len(ok(nova(cloud, "GET", "/servers?vm_state=stopped", token=member.token,
                       microversion="2.82"))["servers"]) >= 1  # ignored
    assert ok(nova(cloud, "GET", "/servers?vm_state=stopped", token=member.token,
                   microversion="2.83"))["servers"] == []


def test_legacy_extension_list(world):
    cloud, member, _ = world
    r = cloud.request("GET", "/compute/v2.1/extensions", token=member.token)
    extensions = ok(r)["extensions"]
    assert r.headers["x-compute-request-id"] == r.headers["x-openstack-request-id"]
    hosts = next(e for e in extensions if e["name"] == "Hosts")
    assert hosts == {"name": "Hosts", "alias": "os-hosts", "description": "The Hosts API.",
                     "links": [], "namespace": "http://docs.openstack.org/compute/ext/fake_xml",
                     "updated": "2014-12-03T00:00:00Z"}
    assert len({e["alias"] for e in extensions}) == len(extensions)
    shown = ok(cloud.request("GET", "/compute/v2.1/extensions/os-consoles",
                             token=member.token))["extension"]
    assert (shown["alias"], shown["name"]) == ("os-consoles", "Consoles")
    nova_error(cloud.request("GET", "/compute/v2.1/extensions/os-nothing",
                             token=member.token), 404, "os-nothing")
    nova_error(cloud.request("GET", "/compute/v2.1/extensions", token=None), 401)
