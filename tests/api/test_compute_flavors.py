"""/compute/v2.1/flavors: defaults, lists, create/update/delete, extra specs, access."""

from __future__ import annotations

import pytest

from onestack.common.errors import BadRequest
from tests.api.nova_helpers import nova, nova_error, ok, tenant

DEFAULT_IDS = ["1", "2", "3", "4", "42", "5", "84"]


def create(cloud, token="admin", microversion=None, status=200, **flavor):
    flavor.setdefault("name", "f1")
    flavor.setdefault("ram", 256)
    flavor.setdefault("vcpus", 1)
    flavor.setdefault("disk", 1)
    r = nova(cloud, "POST", "/flavors", token, microversion, json={"flavor": flavor})
    return ok(r, status)["flavor"] if status == 200 else r


def test_defaults_are_seeded_once(cloud):
    flavors = ok(nova(cloud, "GET", "/flavors/detail"))["flavors"]
    assert [f["id"] for f in flavors] == DEFAULT_IDS
    tiny = next(f for f in flavors if f["name"] == "m1.tiny")
    assert (tiny["id"], tiny["vcpus"], tiny["ram"], tiny["disk"]) == ("1", 1, 512, 1)
    nano = next(f for f in flavors if f["name"] == "m1.nano")
    assert (nano["id"], nano["ram"], nano["disk"]) == ("42", 128, 1)
    micro = next(f for f in flavors if f["name"] == "m1.micro")
    assert (micro["id"], micro["ram"]) == ("84", 192)
    cloud.services.compute.flavors.seed_defaults()
    cloud.services.compute.bootstrap()
    assert len(ok(nova(cloud, "GET", "/flavors"))["flavors"]) == 7


def test_bodies_per_microversion(cloud):
    old = ok(nova(cloud, "GET", "/flavors/1"))["flavor"]
    assert old["swap"] == "" and "description" not in old and "extra_specs" not in old
    assert old["OS-FLV-EXT-DATA:ephemeral"] == 0
    assert old["OS-FLV-DISABLED:disabled"] is False
    assert old["os-flavor-access:is_public"] is True
    assert old["rxtx_factor"] == 1.0
    assert old["links"] == [
        {"rel": "self", "href": "http://127.0.0.1:5000/compute/v2.1/flavors/1"},
        {"rel": "bookmark", "href": "http://127.0.0.1:5000/compute/flavors/1"}]
    v255 = ok(nova(cloud, "GET", "/flavors/1", microversion="2.55"))["flavor"]
    assert v255["description"] is None and "extra_specs" not in v255
    v261 = ok(nova(cloud, "GET", "/flavors/1", microversion="2.61"))["flavor"]
    assert v261["extra_specs"] == {} and v261["swap"] == ""
    v275 = ok(nova(cloud, "GET", "/flavors/1", microversion="2.75"))["flavor"]
    assert v275["swap"] == 0
    brief = ok(nova(cloud, "GET", "/flavors", microversion="2.55"))["flavors"][0]
    assert set(brief) == {"id", "name", "links", "description"}


def test_create_show_update_delete(cloud):
    flavor = create(cloud, microversion="2.55", name="small.one", id=7, ram="1024",
                    vcpus=2, disk=0, swap=512, rxtx_factor="2.5", description="for tests",
                    **{"OS-FLV-EXT-DATA:ephemeral": 3, "os-flavor-access:is_public": "false"})
    assert flavor["id"] == "7" and flavor["ram"] == 1024 and flavor["swap"] == 512
    assert flavor["rxtx_factor"] == 2.5 and flavor["OS-FLV-EXT-DATA:ephemeral"] == 3
    assert flavor["os-flavor-access:is_public"] is False
    assert flavor["description"] == "for tests"
    auto = create(cloud, name="auto", id="auto")
    assert len(auto["id"]) == 36
    generated = create(cloud, name="gen", swap="")
    assert len(generated["id"]) == 36 and generated["swap"] == ""
    r = nova(cloud, "PUT", "/flavors/7", microversion="2.55",
             json={"flavor": {"description": "changed"}})
    assert ok(r)["flavor"]["description"] == "changed"
    nova_error(nova(cloud, "PUT", "/flavors/7", json={"flavor": {"description": "x"}}), 404)
    assert nova(cloud, "DELETE", "/flavors/7").status_code == 202
    nova_error(nova(cloud, "GET", "/flavors/7"), 404, "Flavor 7 could not be found.")
    nova_error(nova(cloud, "DELETE", "/flavors/7"), 404)


def test_conflicts(cloud):
    create(cloud, name="dup", id="dup-1")
    nova_error(create(cloud, status=409, name="dup"), 409, "Flavor with name dup already exists")
    nova_error(create(cloud, status=409, name="other", id="dup-1"), 409,
               "Flavor with ID dup-1 already exists")


@pytest.mark.parametrize("bad", [
    {"ram": 0}, {"ram": -1}, {"ram": "lots"}, {"vcpus": 0}, {"vcpus": True},
    {"disk": -1}, {"swap": -1}, {"swap": "x"}, {"rxtx_factor": 0}, {"rxtx_factor": "-1"},
    {"name": ""}, {"name": " padded "}, {"name": "x" * 256}, {"name": 5},
    {"id": " bad"}, {"id": "a/b"}, {"id": ""}, {"os-flavor-access:is_public": "maybe"},
    {"description": "before 2.55"}, {"unknown": 1}, {"ram": 2**31},
])
def test_create_validation(cloud, bad):
    body = {"name": "valid", "ram": 256, "vcpus": 1, "disk": 1, **bad}
    nova_error(nova(cloud, "POST", "/flavors", json={"flavor": body}), 400)


def test_create_needs_required_fields_and_admin(cloud):
    nova_error(nova(cloud, "POST", "/flavors", json={"flavor": {"name": "x", "ram": 1}}), 400)
    nova_error(nova(cloud, "POST", "/flavors", json={"nope": {}}), 400)
    t = tenant(cloud, "alpha")
    r = create(cloud, token=t.token, status=403)
    nova_error(r, 403, "os_compute_api:os-flavor-manage:create")
    nova_error(nova(cloud, "DELETE", "/flavors/1", t.token), 403)
    nova_error(nova(cloud, "PUT", "/flavors/1", t.token, "2.55",
                    json={"flavor": {"description": "x"}}), 403)


def test_list_filters_sort_and_pages(cloud):
    r = ok(nova(cloud, "GET", "/flavors?minRam=2048&minDisk=40"))
    assert [f["id"] for f in r["flavors"]] == ["3", "4", "5"]
    r = ok(nova(cloud, "GET", "/flavors?sort_key=memory_mb&sort_dir=desc"))
    assert [f["name"] for f in r["flavors"]][:2] == ["m1.xlarge", "m1.large"]
    page = ok(nova(cloud, "GET", "/flavors?limit=2"))
    assert [f["id"] for f in page["flavors"]] == ["1", "2"]
    (link,) = page["flavors_links"]
    assert link["rel"] == "next"
    assert link["href"] == "http://127.0.0.1:5000/compute/v2.1/flavors?limit=2&marker=2"
    page = ok(nova(cloud, "GET", "/flavors/detail?limit=2&marker=2"))
    assert [f["id"] for f in page["flavors"]] == ["3", "4"]
    assert "flavors/detail?limit=2&marker=4" in page["flavors_links"][0]["href"]
    last = ok(nova(cloud, "GET", "/flavors?limit=5&marker=4"))
    assert [f["id"] for f in last["flavors"]] == ["42", "5", "84"]
    assert "flavors_links" not in last
    for query in ("minRam=x", "minDisk=1.5", "limit=-1", "limit=a", "marker=nope",
                  "sort_key=bogus", "sort_dir=up", "is_public=maybe"):
        nova_error(nova(cloud, "GET", f"/flavors?{query}"), 400)
    # unknown parameters: ignored before 2.75, refused from then on
    assert nova(cloud, "GET", "/flavors?foo=1").status_code == 200
    nova_error(nova(cloud, "GET", "/flavors?foo=1", microversion="2.75"), 400)


def test_private_flavors_and_access(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    private = create(cloud, name="private", id="p1", **{"os-flavor-access:is_public": False})
    assert private["os-flavor-access:is_public"] is False
    # admins list public ones by default, private ones with is_public=false, all with none
    assert "p1" not in [f["id"] for f in ok(nova(cloud, "GET", "/flavors"))["flavors"]]
    assert [f["id"] for f in ok(nova(cloud, "GET", "/flavors?is_public=false"))["flavors"]] \
        == ["p1"]
    assert len(ok(nova(cloud, "GET", "/flavors?is_public=none"))["flavors"]) == 8
    # the filter takes oslo's boolean words, any case
    for word in ("f", "F", "n", "No", "off", "0", "FALSE"):
        listed = ok(nova(cloud, "GET", f"/flavors?is_public={word}"))["flavors"]
        assert [f["id"] for f in listed] == ["p1"], word
    for word in ("t", "T", "y", "YES", "on", "1", "True"):
        listed = ok(nova(cloud, "GET", f"/flavors?is_public={word}"))["flavors"]
        assert "p1" not in [f["id"] for f in listed] and listed, word
    # others do not see it at all
    assert "p1" not in [f["id"] for f in ok(nova(cloud, "GET", "/flavors", a.token))["flavors"]]
    nova_error(nova(cloud, "GET", "/flavors/p1", a.token), 404)
    nova_error(nova(cloud, "GET", "/flavors/p1/os-extra_specs", a.token), 404)
    assert ok(nova(cloud, "GET", "/flavors/p1/os-flavor-access")) == {"flavor_access": []}
    r = nova(cloud, "POST", "/flavors/p1/action",
             json={"addTenantAccess": {"tenant": a.project_id}})
    assert ok(r) == {"flavor_access": [{"flavor_id": "p1", "tenant_id": a.project_id}]}
    nova_error(nova(cloud, "POST", "/flavors/p1/action",
                    json={"addTenantAccess": {"tenant": a.project_id}}), 409)
    # alpha sees it now, beta still does not
    assert "p1" in [f["id"] for f in ok(nova(cloud, "GET", "/flavors", a.token))["flavors"]]
    assert ok(nova(cloud, "GET", "/flavors/p1", a.token))["flavor"]["name"] == "private"
    nova_error(nova(cloud, "GET", "/flavors/p1", b.token), 404)
    # access list and changes are for admins
    nova_error(nova(cloud, "GET", "/flavors/p1/os-flavor-access", a.token), 403)
    nova_error(nova(cloud, "POST", "/flavors/p1/action", a.token,
                    json={"addTenantAccess": {"tenant": b.project_id}}), 403)
    nova_error(nova(cloud, "POST", "/flavors/p1/action",
                    json={"addTenantAccess": {"tenant": "0" * 32}}), 400, "not a valid project")
    r = nova(cloud, "POST", "/flavors/p1/action",
             json={"removeTenantAccess": {"tenant": a.project_id}})
    assert ok(r) == {"flavor_access": []}
    nova_error(nova(cloud, "POST", "/flavors/p1/action",
                    json={"removeTenantAccess": {"tenant": a.project_id}}), 404)
    nova_error(nova(cloud, "GET", "/flavors/p1", a.token), 404)
    # public flavors have no access list
    nova_error(nova(cloud, "GET", "/flavors/1/os-flavor-access"), 404,
               "Access list not available for public flavors.")
    nova_error(nova(cloud, "POST", "/flavors/1/action", microversion="2.7",
                    json={"addTenantAccess": {"tenant": a.project_id}}), 409,
               "Can not add access to a public flavor.")
    for body in ({"addTenantAccess": {}}, {"addTenantAccess": {"tenant": ""}},
                 {"bogus": {}}, {"addTenantAccess": "x"}):
        nova_error(nova(cloud, "POST", "/flavors/p1/action", json=body), 400)


def test_extra_specs(cloud):
    t = tenant(cloud, "alpha")
    r = nova(cloud, "POST", "/flavors/1/os-extra_specs",
             json={"extra_specs": {"hw:cpu_policy": "dedicated", "quota:disk_read": 100}})
    assert ok(r) == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:disk_read": 100}}
    assert ok(nova(cloud, "GET", "/flavors/1/os-extra_specs", t.token)) == {
        "extra_specs": {"hw:cpu_policy": "dedicated", "quota:disk_read": "100"}}
    assert ok(nova(cloud, "GET", "/flavors/1/os-extra_specs/hw:cpu_policy", t.token)) == {
        "hw:cpu_policy": "dedicated"}
    r = nova(cloud, "PUT", "/flavors/1/os-extra_specs/hw:cpu_policy",
             json={"hw:cpu_policy": "shared"})
    assert ok(r) == {"hw:cpu_policy": "shared"}
    shown = ok(nova(cloud, "GET", "/flavors/1", t.token, "2.61"))["flavor"]
    assert shown["extra_specs"] == {"hw:cpu_policy": "shared", "quota:disk_read": "100"}
    detail = ok(nova(cloud, "GET", "/flavors/detail", t.token, "2.61"))["flavors"]
    assert detail[0]["extra_specs"]["hw:cpu_policy"] == "shared"
    assert nova(cloud, "DELETE", "/flavors/1/os-extra_specs/quota:disk_read").status_code == 200
    nova_error(nova(cloud, "DELETE", "/flavors/1/os-extra_specs/quota:disk_read"), 404,
               "has no extra specs with key quota:disk_read")
    nova_error(nova(cloud, "GET", "/flavors/1/os-extra_specs/nope"), 404)
    # validation
    nova_error(nova(cloud, "PUT", "/flavors/1/os-extra_specs/a", json={"b": "1"}), 400,
               "Request body and URI mismatch")
    nova_error(nova(cloud, "PUT", "/flavors/1/os-extra_specs/a", json={"a": "1", "b": "2"}),
               400)
    for specs in ({"bad/key": "x"}, {"k": "x" * 256}, {"k": None}, {"k": True}, {"": "x"}):
        nova_error(nova(cloud, "POST", "/flavors/1/os-extra_specs",
                        json={"extra_specs": specs}), 400)
    nova_error(nova(cloud, "POST", "/flavors/1/os-extra_specs", json={"extra_specs": []}), 400)
    # writes are for admins
    nova_error(nova(cloud, "POST", "/flavors/1/os-extra_specs", t.token,
                    json={"extra_specs": {"a": "b"}}), 403)
    nova_error(nova(cloud, "DELETE", "/flavors/1/os-extra_specs/hw:cpu_policy", t.token), 403)


def test_get_for_boot_and_snapshot(cloud):
    flavors = cloud.services.compute.flavors
    t = tenant(cloud, "alpha")
    ctx = cloud.services.identity.tokens.validate(t.token)
    create(cloud, name="private", id="p1", **{"os-flavor-access:is_public": False})
    with cloud.services.db.session() as session:
        flavor = flavors.get_for_boot(session, "1", ctx)
        assert flavor.name == "m1.tiny"
        link = "http://127.0.0.1:5000/compute/v2.1/flavors/42"
        assert flavors.get_for_boot(session, link, ctx).name == "m1.nano"
        assert flavors.get_for_boot(session, 84, ctx).name == "m1.micro"
        snap = flavors.snapshot(flavor)
        assert snap == {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                        "ephemeral": 0, "swap": 0, "rxtx_factor": 1.0, "extra_specs": {}}
        for ref in ("p1", "nope"):
            with pytest.raises(BadRequest, match=f"Flavor {ref} could not be found."):
                flavors.get_for_boot(session, ref, ctx)
        session.get(type(flavor), "2").disabled = True
        with pytest.raises(BadRequest, match="Flavor 2 could not be found."):
            flavors.get_for_boot(session, "2", ctx)
