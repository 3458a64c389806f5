"""``os-interface`` end to end in process: the API, the network service and the host's
agent with the fake hypervisor (which records the NICs a guest has plugged)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from onestack.db.models import Instance
from tests.api.compute_helpers import (
    BootEnv,
    action,
    boot,
    boot_env,
    latest,
    nova,
    nova_error,
    ok,
    tenant,
    wait_for,
)

NET = "/network/v2.0"


def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def env(cloud) -> BootEnv:
    return boot_env(cloud)


def active_server(cloud, env: BootEnv, token: str | None = None, **attrs: Any) -> str:
    created = boot(cloud, env, token=token, **attrs)
    wait_for(cloud, created["id"], "ACTIVE")
    return str(created["id"])


def guest_nics(cloud, server_id: str) -> list[str]:
    """The ports whose NIC the (fake) guest has, in order."""
    return cloud.services.agent.hypervisor.attached_nics(server_id)


def attach(cloud, server_id: str, microversion: str = "2.96", token: str = "admin",
           **fields: Any):
    return nova(cloud, "POST", f"/servers/{server_id}/os-interface", token=token,
                microversion=microversion, json={"interfaceAttachment": fields})


def interfaces(cloud, server_id: str, token: str = "admin") -> list[dict[str, Any]]:
    return ok(nova(cloud, "GET", f"/servers/{server_id}/os-interface", token=token))[
        "interfaceAttachments"]


def get_port(cloud, port_id: str) -> dict[str, Any] | None:
    r = cloud.request("GET", f"{NET}/ports/{port_id}", token="admin")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()["port"]


def make_port(cloud, network_id: str, token: str = "admin", **attrs: Any) -> dict[str, Any]:
    r = cloud.request("POST", f"{NET}/ports", token=token,
                      json={"port": {"network_id": network_id, **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["port"]


def shown_state(cloud, server_id: str, port_id: str) -> str:
    return ok(nova(cloud, "GET", f"/servers/{server_id}/os-interface/{port_id}"))[
        "interfaceAttachment"]["port_state"]


def events(cloud, server_id: str, action_name: str) -> list[tuple[str, str | None]]:
    """(event, result) of the server's newest ``action_name`` action."""
    actions = ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions"))[
        "instanceActions"]
    newest = next(a for a in actions if a["action"] == action_name)
    shown = ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions/"
                                  f"{newest['request_id']}", microversion="2.51"))
    return [(e["event"], e["result"]) for e in shown["instanceAction"]["events"]]


def test_attach_by_network_port_fixed_ip_and_default_then_detach(cloud, env: BootEnv) -> None:
    sid = active_server(cloud, env)
    (boot_port,) = guest_nics(cloud, sid)
    # by network: compute makes the port, bound to the server's host
    by_net = ok(attach(cloud, sid, net_id=env.network))["interfaceAttachment"]
    assert by_net["net_id"] == env.network and by_net["tag"] is None
    assert set(by_net) == {"port_id", "net_id", "mac_addr", "port_state", "fixed_ips", "tag"}
    until(lambda: by_net["port_id"] in guest_nics(cloud, sid), "the NIC in the guest")
    until(lambda: shown_state(cloud, sid, by_net["port_id"]) == "ACTIVE", "port ACTIVE")
    port = get_port(cloud, by_net["port_id"])
    assert port is not None
    assert port["device_id"] == sid and port["device_owner"] == "compute:nova"
    assert port["binding:host_id"] == cloud.services.agent.host
    assert port["security_groups"]  # the server's (default) group
    # by port: the user's port, taken over
    mine = make_port(cloud, env.network, name="mine")
    by_port = ok(attach(cloud, sid, port_id=mine["id"]))["interfaceAttachment"]
    assert by_port["port_id"] == mine["id"] and by_port["mac_addr"] == mine["mac_address"]
    # by network with a fixed address
    fixed = ok(attach(cloud, sid, net_id=env.network,
                      fixed_ips=[{"ip_address": "10.0.0.77"}]))["interfaceAttachment"]
    assert fixed["fixed_ips"] == [{"subnet_id": env.subnet, "ip_address": "10.0.0.77"}]
    # with nothing: the project's only network
    default = ok(attach(cloud, sid))["interfaceAttachment"]
    assert default["net_id"] == env.network
    wanted = [boot_port, by_net["port_id"], mine["id"], fixed["port_id"], default["port_id"]]
    until(lambda: guest_nics(cloud, sid) == wanted, "every NIC in the guest, in order")
    assert [i["port_id"] for i in interfaces(cloud, sid)] == wanted
    until(lambda: all(i["port_state"] == "ACTIVE" for i in interfaces(cloud, sid)),
          "every port ACTIVE")
    assert events(cloud, sid, "attach_interface") == [("compute_attach_interface",
                                                       "Success")]
    # the addresses show in the server
    addresses = ok(nova(cloud, "GET", f"/servers/{sid}"))["server"]["addresses"]
    assert "10.0.0.77" in [a["addr"] for a in addresses["private"]]
    # detach the user's port: out of the guest, unbound, kept
    r = nova(cloud, "DELETE", f"/servers/{sid}/os-interface/{mine['id']}")
    assert r.status_code == 202, r.text
    until(lambda: mine["id"] not in [i["port_id"] for i in interfaces(cloud, sid)],
          "the port off the list")
    assert mine["id"] not in guest_nics(cloud, sid)
    kept = get_port(cloud, mine["id"])
    assert kept is not None and kept["device_id"] == "" and kept["device_owner"] == ""
    assert kept["binding:host_id"] == "" and kept["status"] == "DOWN"
    assert events(cloud, sid, "detach_interface") == [("compute_detach_interface",
                                                       "Success")]
    # detach the port compute made: deleted
    r = nova(cloud, "DELETE", f"/servers/{sid}/os-interface/{by_net['port_id']}")
    assert r.status_code == 202, r.text
    until(lambda: get_port(cloud, by_net["port_id"]) is None, "the port deleted")
    assert guest_nics(cloud, sid) == [boot_port, fixed["port_id"], default["port_id"]]
    nova_error(nova(cloud, "GET", f"/servers/{sid}/os-interface/{by_net['port_id']}"),
               404, "could not be found")
    console = cloud.services.agent.hypervisor.console_log(sid)
    assert f"virtio-net {mine['mac_address']} attached" in console
    assert f"virtio-net {mine['mac_address']} detached" in console
    # the user's port goes to another server
    other = active_server(cloud, env)
    ok(attach(cloud, other, port_id=mine["id"]))
    until(lambda: mine["id"] in guest_nics(cloud, other), "the port in the other guest")
    assert get_port(cloud, mine["id"])["device_id"] == other  # type: ignore[index]


def test_attach_and_detach_errors(cloud, env: BootEnv) -> None:
    sid = active_server(cloud, env)
    path = f"/servers/{sid}/os-interface"
    (boot_port,) = guest_nics(cloud, sid)
    # bad bodies: 400
    nova_error(nova(cloud, "POST", path, json={"x": 1}), 400, "unexpected")
    nova_error(nova(cloud, "POST", path, json={"interfaceAttachment": 5}), 400)
    nova_error(attach(cloud, sid, net_id="nope"), 400, "uuid")
    nova_error(attach(cloud, sid, port_id=boot_port, net_id=env.network), 400,
               "Must not input both network_id and port_id")
    nova_error(attach(cloud, sid, fixed_ips=[{"ip_address": "10.0.0.9"}]), 400,
               "Must input network_id when request IP address")
    nova_error(attach(cloud, sid, net_id=env.network, fixed_ips=[{"ip_address": "x"}]), 400)
    nova_error(attach(cloud, sid, net_id=env.network, fixed_ips=[
        {"ip_address": "10.0.0.9"}, {"ip_address": "10.0.0.10"}]), 400, "too long")
    nova_error(attach(cloud, sid, microversion="2.48", net_id=env.network, tag="t"), 400,
               "tag")
    nova_error(attach(cloud, sid, net_id=env.network, tag="a/b"), 400, "tag")
    # unknown port or network: 404
    unknown = "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"
    nova_error(attach(cloud, sid, port_id=unknown), 404, f"Port {unknown} could not be found")
    nova_error(attach(cloud, sid, net_id=unknown), 404,
               f"Network {unknown} could not be found")
    # a port in use, an address in use: 409
    nova_error(attach(cloud, sid, port_id=boot_port), 409, "in use")
    used = get_port(cloud, boot_port)["fixed_ips"][0]["ip_address"]  # type: ignore[index]
    nova_error(attach(cloud, sid, net_id=env.network, fixed_ips=[{"ip_address": used}]), 409,
               "already in use")
    # two networks the project may use: which one is ambiguous
    boot_env(cloud, cidr="10.1.0.0/24", image=env.image, name="second")
    nova_error(attach(cloud, sid), 400, "Multiple possible networks found")
    # detach: a port not attached is a 404, the server's state a 409
    nova_error(nova(cloud, "DELETE", f"{path}/{unknown}"), 404, "is not attached")
    assert action(cloud, sid, {"suspend": None}).status_code == 202
    wait_for(cloud, sid, "SUSPENDED")
    nova_error(attach(cloud, sid, net_id=env.network), 409,
               f"Cannot 'attach_interface' instance {sid} while it is in vm_state suspended")
    nova_error(nova(cloud, "DELETE", f"{path}/{boot_port}"), 409, "detach_interface")
    assert guest_nics(cloud, sid) == []  # nothing was attached by the refusals
    with cloud.services.db.session() as session:
        inst = session.get(Instance, sid)
        assert inst is not None and [p["port_id"] for p in inst.ports] == [boot_port]


def test_locked_server_and_other_projects(cloud) -> None:
    alpha = tenant(cloud, "alpha")
    env = boot_env(cloud, token=alpha.token)
    sid = active_server(cloud, env, token=alpha.token)
    assert action(cloud, sid, {"lock": None}).status_code == 202  # by the admin
    nova_error(attach(cloud, sid, token=alpha.token, net_id=env.network), 409, "locked")
    (boot_port,) = guest_nics(cloud, sid)
    nova_error(nova(cloud, "DELETE", f"/servers/{sid}/os-interface/{boot_port}",
                    token=alpha.token), 409, "locked")
    assert action(cloud, sid, {"unlock": None}).status_code == 202
    made = ok(attach(cloud, sid, token=alpha.token))["interfaceAttachment"]
    assert made["net_id"] == env.network
    # another project sees no server; its port is not found for alpha
    beta = tenant(cloud, "beta")
    nova_error(attach(cloud, sid, token=beta.token, net_id=env.network), 404, sid)
    nova_error(nova(cloud, "GET", f"/servers/{sid}/os-interface", token=beta.token), 404)
    beta_env = boot_env(cloud, token=beta.token, cidr="10.9.0.0/24", image=env.image)
    theirs = make_port(cloud, beta_env.network, token=beta.token)
    nova_error(attach(cloud, sid, token=alpha.token, port_id=theirs["id"]), 404)
    nova_error(attach(cloud, sid, token=alpha.token, net_id=beta_env.network), 404)


def test_stopped_server_gets_the_nic_at_its_next_start(cloud, env: BootEnv) -> None:
    sid = active_server(cloud, env)
    (boot_port,) = guest_nics(cloud, sid)
    assert action(cloud, sid, {"os-stop": None}).status_code == 202
    wait_for(cloud, sid, "SHUTOFF")
    made = ok(attach(cloud, sid, net_id=env.network))["interfaceAttachment"]
    # nothing to plug: attached at once, the port DOWN until the guest runs
    assert made["port_state"] == "DOWN"
    assert events(cloud, sid, "attach_interface") == [("compute_attach_interface",
                                                       "Success")]
    assert action(cloud, sid, {"os-start": None}).status_code == 202
    wait_for(cloud, sid, "ACTIVE")
    assert guest_nics(cloud, sid) == [boot_port, made["port_id"]]
    until(lambda: shown_state(cloud, sid, made["port_id"]) == "ACTIVE", "port ACTIVE")
    # a stopped server's port is detached (and deleted) at once
    assert action(cloud, sid, {"os-stop": None}).status_code == 202
    wait_for(cloud, sid, "SHUTOFF")
    r = nova(cloud, "DELETE", f"/servers/{sid}/os-interface/{made['port_id']}")
    assert r.status_code == 202, r.text
    assert get_port(cloud, made["port_id"]) is None
    assert [i["port_id"] for i in interfaces(cloud, sid)] == [boot_port]
    assert action(cloud, sid, {"os-start": None}).status_code == 202
    wait_for(cloud, sid, "ACTIVE")
    assert guest_nics(cloud, sid) == [boot_port]


def test_tags_by_microversion(cloud, env: BootEnv) -> None:
    sid = active_server(cloud, env)
    made = ok(attach(cloud, sid, microversion="2.49", net_id=env.network, tag="nic-b"))[
        "interfaceAttachment"]
    assert "tag" not in made
    path = f"/servers/{sid}/os-interface/{made['port_id']}"
    assert ok(nova(cloud, "GET", path, microversion="2.70"))["interfaceAttachment"][
        "tag"] == "nic-b"
    assert "tag" not in ok(nova(cloud, "GET", path, microversion="2.69"))[
        "interfaceAttachment"]
    listed = ok(nova(cloud, "GET", f"/servers/{sid}/os-interface", microversion="2.70"))
    assert [i["tag"] for i in listed["interfaceAttachments"]] == [None, "nic-b"]


def test_server_delete_releases_attached_ports(cloud, env: BootEnv) -> None:
    sid = active_server(cloud, env)
    made = ok(attach(cloud, sid, net_id=env.network))["interfaceAttachment"]
    mine = make_port(cloud, env.network)
    ok(attach(cloud, sid, port_id=mine["id"]))
    until(lambda: len(guest_nics(cloud, sid)) == 3, "three NICs")
    r = nova(cloud, "DELETE", f"/servers/{sid}", headers=latest())
    assert r.status_code == 204, r.text
    until(lambda: get_port(cloud, made["port_id"]) is None, "compute's port deleted")
    until(lambda: get_port(cloud, mine["id"])["device_id"] == "",  # type: ignore[index]
          "the user's port unbound")


def test_add_and_remove_fixed_ip(cloud, env: BootEnv) -> None:
    """Nova's multinic actions (2.1-2.43): another address on the server's port on the
    network, and it goes again; the server's addresses and its host's DHCP follow."""
    sid = active_server(cloud, env)
    (boot_port,) = guest_nics(cloud, sid)

    def fixed() -> list[str]:
        return [a["ip_address"] for a in get_port(cloud, boot_port)["fixed_ips"]]  # type: ignore[index]

    (first,) = fixed()
    r = action(cloud, sid, {"addFixedIp": {"networkId": env.network}}, microversion="2.43")
    assert r.status_code == 202, r.text
    added = [ip for ip in fixed() if ip != first]
    assert len(added) == 1
    shown = ok(nova(cloud, "GET", f"/servers/{sid}"))["server"]["addresses"]["private"]
    assert sorted(a["addr"] for a in shown) == sorted([first, *added])
    events = [e for e in ok(nova(cloud, "GET", f"/servers/{sid}/os-instance-actions"))[
        "instanceActions"] if e["action"] == "addFixedIp"]
    assert len(events) == 1
    # the host's DHCP hands out both addresses for the port's MAC, its filters allow them
    agent = cloud.services.agent
    state = agent.control.desired_state(agent.host)
    (entry,) = [h for n in state.networks for h in n.hosts if h.port_id == boot_port]
    assert sorted(entry.ips) == sorted([first, *added])
    (nic,) = [p for i in state.instances if i.uuid == sid for p in i.ports]
    assert sorted(nic.ips) == sorted([first, *added])
    r = action(cloud, sid, {"removeFixedIp": {"address": added[0]}}, microversion="2.43")
    assert r.status_code == 202, r.text
    assert fixed() == [first]
    # errors: the address is not the server's, a network it is not on, bad bodies,
    # gone after 2.43
    nova_error(action(cloud, sid, {"removeFixedIp": {"address": "10.0.0.250"}},
                      microversion="2.43"), 400, "does not have fixed IP")
    other = boot_env(cloud, cidr="10.2.0.0/24", image=env.image, name="elsewhere")
    nova_error(action(cloud, sid, {"addFixedIp": {"networkId": other.network}},
                      microversion="2.43"), 400, "could not be found for instance")
    nova_error(action(cloud, sid, {"addFixedIp": {}}, microversion="2.43"), 400,
               "networkId")
    nova_error(action(cloud, sid, {"removeFixedIp": {"address": "x"}},
                      microversion="2.43"), 400)
    nova_error(action(cloud, sid, {"addFixedIp": {"networkId": env.network}},
                      microversion="2.44"), 404)
    nova_error(action(cloud, "00000000-0000-0000-0000-000000000000",
                      {"addFixedIp": {"networkId": env.network}}, microversion="2.43"), 404)
    assert fixed() == [first]
