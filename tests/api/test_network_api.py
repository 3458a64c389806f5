"""The Networking API framework: discovery, extensions, error bodies, list queries
(filters, fields, sorting, pagination), standard attributes and tags, in process."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    subnet,
    tenant,
)

ROOT = "http://127.0.0.1:5000/network"


# -- discovery ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/network", "/network/"])
def test_versions(cloud, path):
    r = cloud.request("GET", path, token=None)
    assert r.status_code == 200
    assert r.json() == {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{ROOT}/v2.0/"}]}]}


def test_resources_list(cloud):
    body = get(cloud, "")
    collections = {r["collection"]: r for r in body["resources"]}
    assert {"networks", "subnets", "ports"} <= set(collections)
    assert collections["ports"]["name"] == "port"
    assert collections["ports"]["links"] == [{"rel": "self", "href": f"{ROOT}/v2.0/ports"}]


def test_extensions(cloud):
    aliases = {e["alias"] for e in get(cloud, "extensions")["extensions"]}
    assert {"external-net", "provider", "standard-attr-tag", "port-security",
            "allowed-address-pairs", "extra_dhcp_opt", "binding", "pagination",
            "sorting", "net-mtu"} <= aliases
    ext = get(cloud, "extensions/external-net")["extension"]
    assert ext["alias"] == "external-net" and ext["name"] and "updated" in ext
    neutron_error(cloud.request("GET", f"{V2}/extensions/dvr"), 404, "HTTPNotFound")


def test_errors_have_neutron_bodies(cloud):
    neutron_error(cloud.request("GET", f"{V2}/networks", token=None), 401,
                  "HTTPUnauthorized")
    neutron_error(cloud.request("GET", f"{V2}/networks/nope"), 404, "NetworkNotFound",
                  "Network nope could not be found.")
    neutron_error(cloud.request("GET", f"{V2}/nothing"), 404, "HTTPNotFound")
    neutron_error(cloud.request("PATCH", f"{V2}/networks/x", json={}), 405)
    r = cloud.request("POST", f"{V2}/networks", content=b"{nope",
                      headers={"Content-Type": "application/json"})
    neutron_error(r, 400, "HTTPBadRequest")
    neutron_error(cloud.request("POST", f"{V2}/networks", json={"network": {"bogus": 1}}),
                  400, "HTTPBadRequest", "bogus")
    neutron_error(cloud.request("POST", f"{V2}/networks", json={"net": {}}), 400)


# -- standard attributes ----------------------------------------------------------------

def test_standard_attributes(cloud):
    net = network(cloud, name="std", description="a network")
    assert net["project_id"] == net["tenant_id"] == cloud.admin_project_id
    assert net["revision_number"] == 1 and net["tags"] == []
    assert net["created_at"].endswith("Z") and len(net["created_at"]) == 20
    r = cloud.request("PUT", f"{V2}/networks/{net['id']}",
                      json={"network": {"description": "changed"}})
    assert r.status_code == 200, r.text
    updated = r.json()["network"]
    assert updated["revision_number"] == 2 and updated["description"] == "changed"
    assert updated["updated_at"] >= net["updated_at"]


# -- filters, fields ----------------------------------------------------------------------

@pytest.fixture
def three(cloud):
    nets = [network(cloud, name=n, admin_state_up=up)
            for n, up in (("alpha", True), ("beta", False), ("gamma", True))]
    return {n["name"]: n for n in nets}


def names(body) -> list[str]:
    return [n["name"] for n in body["networks"]]


def test_filters(cloud, three):
    assert names(get(cloud, "networks?name=beta")) == ["beta"]
    assert sorted(names(get(cloud, "networks?name=beta&name=gamma"))) == ["beta", "gamma"]
    assert names(get(cloud, "networks?admin_state_up=false")) == ["beta"]
    assert names(get(cloud, "networks?admin_state_up=False&name=alpha")) == []
    assert names(get(cloud, "networks?router:external=true")) == ["public"]
    assert sorted(names(get(cloud, f"networks?id={three['alpha']['id']}"
                                   f"&id={three['gamma']['id']}"))) == ["alpha", "gamma"]
    assert "public" not in names(get(cloud, f"networks?tenant_id=x&project_id="
                                            f"{cloud.admin_project_id}"))
    # unknown attributes are ignored, as Neutron without filter validation does
    assert len(names(get(cloud, "networks?colour=blue"))) == 4
    neutron_error(cloud.request("GET", f"{V2}/networks?admin_state_up=maybe"), 400)


def test_fields(cloud, three):
    body = get(cloud, "networks?name=alpha&fields=id&fields=name")
    assert body["networks"] == [{"id": three["alpha"]["id"], "name": "alpha"}]
    body = get(cloud, "networks?name=alpha&fields=name,router:external")
    assert body["networks"] == [{"name": "alpha", "router:external": False}]
    body = get(cloud, f"networks/{three['beta']['id']}?fields=admin_state_up")
    assert body == {"network": {"admin_state_up": False}}


# -- sorting, pagination --------------------------------------------------------------

def test_sorting(cloud, three):
    assert names(get(cloud, "networks?sort_key=name&sort_dir=desc")) == [
        "public", "gamma", "beta", "alpha"]
    assert names(get(cloud, "networks?sort_key=admin_state_up&sort_dir=asc"
                            "&sort_key=name&sort_dir=desc"))[0] == "beta"
    assert names(get(cloud, "networks?sort_key=name")) == ["alpha", "beta", "gamma", "public"]
    neutron_error(cloud.request("GET", f"{V2}/networks?sort_key=colour"), 400)
    neutron_error(cloud.request("GET", f"{V2}/networks?sort_key=name&sort_dir=up"), 400)
    neutron_error(cloud.request("GET", f"{V2}/networks?sort_key=name&sort_key=id"
                                       "&sort_dir=asc"), 400)


def _link(body, rel):
    links = {link["rel"]: link["href"] for link in body["networks_links"]}
    return links.get(rel)


def _follow(cloud, href):
    parts = urlsplit(href)
    assert href.startswith(f"{ROOT}/v2.0/networks?")
    return get(cloud, f"networks?{parts.query}")


def test_pagination_follows_links_both_ways(cloud, three):
    everything = names(get(cloud, "networks?sort_key=name"))
    first = get(cloud, "networks?sort_key=name&limit=2")
    assert names(first) == everything[:2]
    assert _link(first, "previous") is None
    assert parse_qs(urlsplit(_link(first, "next")).query)["sort_key"] == ["name"]
    second = _follow(cloud, _link(first, "next"))
    assert names(second) == everything[2:]
    assert _link(second, "next") is None
    back = _follow(cloud, _link(second, "previous"))
    assert names(back) == everything[:2]
    assert _link(back, "previous") is None and _link(back, "next")
    # a limit larger than the collection: no links
    assert get(cloud, "networks?limit=10")["networks_links"] == []
    # without limit: no links key at all
    assert "networks_links" not in get(cloud, "networks")


def test_pagination_descending_with_nulls(cloud):
    net = network(cloud, name="pager")
    subnet(cloud, net["id"], "10.9.0.0/24", gateway_ip=None, name="a")
    subnet(cloud, net["id"], "10.9.1.0/24", name="b")
    subnet(cloud, net["id"], "10.9.2.0/24", gateway_ip=None, name="c")
    expected = [s["name"] for s in get(cloud, "subnets?sort_key=gateway_ip&sort_key=name"
                                              "&sort_dir=desc&sort_dir=asc")["subnets"]]
    seen, path = [], "subnets?sort_key=gateway_ip&sort_key=name&sort_dir=desc&sort_dir=asc" \
                       "&limit=1"
    while True:
        body = get(cloud, path)
        seen += [s["name"] for s in body["subnets"]]
        nxt = [x["href"] for x in body["subnets_links"] if x["rel"] == "next"]
        if not nxt:
            break
        path = "subnets?" + urlsplit(nxt[0]).query
    assert seen == expected and len(seen) == 5  # the public subnets (IPv4, IPv6) too


def test_pagination_errors(cloud):
    neutron_error(cloud.request("GET", f"{V2}/networks?limit=-1"), 400)
    neutron_error(cloud.request("GET", f"{V2}/networks?limit=x"), 400)
    neutron_error(cloud.request("GET", f"{V2}/networks?limit=1&marker=ghost"), 404,
                  "NetworkNotFound")
    assert "networks_links" not in get(cloud, "networks?limit=0")


# -- tags -----------------------------------------------------------------------------

def test_tags_on_every_resource(cloud):
    net = network(cloud, name="tagged", tags=["blue"])
    assert net["tags"] == ["blue"]
    sub = subnet(cloud, net["id"], "10.3.0.0/24")
    prt = port(cloud, net["id"])
    for collection, item in (("networks", net), ("subnets", sub), ("ports", prt)):
        base = f"{V2}/{collection}/{item['id']}/tags"
        r = cloud.request("PUT", base, json={"tags": ["x", "y", "x"]})
        assert r.status_code == 200 and r.json() == {"tags": ["x", "y"]}
        assert cloud.request("PUT", f"{base}/z").status_code == 201
        assert cloud.request("PUT", f"{base}/z").status_code == 201  # idempotent
        assert cloud.request("GET", f"{base}/z").status_code == 204
        neutron_error(cloud.request("GET", f"{base}/nope"), 404, "TagNotFound")
        assert cloud.request("DELETE", f"{base}/x").status_code == 204
        neutron_error(cloud.request("DELETE", f"{base}/x"), 404, "TagNotFound")
        assert cloud.request("GET", base).json() == {"tags": ["y", "z"]}
        shown = get(cloud, f"{collection}/{item['id']}")[collection[:-1]]
        assert shown["tags"] == ["y", "z"] and shown["revision_number"] > item[
            "revision_number"]
        assert cloud.request("DELETE", base).status_code == 204
        assert cloud.request("GET", base).json() == {"tags": []}
    neutron_error(cloud.request("GET", f"{V2}/networks/ghost/tags"), 404, "NetworkNotFound")
    neutron_error(cloud.request("GET", f"{V2}/widgets/{net['id']}/tags"), 404)
    neutron_error(cloud.request("PUT", f"{V2}/networks/{net['id']}/tags",
                                json={"tags": "x"}), 400)
    neutron_error(cloud.request("PUT", f"{V2}/networks/{net['id']}/tags",
                                json={"tags": ["a,b"]}), 400)


def test_tag_filters(cloud):
    a = network(cloud, name="a", tags=["red", "big"])
    b = network(cloud, name="b", tags=["red"])
    c = network(cloud, name="c", tags=["blue"])

    def found(query):
        return set(ids(get(cloud, f"networks?{query}"), "networks")) & {a["id"], b["id"],
                                                                        c["id"]}
    assert found("tags=red") == {a["id"], b["id"]}
    assert found("tags=red,big") == {a["id"]}
    assert found("tags-any=big,blue") == {a["id"], c["id"]}
    assert found("not-tags=red,big") == {b["id"], c["id"]}
    assert found("not-tags-any=big,blue") == {b["id"]}


def test_tags_policy(cloud):
    one, two = tenant(cloud, "tag-one"), tenant(cloud, "tag-two")
    mine = network(cloud, one.token, name="mine")
    shared = network(cloud, name="shared-net", shared=True)
    base = f"{V2}/networks/{mine['id']}/tags"
    assert cloud.request("PUT", f"{base}/ok", token=one.token).status_code == 201
    neutron_error(cloud.request("GET", base, token=two.token), 404, "NetworkNotFound")
    neutron_error(cloud.request("PUT", f"{V2}/networks/{shared['id']}/tags/x",
                                token=one.token), 403, "PolicyNotAuthorized")
    assert cloud.request("GET", f"{V2}/networks/{shared['id']}/tags",
                         token=one.token).json() == {"tags": []}
    assert delete(cloud, f"networks/{mine['id']}").status_code == 204
