"""/v3/regions, /v3/services and /v3/endpoints, in process."""

from __future__ import annotations

import json

import pytest

from onestack.services.identity.bootstrap import SERVICES

BOOTSTRAP_TYPES = {type_ for type_, _, _ in SERVICES}
BASE = "http://127.0.0.1:5000/v3"


def make_member(cloud, name="alice", password="alice-secret", project="alice-project"):
    """A user with only the member role on a project of their own; returns a token."""
    ident = cloud.services.identity
    proj = ident.projects.create(name=project, domain_id="default")
    user = ident.users.create(name=name, password=password, domain_id="default")
    with ident.db.session() as s:
        ident.assignments.grant(s, "UserProject", user.id, proj.id,
                                ident.roles.find("member").id)
    return cloud.login(name, password, project=project)


def create_service(cloud, type_="placement", name="placement", **extra):
    r = cloud.request("POST", "/v3/services",
                      json={"service": {"type": type_, "name": name, **extra}})
    assert r.status_code == 201, r.text
    return r.json()["service"]


def create_endpoint(cloud, service_id, interface="public", url="http://nova:8774/v2.1",
                    region_id="RegionOne", **extra):
    body = {"service_id": service_id, "interface": interface, "url": url, **extra}
    if region_id is not None:
        body["region_id"] = region_id
    r = cloud.request("POST", "/v3/endpoints", json={"endpoint": body})
    assert r.status_code == 201, r.text
    return r.json()["endpoint"]


def raw(body):
    """JSON bytes for bodies httpx's ``json=`` cannot encode (unpaired surrogates)."""
    return json.dumps(body).encode()


def assert_error(r, status, *words):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["title"] and err["message"]
    for word in words:
        assert word in err["message"], err["message"]


# -- regions ---------------------------------------------------------------------------

def test_region_crud(cloud):
    r = cloud.request("GET", "/v3/regions")
    assert r.status_code == 200
    assert [x["id"] for x in r.json()["regions"]] == ["RegionOne"]
    assert r.json()["links"]["self"] == f"{BASE}/regions"

    r = cloud.request("POST", "/v3/regions",
                      json={"region": {"id": "RegionTwo", "description": "second"}})
    assert r.status_code == 201
    region = r.json()["region"]
    assert region == {"id": "RegionTwo", "description": "second", "parent_region_id": None,
                      "links": {"self": f"{BASE}/regions/RegionTwo"}}

    r = cloud.request("POST", "/v3/regions",
                      json={"region": {"parent_region_id": "RegionTwo", "enabled": True}})
    assert r.status_code == 201
    child = r.json()["region"]
    assert len(child["id"]) == 32 and child["parent_region_id"] == "RegionTwo"
    assert child["enabled"] is True  # extra attributes are kept, as Keystone does

    r = cloud.request("GET", "/v3/regions?parent_region_id=RegionTwo")
    assert [x["id"] for x in r.json()["regions"]] == [child["id"]]
    r = cloud.request("GET", "/v3/regions/RegionTwo")
    assert r.status_code == 200 and r.json()["region"]["description"] == "second"

    r = cloud.request("PATCH", "/v3/regions/RegionTwo",
                      json={"region": {"description": "renamed"}})
    assert r.status_code == 200 and r.json()["region"]["description"] == "renamed"
    r = cloud.request("PATCH", f"/v3/regions/{child['id']}",
                      json={"region": {"parent_region_id": None}})
    assert r.status_code == 200 and r.json()["region"]["parent_region_id"] is None

    r = cloud.request("DELETE", "/v3/regions/RegionTwo")
    assert r.status_code == 204
    assert_error(cloud.request("GET", "/v3/regions/RegionTwo"), 404, "RegionTwo")
    assert_error(cloud.request("DELETE", "/v3/regions/RegionTwo"), 404)


def test_region_put_creates_with_the_path_id(cloud):
    r = cloud.request("PUT", "/v3/regions/RegionThree", json={"region": {}})
    assert r.status_code == 201
    assert r.json()["region"]["id"] == "RegionThree"
    r = cloud.request("PUT", "/v3/regions/RegionThree", json={"region": {}})
    assert_error(r, 409, "RegionThree")
    r = cloud.request("PUT", "/v3/regions/RegionFour", json={"region": {"id": "Other"}})
    assert_error(r, 400, "region/id")


def test_region_negatives(cloud):
    assert_error(cloud.request("POST", "/v3/regions", json={"region": {"id": "RegionOne"}}),
                 409, "RegionOne")
    assert_error(cloud.request("POST", "/v3/regions",
                               json={"region": {"parent_region_id": "nowhere"}}),
                 404, "nowhere")
    assert_error(cloud.request("POST", "/v3/regions", json={"region": {"id": 5}}),
                 400, "region/id")
    assert_error(cloud.request("POST", "/v3/regions", json={"region": {"id": "a/b"}}),
                 400, "region/id")
    assert_error(cloud.request("POST", "/v3/regions",
                               json={"region": {"description": ["x"]}}),
                 400, "region/description")
    assert_error(cloud.request("POST", "/v3/regions", content=raw({"region": {"id": "\ud800"}})),
                 400, "region/id")
    assert_error(cloud.request("PUT", "/v3/regions/R", json={"region": {"description": "\x00"}}),
                 400, "region/description")
    assert_error(cloud.request("POST", "/v3/regions", json={"nothing": {}}), 400, "region")
    assert_error(cloud.request("POST", "/v3/regions", content=b"[1"), 400)
    assert_error(cloud.request("PATCH", "/v3/regions/RegionOne", json={"region": {}}),
                 400, "region")
    assert_error(cloud.request("PATCH", "/v3/regions/RegionOne",
                               json={"region": {"id": "Other"}}), 400, "region/id")
    assert_error(cloud.request("PATCH", "/v3/regions/nowhere",
                               json={"region": {"description": "x"}}), 404)
    assert_error(cloud.request("PATCH", "/v3/regions/RegionOne",
                               json={"region": {"parent_region_id": "nowhere"}}), 404)


def test_region_cycles_are_refused(cloud):
    for rid, parent in (("A", None), ("B", "A"), ("C", "B")):
        r = cloud.request("POST", "/v3/regions",
                          json={"region": {"id": rid, "parent_region_id": parent}})
        assert r.status_code == 201
    assert_error(cloud.request("PATCH", "/v3/regions/A",
                               json={"region": {"parent_region_id": "C"}}),
                 400, "circular")
    assert_error(cloud.request("PATCH", "/v3/regions/A",
                               json={"region": {"parent_region_id": "A"}}),
                 400, "circular")


def test_region_delete_takes_children_and_refuses_with_endpoints(cloud):
    for rid, parent in (("A", None), ("B", "A"), ("C", "B")):
        cloud.request("POST", "/v3/regions",
                      json={"region": {"id": rid, "parent_region_id": parent}})
    service = create_service(cloud)
    endpoint = create_endpoint(cloud, service["id"], region_id="C")
    # Keystone: 403 while the region or any descendant has endpoints
    assert_error(cloud.request("DELETE", "/v3/regions/A"), 403, "endpoints")
    assert cloud.request("DELETE", f"/v3/endpoints/{endpoint['id']}").status_code == 204
    # ... and deleting a region deletes its child regions
    assert cloud.request("DELETE", "/v3/regions/A").status_code == 204
    ids = [x["id"] for x in cloud.request("GET", "/v3/regions").json()["regions"]]
    assert ids == ["RegionOne"]


def test_regions_readable_by_members_not_writable(cloud):
    token = make_member(cloud)
    assert cloud.request("GET", "/v3/regions", token=token).status_code == 200
    assert cloud.request("GET", "/v3/regions/RegionOne", token=token).status_code == 200
    assert_error(cloud.request("POST", "/v3/regions", token=token,
                               json={"region": {"id": "X"}}), 403)
    assert_error(cloud.request("PUT", "/v3/regions/X", token=token,
                               json={"region": {}}), 403)
    assert_error(cloud.request("PATCH", "/v3/regions/RegionOne", token=token,
                               json={"region": {"description": "x"}}), 403)
    assert_error(cloud.request("DELETE", "/v3/regions/RegionOne", token=token), 403)
    assert_error(cloud.request("GET", "/v3/regions", token=None), 401)


# -- services --------------------------------------------------------------------------

def test_service_crud_and_filters(cloud):
    nova = create_service(cloud, description="Compute", extra_attr="kept")
    assert nova["type"] == "placement" and nova["name"] == "placement"
    assert nova["enabled"] is True and nova["description"] == "Compute"
    assert nova["extra_attr"] == "kept"
    assert nova["links"]["self"] == f"{BASE}/services/{nova['id']}"
    swift = create_service(cloud, "object-store", "swift", enabled=False)
    assert swift["enabled"] is False

    r = cloud.request("GET", "/v3/services")
    assert {s["type"] for s in r.json()["services"]} == BOOTSTRAP_TYPES | {"placement",
                                                                          "object-store"}
    r = cloud.request("GET", "/v3/services?type=object-store")
    assert [s["id"] for s in r.json()["services"]] == [swift["id"]]
    r = cloud.request("GET", "/v3/services?name=placement")
    assert [s["id"] for s in r.json()["services"]] == [nova["id"]]
    r = cloud.request("GET", "/v3/services?name=placement&type=image")
    assert r.json()["services"] == []

    r = cloud.request("GET", f"/v3/services/{nova['id']}")
    assert r.status_code == 200 and r.json()["service"] == nova

    r = cloud.request("PATCH", f"/v3/services/{nova['id']}",
                      json={"service": {"name": "nova2", "enabled": False}})
    assert r.status_code == 200
    assert r.json()["service"]["name"] == "nova2" and r.json()["service"]["enabled"] is False
    assert r.json()["service"]["type"] == "placement"

    assert cloud.request("DELETE", f"/v3/services/{nova['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/services/{nova['id']}"), 404)
    assert_error(cloud.request("DELETE", f"/v3/services/{nova['id']}"), 404)


@pytest.mark.parametrize("body, field", [
    ({"name": "x"}, "service/type"),
    ({"type": ""}, "service/type"),
    ({"type": 3}, "service/type"),
    ({"type": "x" * 256}, "service/type"),
    ({"type": "placement", "enabled": "yes"}, "service/enabled"),
    ({"type": "placement", "name": ""}, "service/name"),
    ({"type": "a\x00b"}, "service/type"),
    ({"type": "placement", "description": "\ud800"}, "service/description"),
])
def test_service_create_bad_bodies(cloud, body, field):
    assert_error(cloud.request("POST", "/v3/services", content=raw({"service": body})),
                 400, field)


def test_service_update_negatives(cloud):
    nova = create_service(cloud)
    path = f"/v3/services/{nova['id']}"
    assert_error(cloud.request("PATCH", path, json={"service": {}}), 400, "service")
    assert_error(cloud.request("PATCH", path, json={"service": {"type": None}}),
                 400, "service/type")
    assert_error(cloud.request("PATCH", path, json={"service": {"id": "other"}}),
                 400, "service/id")
    assert_error(cloud.request("PATCH", "/v3/services/nope",
                               json={"service": {"name": "x"}}), 404)


def test_services_and_endpoints_are_admin_only(cloud):
    nova = create_service(cloud)
    ep = create_endpoint(cloud, nova["id"])
    token = make_member(cloud)
    for method, path, body in (
            ("GET", "/v3/services", None),
            ("GET", f"/v3/services/{nova['id']}", None),
            ("POST", "/v3/services", {"service": {"type": "x"}}),
            ("PATCH", f"/v3/services/{nova['id']}", {"service": {"name": "x"}}),
            ("DELETE", f"/v3/services/{nova['id']}", None),
            ("GET", "/v3/endpoints", None),
            ("GET", f"/v3/endpoints/{ep['id']}", None),
            ("POST", "/v3/endpoints", {"endpoint": {"service_id": nova["id"],
                                                    "interface": "public",
                                                    "url": "http://x"}}),
            ("PATCH", f"/v3/endpoints/{ep['id']}", {"endpoint": {"url": "http://x"}}),
            ("DELETE", f"/v3/endpoints/{ep['id']}", None)):
        assert_error(cloud.request(method, path, token=token, json=body), 403)


# -- endpoints -------------------------------------------------------------------------

def test_endpoint_crud_and_filters(cloud):
    nova = create_service(cloud)
    cloud.request("POST", "/v3/regions", json={"region": {"id": "RegionTwo"}})
    public = create_endpoint(cloud, nova["id"], extra_attr=1)
    assert public == {
        "id": public["id"], "interface": "public", "region_id": "RegionOne",
        "region": "RegionOne", "service_id": nova["id"], "url": "http://nova:8774/v2.1",
        "enabled": True, "extra_attr": 1,
        "links": {"self": f"{BASE}/endpoints/{public['id']}"}}
    internal = create_endpoint(cloud, nova["id"], "internal", url="http://10.0.0.1:8774")
    other = create_endpoint(cloud, nova["id"], "admin", region_id="RegionTwo",
                            enabled=False)
    no_region = create_endpoint(cloud, nova["id"], region_id=None)
    assert no_region["region_id"] is None and no_region["region"] is None

    def ids(query):
        r = cloud.request("GET", f"/v3/endpoints{query}")
        assert r.status_code == 200
        return {e["id"] for e in r.json()["endpoints"]}

    everything = ids("")
    assert {public["id"], internal["id"], other["id"], no_region["id"]} < everything
    assert ids(f"?service_id={nova['id']}") == {public["id"], internal["id"], other["id"],
                                               no_region["id"]}
    assert ids(f"?service_id={nova['id']}&interface=public") == {public["id"],
                                                                 no_region["id"]}
    assert ids("?region_id=RegionTwo") == {other["id"]}
    assert ids("?interface=admin&region_id=RegionTwo") == {other["id"]}

    r = cloud.request("GET", f"/v3/endpoints/{public['id']}")
    assert r.status_code == 200 and r.json()["endpoint"] == public

    r = cloud.request("PATCH", f"/v3/endpoints/{public['id']}",
                      json={"endpoint": {"url": "https://nova.example/v2.1",
                                         "region_id": "RegionTwo", "enabled": False}})
    assert r.status_code == 200
    ep = r.json()["endpoint"]
    assert ep["url"] == "https://nova.example/v2.1"
    assert ep["region_id"] == ep["region"] == "RegionTwo" and ep["enabled"] is False
    assert ep["extra_attr"] == 1

    assert cloud.request("DELETE", f"/v3/endpoints/{public['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/endpoints/{public['id']}"), 404)
    assert_error(cloud.request("DELETE", f"/v3/endpoints/{public['id']}"), 404)


def test_endpoint_legacy_region_attribute_creates_the_region(cloud):
    nova = create_service(cloud)
    r = cloud.request("POST", "/v3/endpoints", json={"endpoint": {
        "service_id": nova["id"], "interface": "public", "url": "http://nova",
        "region": "Legacy"}})
    assert r.status_code == 201
    assert r.json()["endpoint"]["region_id"] == "Legacy"
    assert cloud.request("GET", "/v3/regions/Legacy").status_code == 200
    # region_id wins over region when both are given
    r = cloud.request("POST", "/v3/endpoints", json={"endpoint": {
        "service_id": nova["id"], "interface": "public", "url": "http://nova",
        "region_id": "RegionOne", "region": "Ignored"}})
    assert r.status_code == 201 and r.json()["endpoint"]["region_id"] == "RegionOne"
    assert cloud.request("GET", "/v3/regions/Ignored").status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"interface": "private"}, "endpoint/interface"),
    ({"interface": None}, "endpoint/interface"),
    ({"url": "not a url"}, "endpoint/url"),
    ({"url": 5}, "endpoint/url"),
    ({"url": "http://x/$(domain_id)s"}, "endpoint/url"),
    ({"url": "http://x/$(project_id"}, "endpoint/url"),
    ({"service_id": "nope"}, "endpoint/service_id"),
    ({"service_id": None}, "endpoint/service_id"),
    ({"region_id": "nowhere"}, "endpoint/region_id"),
    ({"enabled": "true"}, "endpoint/enabled"),
    ({"url": "http://\ud800"}, "endpoint/url"),
    ({"region": "\ud800"}, "endpoint/region"),
])
def test_endpoint_bad_bodies(cloud, change, field):
    nova = create_service(cloud)
    body = {"service_id": nova["id"], "interface": "public", "url": "http://nova", **change}
    body = {k: v for k, v in body.items() if v is not None or k != "service_id"}
    r = cloud.request("POST", "/v3/endpoints", content=raw({"endpoint": body}))
    assert_error(r, 400, field)
    ep = create_endpoint(cloud, nova["id"])
    r = cloud.request("PATCH", f"/v3/endpoints/{ep['id']}", content=raw({"endpoint": change}))
    assert_error(r, 400, field)


def test_endpoint_missing_fields(cloud):
    for missing in ("service_id", "interface", "url"):
        body = {"service_id": "x", "interface": "public", "url": "http://nova"}
        del body[missing]
        assert_error(cloud.request("POST", "/v3/endpoints", json={"endpoint": body}),
                     400, f"endpoint/{missing}")
    assert_error(cloud.request("PATCH", "/v3/endpoints/nope",
                               json={"endpoint": {"url": "http://x"}}), 404)


def test_deleting_a_service_deletes_its_endpoints(cloud):
    nova = create_service(cloud)
    ep = create_endpoint(cloud, nova["id"])
    assert cloud.request("DELETE", f"/v3/services/{nova['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/endpoints/{ep['id']}"), 404)
    r = cloud.request("GET", f"/v3/endpoints?service_id={nova['id']}")
    assert r.json()["endpoints"] == []


# -- the catalog in tokens ---------------------------------------------------------------

def catalog_of(cloud, token="admin"):
    r = cloud.request("GET", "/v3/auth/catalog", token=token)
    assert r.status_code == 200
    return {s["type"]: s for s in r.json()["catalog"]}


def test_catalog_follows_writes(cloud):
    token = cloud.admin_token
    assert set(catalog_of(cloud, token)) == BOOTSTRAP_TYPES
    nova = create_service(cloud)
    ep = create_endpoint(cloud, nova["id"], url="http://nova/v2.1/$(project_id)s")
    catalog = catalog_of(cloud, token)
    assert catalog["placement"]["name"] == "placement"
    [entry] = catalog["placement"]["endpoints"]
    assert entry["url"] == f"http://nova/v2.1/{cloud.admin_project_id}"
    assert entry["region_id"] == "RegionOne" and entry["interface"] == "public"
    # the token body's catalog too (cached bodies are rebuilt after writes)
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert "placement" in {s["type"] for s in r.json()["token"]["catalog"]}

    cloud.request("PATCH", f"/v3/endpoints/{ep['id']}", json={"endpoint": {"enabled": False}})
    assert catalog_of(cloud, token)["placement"]["endpoints"] == []
    cloud.request("PATCH", f"/v3/services/{nova['id']}", json={"service": {"enabled": False}})
    assert "placement" not in catalog_of(cloud, token)
    cloud.request("DELETE", f"/v3/services/{nova['id']}")
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert {s["type"] for s in r.json()["token"]["catalog"]} == BOOTSTRAP_TYPES


def test_project_urls_left_out_of_domain_scoped_catalogs(cloud):
    nova = create_service(cloud)
    create_endpoint(cloud, nova["id"], url="http://nova/$(tenant_id)s")
    create_endpoint(cloud, nova["id"], "internal", url="http://nova/internal")
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": "admin-secret"}}},
        "scope": {"domain": {"id": "default"}}}})
    assert r.status_code == 201
    [compute] = [s for s in r.json()["token"]["catalog"] if s["type"] == "placement"]
    assert [e["url"] for e in compute["endpoints"]] == ["http://nova/internal"]
