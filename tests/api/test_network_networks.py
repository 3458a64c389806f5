"""/v2.0/networks: lifecycle, provider attributes, MTU, policy and visibility, the
bootstrap external network, in process."""

from __future__ import annotations

import pytest

from onestack.assembly import Services
from onestack.db.models import Subnet
from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    post,
    put,
    subnet,
    tenant,
)
from tests.conftest import ADMIN_PASSWORD


def test_lifecycle(cloud):
    net = network(cloud, name="web", description="front end")
    assert net["name"] == "web" and net["description"] == "front end"
    assert net["admin_state_up"] is True and net["status"] == "ACTIVE"
    assert net["shared"] is False and net["router:external"] is False
    assert net["mtu"] == 1450 and net["port_security_enabled"] is True
    assert net["subnets"] == []
    assert net["provider:network_type"] == "vxlan"
    assert net["provider:physical_network"] is None
    assert isinstance(net["provider:segmentation_id"], int)
    assert get(cloud, f"networks/{net['id']}")["network"] == net
    assert net["id"] in ids(get(cloud, "networks"), "networks")

    r = put(cloud, f"networks/{net['id']}", "network", name="web2", admin_state_up=False,
            mtu=1400, port_security_enabled=False)
    assert r.status_code == 200, r.text
    updated = r.json()["network"]
    assert (updated["name"], updated["admin_state_up"], updated["mtu"],
            updated["port_security_enabled"]) == ("web2", False, 1400, False)
    sub = subnet(cloud, net["id"])
    assert get(cloud, f"networks/{net['id']}")["network"]["subnets"] == [sub["id"]]

    assert delete(cloud, f"networks/{net['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/networks/{net['id']}"), 404, "NetworkNotFound")
    neutron_error(cloud.request("GET", f"{V2}/subnets/{sub['id']}"), 404, "SubnetNotFound")
    neutron_error(delete(cloud, f"networks/{net['id']}"), 404, "NetworkNotFound")


def test_vnis_are_allocated_lowest_free_and_unique(cloud):
    a, b = network(cloud, name="a"), network(cloud, name="b")
    vni_a, vni_b = a["provider:segmentation_id"], b["provider:segmentation_id"]
    assert vni_a != vni_b
    assert delete(cloud, f"networks/{a['id']}").status_code == 204
    c = network(cloud, name="c")
    assert c["provider:segmentation_id"] == vni_a
    fixed = network(cloud, name="fixed", **{"provider:network_type": "vxlan",
                                            "provider:segmentation_id": 5000})
    assert fixed["provider:segmentation_id"] == 5000
    r = post(cloud, "networks", "network", status=409, name="dup",
             **{"provider:network_type": "vxlan", "provider:segmentation_id": 5000})
    assert r["NeutronError"]["type"] == "TunnelIdInUse"


def test_provider_networks(cloud):
    vlan = network(cloud, name="vlan", **{"provider:network_type": "vlan",
                                          "provider:physical_network": "public",
                                          "provider:segmentation_id": "100"})
    assert (vlan["provider:network_type"], vlan["provider:physical_network"],
            vlan["provider:segmentation_id"], vlan["mtu"]) == ("vlan", "public", 100, 1500)
    r = post(cloud, "networks", "network", status=409, **{
        "provider:network_type": "vlan", "provider:physical_network": "public",
        "provider:segmentation_id": 100})
    assert r["NeutronError"]["type"] == "VlanIdInUse"
    # the bootstrap network is the flat network on "public"
    r = post(cloud, "networks", "network", status=409, **{
        "provider:network_type": "flat", "provider:physical_network": "public"})
    assert r["NeutronError"]["type"] == "FlatNetworkInUse"
    local = network(cloud, name="local", **{"provider:network_type": "local"})
    assert local["provider:segmentation_id"] is None
    for attrs, status in (
        ({"provider:network_type": "gre"}, 400),
        ({"provider:network_type": "vlan", "provider:segmentation_id": 5}, 400),
        ({"provider:network_type": "vlan", "provider:physical_network": "nowhere",
          "provider:segmentation_id": 5}, 400),
        ({"provider:network_type": "vlan", "provider:physical_network": "public",
          "provider:segmentation_id": 4095}, 400),
        ({"provider:network_type": "vlan", "provider:physical_network": "public"}, 503),
        ({"provider:network_type": "flat", "provider:physical_network": "public",
          "provider:segmentation_id": 3}, 400),
        ({"provider:network_type": "vxlan", "provider:segmentation_id": 2**24}, 400),
        ({"provider:network_type": "vxlan", "provider:physical_network": "public"}, 400),
    ):
        post(cloud, "networks", "network", status=status, **attrs)
    # provider attributes cannot change
    neutron_error(put(cloud, f"networks/{vlan['id']}", "network",
                      **{"provider:segmentation_id": 101}), 400)


def test_mtu(cloud):
    assert network(cloud, mtu=1300)["mtu"] == 1300
    neutron_error(cloud.request("POST", f"{V2}/networks", json={"network": {"mtu": 9000}}),
                  400, "InvalidInput", "maximum is 1450")
    post(cloud, "networks", "network", status=400, mtu=20)
    post(cloud, "networks", "network", status=400, mtu="big")


def test_tenant_mtu_is_configurable(tmp_path):
    from starlette.testclient import TestClient

    from onestack.api.app import create_app
    from tests.conftest import make_config

    config = make_config(tmp_path / "state", network_tenant_mtu=1400)
    services = Services(config, admin_password=ADMIN_PASSWORD)
    try:
        with TestClient(create_app(config, services), base_url="http://127.0.0.1:5000") as c:
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"},
                "password": ADMIN_PASSWORD}}}, "scope": {"project": {
                    "name": "admin", "domain": {"name": "Default"}}}}}
            token = c.post("/v3/auth/tokens", json=body).headers["X-Subject-Token"]
            r = c.post(f"{V2}/networks", json={"network": {"name": "n"}},
                       headers={"X-Auth-Token": token})
            assert r.status_code == 201 and r.json()["network"]["mtu"] == 1400
    finally:
        services.close()


def test_only_admins_set_shared_external_and_provider(cloud):
    user = tenant(cloud, "plain")
    for attrs, rule in (({"shared": True}, "shared"),
                        ({"router:external": True}, "router:external"),
                        ({"provider:network_type": "vxlan"}, "provider")):
        r = cloud.request("POST", f"{V2}/networks", token=user.token,
                          json={"network": attrs})
        neutron_error(r, 403, "PolicyNotAuthorized", rule)
    net = network(cloud, user.token, name="own")
    assert "provider:network_type" not in net
    assert net["project_id"] == user.project_id
    neutron_error(put(cloud, f"networks/{net['id']}", "network", token=user.token,
                      shared=True), 403, "PolicyNotAuthorized")
    neutron_error(cloud.request("POST", f"{V2}/networks", token=user.token,
                                json={"network": {"project_id": cloud.admin_project_id}}),
                  403, "PolicyNotAuthorized")
    # an admin may create a network for another project
    other = network(cloud, project_id=user.project_id, name="for-plain")
    assert other["tenant_id"] == user.project_id
    assert other["id"] in ids(get(cloud, "networks", token=user.token), "networks")


def test_visibility_between_projects(cloud):
    one, two = tenant(cloud, "one"), tenant(cloud, "two")
    private = network(cloud, one.token, name="private")
    shared = network(cloud, name="shared", shared=True)
    seen_by_two = ids(get(cloud, "networks", token=two.token), "networks")
    assert private["id"] not in seen_by_two
    assert shared["id"] in seen_by_two
    public = [n for n in get(cloud, "networks", token=two.token)["networks"]
              if n["name"] == "public"]
    assert len(public) == 1 and public[0]["router:external"] is True
    neutron_error(cloud.request("GET", f"{V2}/networks/{private['id']}", token=two.token),
                  404, "NetworkNotFound")
    neutron_error(put(cloud, f"networks/{private['id']}", "network", token=two.token,
                      name="x"), 404, "NetworkNotFound")
    neutron_error(delete(cloud, f"networks/{private['id']}", token=two.token), 404)
    # visible but not theirs: refused by policy
    neutron_error(put(cloud, f"networks/{shared['id']}", "network", token=two.token,
                      name="x"), 403, "PolicyNotAuthorized")
    neutron_error(delete(cloud, f"networks/{shared['id']}", token=two.token), 403)
    # admins see everything
    assert private["id"] in ids(get(cloud, "networks"), "networks")
    assert get(cloud, f"networks?tenant_id={one.project_id}")["networks"][0]["id"] == \
        private["id"]


def test_delete_in_use(cloud):
    net = network(cloud)
    subnet(cloud, net["id"])
    vm_port = port(cloud, net["id"], device_owner="compute:nova")
    dhcp = port(cloud, net["id"], device_owner="network:dhcp")
    neutron_error(delete(cloud, f"networks/{net['id']}"), 409, "NetworkInUse")
    assert delete(cloud, f"ports/{vm_port['id']}").status_code == 204
    assert delete(cloud, f"networks/{net['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/ports/{dhcp['id']}"), 404, "PortNotFound")


def test_unshare_refused_while_others_use_it(cloud):
    user = tenant(cloud, "user-of-shared")
    net = network(cloud, shared=True)
    subnet(cloud, net["id"])
    p = port(cloud, net["id"], user.token)
    neutron_error(put(cloud, f"networks/{net['id']}", "network", shared=False), 409,
                  "InvalidSharedSetting")
    assert delete(cloud, f"ports/{p['id']}", token=user.token).status_code == 204
    assert put(cloud, f"networks/{net['id']}", "network", shared=False).status_code == 200


def test_unexternal_refused_with_gateway_ports(cloud):
    net = network(cloud, **{"router:external": True})
    subnet(cloud, net["id"], "198.51.100.0/24")
    port(cloud, net["id"], device_owner="network:router_gateway")
    neutron_error(put(cloud, f"networks/{net['id']}", "network", **{"router:external": False}),
                  409, "ExternalNetworkInUse")


def test_network_filters_by_subnet_and_provider(cloud):
    net = network(cloud, name="findme")
    sub = subnet(cloud, net["id"], "10.44.0.0/24")
    assert ids(get(cloud, f"networks?subnets={sub['id']}"), "networks") == [net["id"]]
    vni = net["provider:segmentation_id"]
    assert ids(get(cloud, f"networks?provider:segmentation_id={vni}"), "networks") == [
        net["id"]]


def test_bootstrap_public_network(cloud):
    nets = get(cloud, "networks?name=public")["networks"]
    assert len(nets) == 1
    public = nets[0]
    assert public["router:external"] is True and public["shared"] is False
    assert public["project_id"] == cloud.admin_project_id
    assert public["provider:network_type"] == "flat"
    (sub,) = get(cloud, f"subnets?network_id={public['id']}&ip_version=4")["subnets"]
    assert sub["cidr"] == "203.0.113.0/24" and sub["gateway_ip"] == "203.0.113.1"
    assert sub["allocation_pools"] == [{"start": "203.0.113.2", "end": "203.0.113.254"}]
    assert sub["enable_dhcp"] is False
    # idempotent: a second start leaves it alone
    cloud.services.network.bootstrap(cloud.admin_project_id)
    assert get(cloud, "networks?name=public")["networks"] == nets
    assert len(get(cloud, f"subnets?network_id={public['id']}")["subnets"]) == 2  # + IPv6


def test_bootstrap_is_configurable(tmp_path):
    from tests.conftest import make_config

    config = make_config(tmp_path / "state", network_public_cidr="192.0.2.0/24",
                         network_public_pool_start="192.0.2.100",
                         network_public_pool_end="192.0.2.150")
    services = Services(config, admin_password=ADMIN_PASSWORD)
    try:
        with services.db.session() as session:
            (sub,) = session.query(Subnet).filter_by(ip_version=4).all()
            assert sub.cidr == "192.0.2.0/24" and sub.gateway_ip == "192.0.2.1"
            assert [(p.first_ip, p.last_ip) for p in sub.allocation_pools] == [
                ("192.0.2.100", "192.0.2.150")]
    finally:
        services.close()
    again = Services(config)  # restart on the same state dir
    try:
        with again.db.session() as session:
            assert session.query(Subnet).count() == 2  # IPv4 and IPv6
    finally:
        again.close()


@pytest.mark.parametrize("value", [None, 3])
def test_invalid_update_values(cloud, value):
    net = network(cloud)
    neutron_error(put(cloud, f"networks/{net['id']}", "network", admin_state_up=value), 400)


def test_concurrent_network_creations_get_distinct_vnis(cloud):
    import threading

    ctx = cloud.services.identity.tokens.validate(cloud.admin_token)
    vnis: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def create() -> None:
        try:
            start.wait()
            vnis.append(cloud.services.network.networks.create(ctx).one().segmentation_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(vnis)) == 20
