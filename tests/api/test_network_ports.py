"""/v2.0/ports and address management: fixed IPs, MACs, EUI-64 addresses, exhaustion,
concurrency, port security, address pairs, DHCP options, bindings, policy and the
internal functions routers and floating IPs use, in process."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from onestack.common.errors import Conflict
from onestack.services.network import ipam
from onestack.services.network.ports import create_port_in, delete_port_in
from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    put,
    subnet,
    tenant,
)


@pytest.fixture
def net(cloud):
    return network(cloud, name="ports")


@pytest.fixture
def v4(cloud, net):
    return subnet(cloud, net["id"], "10.20.0.0/24")


def bad_port(cloud, net_id, status, type_=None, *words, token="admin", **attrs):
    r = cloud.request("POST", f"{V2}/ports", token=token,
                      json={"port": {"network_id": net_id, **attrs}})
    return neutron_error(r, status, type_, *words)


def addresses(p) -> list[str]:
    return [ip["ip_address"] for ip in p["fixed_ips"]]


# -- lifecycle --------------------------------------------------------------------------

def test_lifecycle(cloud, net, v4):
    p = port(cloud, net["id"], name="vm", device_id="server-1", device_owner="compute:nova")
    assert p["fixed_ips"] == [{"subnet_id": v4["id"], "ip_address": "10.20.0.2"}]
    assert p["mac_address"].startswith("fa:16:3e:") and len(p["mac_address"]) == 17
    assert p["status"] == "DOWN" and p["admin_state_up"] is True
    assert (p["device_id"], p["device_owner"]) == ("server-1", "compute:nova")
    assert p["port_security_enabled"] is True and len(p["security_groups"]) == 1
    assert p["allowed_address_pairs"] == [] and p["extra_dhcp_opts"] == []
    assert p["binding:vnic_type"] == "normal" and p["binding:vif_type"] == "unbound"
    assert p["binding:host_id"] == "" and p["binding:profile"] == {}
    assert p["revision_number"] == 1
    assert get(cloud, f"ports/{p['id']}")["port"] == p
    r = put(cloud, f"ports/{p['id']}", "port", name="vm2", admin_state_up=False,
            device_id="server-2")
    assert r.status_code == 200, r.text
    updated = r.json()["port"]
    assert (updated["name"], updated["admin_state_up"], updated["device_id"]) == (
        "vm2", False, "server-2")
    assert updated["revision_number"] == 2
    assert delete(cloud, f"ports/{p['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/ports/{p['id']}"), 404, "PortNotFound")
    neutron_error(delete(cloud, f"ports/{p['id']}"), 404, "PortNotFound")
    # the address is free again
    assert addresses(port(cloud, net["id"])) == ["10.20.0.2"]


def test_port_on_network_without_subnets(cloud, net):
    assert port(cloud, net["id"])["fixed_ips"] == []


def test_unknown_network(cloud):
    bad_port(cloud, "ghost", 404, "NetworkNotFound")


# -- fixed IPs ---------------------------------------------------------------------------

def test_explicit_addresses(cloud, net, v4):
    p = port(cloud, net["id"], fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.20.0.50"}])
    assert addresses(p) == ["10.20.0.50"]
    q = port(cloud, net["id"], fixed_ips=[{"ip_address": "10.20.0.51"}])
    assert q["fixed_ips"] == [{"subnet_id": v4["id"], "ip_address": "10.20.0.51"}]
    r = port(cloud, net["id"], fixed_ips=[{"subnet_id": v4["id"]}, {"subnet_id": v4["id"]}])
    assert addresses(r) == ["10.20.0.2", "10.20.0.3"]
    # outside the pools but inside the subnet is allowed (e.g. the gateway address)
    assert addresses(port(cloud, net["id"], fixed_ips=[{"ip_address": "10.20.0.1"}])) == [
        "10.20.0.1"]
    bad_port(cloud, net["id"], 409, "IpAddressAlreadyAllocated", "10.20.0.50",
             fixed_ips=[{"ip_address": "10.20.0.50"}])
    bad_port(cloud, net["id"], 409, "IpAddressAlreadyAllocated",
             fixed_ips=[{"ip_address": "10.20.0.60"}, {"ip_address": "10.20.0.60"}])
    bad_port(cloud, net["id"], 400, "InvalidIpForSubnet",
             fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.21.0.5"}])
    bad_port(cloud, net["id"], 400, "InvalidIpForSubnet",
             fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.20.0.255"}])
    bad_port(cloud, net["id"], 400, "InvalidIpForNetwork",
             fixed_ips=[{"ip_address": "192.0.2.7"}])
    bad_port(cloud, net["id"], 400, None, fixed_ips=[{"ip_address": "not-an-ip"}])
    bad_port(cloud, net["id"], 400, None, fixed_ips=[{}])
    bad_port(cloud, net["id"], 400, None, fixed_ips=[{"subnet": v4["id"]}])
    bad_port(cloud, net["id"], 404, "SubnetNotFound", fixed_ips=[{"subnet_id": "ghost"}])
    other = network(cloud, name="elsewhere")
    other_sub = subnet(cloud, other["id"], "10.22.0.0/24")
    bad_port(cloud, net["id"], 400, "InvalidInput", "invalid subnet",
             fixed_ips=[{"subnet_id": other_sub["id"]}])


def test_exhaustion(cloud, net):
    sub = subnet(cloud, net["id"], "10.23.0.0/29")  # .2 - .6
    got = [addresses(port(cloud, net["id"]))[0] for _ in range(5)]
    assert got == [f"10.23.0.{i}" for i in range(2, 7)]
    bad_port(cloud, net["id"], 409, "IpAddressGenerationFailure", net["id"])
    bad_port(cloud, net["id"], 409, "IpAddressGenerationFailure",
             fixed_ips=[{"subnet_id": sub["id"]}])


def test_default_takes_the_first_ipv4_subnet_with_room(cloud, net):
    full = subnet(cloud, net["id"], "10.24.0.0/30")  # one address: .2
    roomy = subnet(cloud, net["id"], "10.25.0.0/24")
    first = port(cloud, net["id"])
    second = port(cloud, net["id"])
    assert first["fixed_ips"] == [{"subnet_id": full["id"], "ip_address": "10.24.0.2"}]
    assert second["fixed_ips"] == [{"subnet_id": roomy["id"], "ip_address": "10.25.0.2"}]


def test_update_fixed_ips(cloud, net, v4):
    p = port(cloud, net["id"])
    path = f"ports/{p['id']}"
    r = put(cloud, path, "port", fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.20.0.2"},
                                            {"ip_address": "10.20.0.99"}])
    assert r.status_code == 200, r.text
    assert addresses(r.json()["port"]) == ["10.20.0.2", "10.20.0.99"]
    r = put(cloud, path, "port", fixed_ips=[{"ip_address": "10.20.0.99"}])
    assert addresses(r.json()["port"]) == ["10.20.0.99"]
    # the released address can be taken by another port
    assert addresses(port(cloud, net["id"], fixed_ips=[{"ip_address": "10.20.0.2"}])) == [
        "10.20.0.2"]
    # a subnet-only entry keeps the address the port has there
    r = put(cloud, path, "port", fixed_ips=[{"subnet_id": v4["id"]}])
    assert addresses(r.json()["port"]) == ["10.20.0.99"]
    neutron_error(put(cloud, path, "port", fixed_ips=[{"ip_address": "10.20.0.2"}]), 409,
                  "IpAddressAlreadyAllocated")
    assert addresses(get(cloud, path)["port"]) == ["10.20.0.99"]  # unchanged on failure
    r = put(cloud, path, "port", fixed_ips=[])
    assert r.json()["port"]["fixed_ips"] == []
    neutron_error(put(cloud, path, "port", network_id=net["id"]), 400, None, "read-only")


# -- IPv6 -----------------------------------------------------------------------------------

def eui64(cidr: str, mac: str) -> str:
    net = ipaddress.IPv6Network(cidr)
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(net[int.from_bytes(iid, "big")])


@pytest.mark.parametrize("mode", ["slaac", "dhcpv6-stateless"])
def test_auto_address_subnets_give_eui64(cloud, net, v4, mode):
    v6 = subnet(cloud, net["id"], "2001:db8:20::/64", ipv6_ra_mode=mode,
                ipv6_address_mode=mode)
    p = port(cloud, net["id"])
    assert p["fixed_ips"] == [
        {"subnet_id": v4["id"], "ip_address": "10.20.0.2"},
        {"subnet_id": v6["id"], "ip_address": eui64("2001:db8:20::/64", p["mac_address"])}]
    # explicit addresses on auto-address subnets are refused for ordinary ports
    bad_port(cloud, net["id"], 400, "InvalidInput",
             fixed_ips=[{"subnet_id": v6["id"], "ip_address": "2001:db8:20::5"}])
    # naming only the IPv4 address still adds the EUI-64 address
    q = port(cloud, net["id"], fixed_ips=[{"ip_address": "10.20.0.77"}])
    assert addresses(q) == ["10.20.0.77", eui64("2001:db8:20::/64", q["mac_address"])]
    # a given MAC gives a predictable address
    r = port(cloud, net["id"], mac_address="fa:16:3e:00:11:22")
    assert addresses(r)[1] == "2001:db8:20:0:f816:3eff:fe00:1122"


def test_slaac_subnet_added_later_addresses_existing_ports(cloud, net, v4):
    p = port(cloud, net["id"])
    router_port = port(cloud, net["id"], device_owner="network:router_interface",
                       fixed_ips=[{"ip_address": "10.20.0.1"}])
    v6 = subnet(cloud, net["id"], "2001:db8:21::/64", ipv6_ra_mode="slaac",
                ipv6_address_mode="slaac")
    assert get(cloud, f"ports/{p['id']}")["port"]["fixed_ips"][1] == {
        "subnet_id": v6["id"], "ip_address": eui64("2001:db8:21::/64", p["mac_address"])}
    assert len(get(cloud, f"ports/{router_port['id']}")["port"]["fixed_ips"]) == 1


def test_mac_change_moves_the_eui64_address(cloud, net):
    subnet(cloud, net["id"], "2001:db8:22::/64", ipv6_address_mode="slaac")
    p = port(cloud, net["id"])
    r = put(cloud, f"ports/{p['id']}", "port", mac_address="fa:16:3e:aa:bb:cc")
    assert r.status_code == 200, r.text
    assert addresses(r.json()["port"]) == ["2001:db8:22:0:f816:3eff:feaa:bbcc"]


def test_dhcpv6_stateful_allocates_from_the_pool(cloud, net):
    sub = subnet(cloud, net["id"], "2001:db8:23::/64", ipv6_ra_mode="dhcpv6-stateful",
                 ipv6_address_mode="dhcpv6-stateful")
    assert port(cloud, net["id"])["fixed_ips"] == [{"subnet_id": sub["id"],
                                                     "ip_address": "2001:db8:23::2"}]
    assert addresses(port(cloud, net["id"], fixed_ips=[
        {"ip_address": "2001:db8:23::abcd"}])) == ["2001:db8:23::abcd"]


# -- concurrency ----------------------------------------------------------------------------

def test_concurrent_port_creations_get_distinct_addresses(cloud):
    """50 threads create ports on one subnet at once through the service layer: 50
    distinct addresses, no errors."""
    net = network(cloud, name="race")
    subnet(cloud, net["id"], "10.30.0.0/24")
    ctx = cloud.services.identity.tokens.validate(cloud.admin_token)
    service = cloud.services.network.ports
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(50)

    def create() -> None:
        try:
            start.wait()
            page = service.create(ctx, network_id=net["id"])
            results.append(page.one().fixed_ips[0].ip_address)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 50 and len(set(results)) == 50
    listed = get(cloud, f"ports?network_id={net['id']}")["ports"]
    assert sorted(a for p in listed for a in addresses(p)) == sorted(results)
    assert len({p["mac_address"] for p in listed}) == 50


def test_concurrent_requests_for_one_address(cloud, net, v4):
    """Many threads ask for the same address: exactly one gets it, the others a 409."""
    ctx = cloud.services.identity.tokens.validate(cloud.admin_token)
    service = cloud.services.network.ports
    outcomes: list[str] = []
    start = threading.Barrier(20)

    def create() -> None:
        start.wait()
        try:
            service.create(ctx, network_id=net["id"], fixed_ips=[{"ip_address": "10.20.0.9"}])
            outcomes.append("ok")
        except Conflict as exc:
            outcomes.append(exc.fault)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["IpAddressAlreadyAllocated"] * 19 + ["ok"]


def test_the_database_refuses_duplicates(cloud, net, v4):
    """The unique constraint is the last line of defence: a duplicate insert fails."""
    from sqlalchemy.exc import IntegrityError

    from onestack.db.models import IPAllocation

    p = port(cloud, net["id"])
    with pytest.raises(IntegrityError), cloud.services.db.session() as session:
        session.add(IPAllocation(port_id=p["id"], subnet_id=v4["id"], network_id=net["id"],
                                 ip_address=addresses(p)[0]))


# -- MAC addresses ----------------------------------------------------------------------------

def test_mac_addresses(cloud, net):
    p = port(cloud, net["id"], mac_address="FA:16:3E:01:02:03")
    assert p["mac_address"] == "fa:16:3e:01:02:03"
    bad_port(cloud, net["id"], 409, "MacAddressInUse", mac_address="fa:16:3e:01:02:03")
    other = network(cloud, name="other-macs")
    assert port(cloud, other["id"], mac_address="fa:16:3e:01:02:03")  # per network
    for bad in ("fa:16:3e:01:02", "01:00:5e:00:00:01", "00:00:00:00:00:00", "zz"):
        bad_port(cloud, net["id"], 400, None, mac_address=bad)


def test_mac_change_rules(cloud, net):
    user = tenant(cloud, "mac-user")
    shared = network(cloud, shared=True)
    p = port(cloud, shared["id"], user.token)
    neutron_error(put(cloud, f"ports/{p['id']}", "port", token=user.token,
                      mac_address="fa:16:3e:00:00:01"), 403, "PolicyNotAuthorized")
    q = port(cloud, net["id"], **{"binding:host_id": "host-1"})
    neutron_error(put(cloud, f"ports/{q['id']}", "port", mac_address="fa:16:3e:00:00:02"),
                  409, "PortBound")


# -- port security, address pairs, DHCP options, bindings -------------------------------------

def test_port_security(cloud, net, v4):
    p = port(cloud, net["id"], port_security_enabled=False)
    assert p["port_security_enabled"] is False and p["security_groups"] == []
    bad_port(cloud, net["id"], 400, "PortSecurityAndIPRequiredForSecurityGroups",
             port_security_enabled=False, security_groups=[p["id"]])
    bad_port(cloud, net["id"], 409, "AddressPairAndPortSecurityRequired",
             port_security_enabled=False, allowed_address_pairs=[{"ip_address": "10.0.0.1"}])
    q = port(cloud, net["id"])
    assert len(q["security_groups"]) == 1
    neutron_error(put(cloud, f"ports/{q['id']}", "port", port_security_enabled=False), 409,
                  "PortSecurityPortHasSecurityGroup")
    r = put(cloud, f"ports/{q['id']}", "port", port_security_enabled=False, security_groups=[])
    assert r.status_code == 200, r.text
    assert r.json()["port"]["security_groups"] == []
    assert r.json()["port"]["port_security_enabled"] is False
    # the network's setting is the default
    insecure = network(cloud, name="insecure", port_security_enabled=False)
    assert port(cloud, insecure["id"])["port_security_enabled"] is False


def test_security_groups_of_ports(cloud, net):
    p = port(cloud, net["id"])
    default = p["security_groups"][0]
    assert ids(get(cloud, f"ports?security_groups={default}"), "ports") == [p["id"]]
    q = port(cloud, net["id"], security_groups=[])
    assert q["security_groups"] == []
    r = put(cloud, f"ports/{q['id']}", "port", security_groups=[default])
    assert r.json()["port"]["security_groups"] == [default]
    bad_port(cloud, net["id"], 404, None, security_groups=["ghost"])
    # cloud-owned ports get no default group
    assert port(cloud, net["id"], device_owner="network:dhcp")["security_groups"] == []


def test_allowed_address_pairs(cloud, net):
    pairs = [{"ip_address": "10.40.0.10"},
             {"ip_address": "10.41.0.0/24", "mac_address": "fa:16:3e:12:34:56"}]
    p = port(cloud, net["id"], allowed_address_pairs=pairs)
    assert p["allowed_address_pairs"] == [
        {"ip_address": "10.40.0.10", "mac_address": p["mac_address"]},
        {"ip_address": "10.41.0.0/24", "mac_address": "fa:16:3e:12:34:56"}]
    r = put(cloud, f"ports/{p['id']}", "port", allowed_address_pairs=[])
    assert r.json()["port"]["allowed_address_pairs"] == []
    bad_port(cloud, net["id"], 400, "AllowedAddressPairsMissingIP",
             allowed_address_pairs=[{"mac_address": "fa:16:3e:12:34:56"}])
    bad_port(cloud, net["id"], 400, "DuplicateAddressPairInRequest",
             allowed_address_pairs=[{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.1"}])
    bad_port(cloud, net["id"], 400, "AllowedAddressPairExhausted",
             allowed_address_pairs=[{"ip_address": f"10.0.0.{i}"} for i in range(11)])
    bad_port(cloud, net["id"], 400, None, allowed_address_pairs=[{"ip_address": "10.0.0.1/8"}])


def test_extra_dhcp_opts(cloud, net):
    opts = [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
            {"opt_name": "tftp-server", "opt_value": "192.0.2.5", "ip_version": 4}]
    p = port(cloud, net["id"], extra_dhcp_opts=opts)
    assert p["extra_dhcp_opts"] == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {"opt_name": "tftp-server", "opt_value": "192.0.2.5", "ip_version": 4}]
    r = put(cloud, f"ports/{p['id']}", "port", extra_dhcp_opts=[
        {"opt_name": "bootfile-name", "opt_value": None},
        {"opt_name": "tftp-server", "opt_value": "192.0.2.6"},
        {"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6}])
    assert r.status_code == 200, r.text
    assert r.json()["port"]["extra_dhcp_opts"] == [
        {"opt_name": "tftp-server", "opt_value": "192.0.2.6", "ip_version": 4},
        {"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6}]
    bad_port(cloud, net["id"], 400, None, extra_dhcp_opts=[{"opt_name": "x"}])
    bad_port(cloud, net["id"], 400, None, extra_dhcp_opts=[
        {"opt_name": "x", "opt_value": "1"}, {"opt_name": "x", "opt_value": "2"}])
    bad_port(cloud, net["id"], 400, None, extra_dhcp_opts=[
        {"opt_name": "x", "opt_value": "1", "ip_version": 5}])


def test_bindings_are_for_admins(cloud):
    user = tenant(cloud, "binding-user")
    mine = network(cloud, user.token)
    p = port(cloud, mine["id"], user.token, **{"binding:vnic_type": "normal"})
    assert "binding:host_id" not in p and "binding:vif_type" not in p
    assert p["binding:vnic_type"] == "normal"
    bad_port(cloud, mine["id"], 403, "PolicyNotAuthorized", token=user.token,
             **{"binding:host_id": "compute-1"})
    neutron_error(put(cloud, f"ports/{p['id']}", "port", token=user.token,
                      **{"binding:profile": {"a": 1}}), 403, "PolicyNotAuthorized")
    r = put(cloud, f"ports/{p['id']}", "port", **{"binding:host_id": "compute-1",
                                                  "binding:profile": {"k": "v"}})
    assert r.status_code == 200, r.text
    bound = r.json()["port"]
    assert (bound["binding:host_id"], bound["binding:vif_type"], bound["binding:profile"]) \
        == ("compute-1", "bridge", {"k": "v"})
    assert bound["binding:vif_details"]["port_filter"] is True
    assert ids(get(cloud, "ports?binding:host_id=compute-1"), "ports") == [p["id"]]
    r = put(cloud, f"ports/{p['id']}", "port", **{"binding:host_id": ""})
    assert r.json()["port"]["binding:vif_type"] == "unbound"
    neutron_error(put(cloud, f"ports/{p['id']}", "port", **{"binding:vnic_type": "weird"}),
                  400)


# -- policy and visibility ------------------------------------------------------------------

def test_ports_on_other_projects_networks(cloud):
    one, two = tenant(cloud, "port-one"), tenant(cloud, "port-two")
    private = network(cloud, one.token)
    subnet(cloud, private["id"], "10.50.0.0/24", token=one.token)
    shared = network(cloud, shared=True)
    shared_sub = subnet(cloud, shared["id"], "10.51.0.0/24")
    public = get(cloud, "networks?name=public")["networks"][0]

    bad_port(cloud, private["id"], 404, "NetworkNotFound", token=two.token)
    bad_port(cloud, public["id"], 403, "PolicyNotAuthorized", token=two.token)
    theirs = port(cloud, shared["id"], two.token, fixed_ips=[{"subnet_id": shared_sub["id"]}])
    assert theirs["project_id"] == two.project_id
    # on a shared network only its owner chooses addresses, MACs and network:* owners
    bad_port(cloud, shared["id"], 403, "PolicyNotAuthorized", token=two.token,
             fixed_ips=[{"ip_address": "10.51.0.77"}])
    bad_port(cloud, shared["id"], 403, "PolicyNotAuthorized", token=two.token,
             mac_address="fa:16:3e:99:99:99")
    bad_port(cloud, shared["id"], 403, "PolicyNotAuthorized", token=two.token,
             device_owner="network:dhcp")
    # a project sees its own ports; a network's owner sees every port on it
    own = port(cloud, private["id"], one.token)
    assert ids(get(cloud, "ports", token=two.token), "ports") == [theirs["id"]]
    assert own["id"] in ids(get(cloud, "ports", token=one.token), "ports")
    neutron_error(cloud.request("GET", f"{V2}/ports/{own['id']}", token=two.token), 404,
                  "PortNotFound")
    neutron_error(delete(cloud, f"ports/{own['id']}", token=two.token), 404)
    assert theirs["id"] in ids(get(cloud, "ports"), "ports")  # admin


def test_network_owner_sees_and_deletes_ports_on_its_network(cloud):
    owner, guest = tenant(cloud, "net-owner"), tenant(cloud, "net-guest")
    net = post_shared = network(cloud, owner.token)
    # only admins share; make the owner's network shared through the admin
    assert put(cloud, f"networks/{net['id']}", "network", shared=True).status_code == 200
    p = port(cloud, post_shared["id"], guest.token)
    assert p["id"] in ids(get(cloud, "ports", token=owner.token), "ports")
    neutron_error(put(cloud, f"ports/{p['id']}", "port", token=owner.token, name="x"), 403,
                  "PolicyNotAuthorized")
    assert delete(cloud, f"ports/{p['id']}", token=owner.token).status_code == 204


def test_l3_ports_cannot_be_deleted_directly(cloud, net, v4):
    for owner in ("network:router_interface", "network:router_gateway", "network:floatingip"):
        p = port(cloud, net["id"], device_owner=owner)
        neutron_error(delete(cloud, f"ports/{p['id']}"), 409, "L3PortInUse", owner)


# -- list filters ---------------------------------------------------------------------------

def test_port_filters(cloud, net, v4):
    a = port(cloud, net["id"], device_id="vm-a", fixed_ips=[{"ip_address": "10.20.0.10"}])
    b = port(cloud, net["id"], device_id="vm-b", fixed_ips=[{"ip_address": "10.20.0.110"}])
    other = network(cloud, name="filters-other")
    c = port(cloud, other["id"], device_id="vm-a")

    def found(query):
        return set(ids(get(cloud, f"ports?{query}"), "ports"))
    assert found("device_id=vm-a") == {a["id"], c["id"]}
    assert found(f"device_id=vm-a&network_id={net['id']}") == {a["id"]}
    assert found("fixed_ips=ip_address%3D10.20.0.10") == {a["id"]}
    assert found(f"fixed_ips=subnet_id%3D{v4['id']}") == {a["id"], b["id"]}
    assert found(f"fixed_ips=subnet_id%3D{v4['id']}&fixed_ips=ip_address%3D10.20.0.110") \
        == {b["id"]}
    assert found("fixed_ips=ip_address%3D10.20.0.10&fixed_ips=ip_address%3D10.20.0.110") \
        == {a["id"], b["id"]}
    assert found("fixed_ips=ip_address_substr%3D0.11") == {b["id"]}
    assert found(f"mac_address={a['mac_address']}") == {a["id"]}
    neutron_error(cloud.request("GET", f"{V2}/ports?fixed_ips=10.20.0.10"), 400)


# -- the internal functions (routers, floating IPs) ----------------------------------------

def test_internal_create_and_delete(cloud, net, v4):
    db = cloud.services.db
    with db.session() as session:
        p = create_port_in(session, network_id=net["id"], project_id="",
                           fixed_ips=[{"subnet_id": v4["id"], "ip_address": v4["gateway_ip"]}],
                           device_id="router-1", device_owner="network:router_interface")
        port_id = p.id
        assert [a.ip_address for a in p.fixed_ips] == ["10.20.0.1"]
    shown = get(cloud, f"ports/{port_id}")["port"]
    assert shown["device_owner"] == "network:router_interface"
    assert shown["security_groups"] == [] and shown["tenant_id"] == ""
    with db.session() as session:
        delete_port_in(session, port_id)
        delete_port_in(session, port_id)  # already gone: no error
    neutron_error(cloud.request("GET", f"{V2}/ports/{port_id}"), 404)


def test_internal_allocate_and_release(cloud, net, v4):
    from onestack.db.models import Subnet

    db = cloud.services.db
    with db.session() as session:
        sub = session.get(Subnet, v4["id"])
        assert ipam.allocate_ip(session, sub) == "10.20.0.2"  # not reserved without a port
        p = create_port_in(session, network_id=net["id"], project_id="x", fixed_ips=[])
        assert ipam.allocate_ip(session, sub, port=p) == "10.20.0.2"
        assert ipam.allocate_ip(session, sub, "10.20.0.200", port=p) == "10.20.0.200"
        with pytest.raises(Conflict):
            ipam.allocate_ip(session, sub, "10.20.0.200")
        ipam.release_ip(session, sub.id, "10.20.0.2")
        session.expire(p)
        assert [a.ip_address for a in p.fixed_ips] == ["10.20.0.200"]


def test_update_may_repeat_the_eui64_address(cloud, net, v4):
    """``openstack port set --fixed-ip`` sends the current addresses plus the new one."""
    v6 = subnet(cloud, net["id"], "2001:db8:24::/64", ipv6_address_mode="slaac")
    p = port(cloud, net["id"])
    r = put(cloud, f"ports/{p['id']}", "port",
            fixed_ips=[*p["fixed_ips"], {"ip_address": "10.20.0.40"}])
    assert r.status_code == 200, r.text
    assert addresses(r.json()["port"]) == [*addresses(p), "10.20.0.40"]
    neutron_error(put(cloud, f"ports/{p['id']}", "port", fixed_ips=[
        {"subnet_id": v6["id"], "ip_address": "2001:db8:24::99"}]), 400, "InvalidInput")


def test_no_fixed_ip_means_none(cloud, net, v4):
    subnet(cloud, net["id"], "2001:db8:25::/64", ipv6_address_mode="slaac")
    assert port(cloud, net["id"], fixed_ips=[])["fixed_ips"] == []
