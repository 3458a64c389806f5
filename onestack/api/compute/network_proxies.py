"""Nova's network proxy APIs (deprecated; 404 from microversion 2.36, the server actions
from 2.44), answered from the Networking service in process:

- ``/v2.1/os-floating-ips[/{id}]`` and ``/v2.1/os-floating-ip-pools``: Neutron's
  floating IPs of the caller's project, in Nova's shape ``{id, ip, pool, fixed_ip,
  instance_id}`` (``pool`` the external network's name, ``instance_id`` the device of
  the associated port); a pool is an external network, named by name or id;
- the server actions ``addFloatingIp`` / ``removeFloatingIp``: the same association a
  ``PUT /v2.0/floatingips/{id}`` makes (the router's host applies the NAT);
- ``/v2.1/os-networks[/{id}]`` and ``/v2.1/os-tenant-networks[/{id}]``: the networks the
  caller sees, by ``label``; their writes answer 410 as Nova's (nova-network is gone).

Every call goes through ``Networking``'s own methods with the caller's token, so its
policy, quotas and host notifications apply unchanged; its errors are answered in
Nova's words and fault bodies, with Nova's codes (``floating_ips.py`` of Nova's API).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_body
from onestack.api.common import loads_json as parse_json
from onestack.api.compute.common import check_object, compute, only_keys
from onestack.api.compute.microversion import version
from onestack.api.network.common import networking
from onestack.api.policy import Endpoint, guard
from onestack.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InvalidField,
    NotFound,
    OneStackError,
)
from onestack.db.models import Network
from onestack.services.compute.policy import forbidden
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import ListQuery, Page
from onestack.services.network.quotas import OverQuota

#: The last microversion of the proxy APIs (Nova's ``MAX_PROXY_API_SUPPORT_VERSION``).
MAX_PROXY = (2, 35)
#: The last microversion of the ``addFloatingIp`` / ``removeFloatingIp`` actions.
MAX_FLOATING_ACTIONS = (2, 43)

_GONE = ("This API only works with nova-network, which this cloud (like Nova since its "
         "21.0.0 release) does not have: use the Networking API (/network/v2.0).")


def _level(level: str, rule: str) -> Callable[[Endpoint], Endpoint]:
    """The route's access level; a refusal names Nova's rule."""
    return guard(level, lambda _name: forbidden(f"os_compute_api:{rule}"), rule)


def _proxy_version(request: Request, last: tuple[int, int] = MAX_PROXY) -> None:
    if version(request) > last:
        raise NotFound("The resource could not be found.")


@contextmanager
def _in_nova_terms(not_found: str | None = None) -> Iterator[None]:
    """Answer the Networking service's errors with Nova's fault bodies (same code and
    message; ``not_found`` replaces a 404's message)."""
    try:
        yield
    except OneStackError as exc:
        kinds: dict[int, type[OneStackError]] = {400: BadRequest, 403: Forbidden,
                                                 404: NotFound, 409: Conflict}
        kind = kinds.get(exc.status)
        if kind is None:
            raise
        message = not_found if (exc.status == 404 and not_found) else exc.message
        raise kind(message) from None


def _check_ip(field: str, value: Any) -> str:
    """Nova's ``ip_address`` type: an IPv4 or IPv6 address (normalised)."""
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidField(field, f"{value!r} is not valid under any of the given "
                           "schemas") from None


# -- floating IPs ------------------------------------------------------------------------


def _render(fips: Page, names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for fip in fips.items:
        details = fips.extra.get(fip.id, {}).get("port_details")
        associated = fip.fixed_port_id is not None
        out.append({
            "id": fip.id,
            "ip": fip.floating_ip_address,
            "pool": names.get(fip.floating_network_id, fip.floating_network_id),
            "fixed_ip": fip.fixed_ip_address if associated else None,
            "instance_id": (details["device_id"] or None) if associated and details
            else None,
        })
    return out


def _rendered(request: Request, ctx: ValidatedToken, fips: Page) -> list[dict[str, Any]]:
    net = networking(request)
    ids = {f.floating_network_id for f in fips.items}
    if not ids:
        return []
    page = net.networks.list(ctx, ListQuery(filters={"id": sorted(ids)}))
    return _render(fips, {n.id: n.name or n.id for n in page.items})


async def list_floating_ips(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    # Nova lists the floating IPs of the token's project, administrators' too
    fips = networking(request).floating_ips.list(
        ctx, ListQuery(filters={"project_id": [ctx.project_id or ""]}))
    return json_response({"floating_ips": _rendered(request, ctx, fips)})


def _one(request: Request, ctx: ValidatedToken, fip_id: str) -> Page:
    with _in_nova_terms(f"Floating IP not found for ID {fip_id}"):
        return networking(request).floating_ips.get(ctx, fip_id)


async def show_floating_ip(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    page = _one(request, ctx, request.path_params["floatingip_id"])
    return json_response({"floating_ip": _rendered(request, ctx, page)[0]})


def _pool_network(request: Request, ctx: ValidatedToken, pool: str) -> Network:
    """The external network a pool name (or id) names, as Nova looks it up: by id when
    the name looks like one, else by name."""
    try:
        key = "id" if str(uuid.UUID(pool)) == pool.lower() else "name"
    except ValueError:
        key = "name"
    page = networking(request).networks.list(
        ctx, ListQuery(filters={"router:external": ["true"], key: [pool]}))
    if not page.items:
        raise NotFound("Floating IP pool not found.")
    if len(page.items) > 1:
        raise BadRequest(f"Multiple floating IP pools matches found for name '{pool}'")
    network: Network = page.items[0]
    return network


async def create_floating_ip(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    raw = await read_body(request)
    body = parse_json(raw) if raw.strip() else None
    if body is not None and not isinstance(body, dict):
        raise InvalidField("body", f"{body!r} is not of type 'object', 'null'")
    pool = (body or {}).get("pool")
    if pool is not None and not isinstance(pool, str):
        raise InvalidField("pool", f"{pool!r} is not of type 'string', 'null'")
    pool = pool or request.app.state.config.network.public_network_name
    network = _pool_network(request, ctx, pool)
    try:
        page = networking(request).floating_ips.create(
            ctx, project_id=None, floating_network_id=network.id)
    except OverQuota:
        raise Forbidden(f"IP allocation over quota in pool {pool}.") from None
    except Conflict as exc:
        if exc.fault == "IpAddressGenerationFailure":
            raise NotFound(f"No more floating IPs in pool {pool}.") from None
        raise Conflict(exc.message) from None
    except (BadRequest, Forbidden) as exc:
        raise type(exc)(exc.message) from None
    names = {network.id: network.name or network.id}
    return json_response({"floating_ip": _render(page, names)[0]})


async def delete_floating_ip(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    fip_id = request.path_params["floatingip_id"]
    _one(request, ctx, fip_id)
    with _in_nova_terms(f"Floating IP not found for ID {fip_id}"):
        networking(request).floating_ips.delete(ctx, fip_id)
    return Response(status_code=202)


async def list_pools(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    page = networking(request).networks.list(
        ctx, ListQuery(filters={"router:external": ["true"]}))
    return json_response({"floating_ip_pools": [{"name": n.name or n.id}
                                                 for n in page.items]})


# -- the server actions ------------------------------------------------------------------


def _by_address(request: Request, ctx: ValidatedToken, address: str) -> Page:
    """The floating IP the caller sees with this address: 404 if none, 409 if several
    (an administrator's view across projects)."""
    page = networking(request).floating_ips.list(
        ctx, ListQuery(filters={"floating_ip_address": [address]}))
    if not page.items:
        raise NotFound("floating IP not found")
    if len(page.items) > 1:
        raise Conflict(f"Multiple floating IPs are found for address {address}.")
    return page


def _action_body(name: str, value: Any, keys: tuple[str, ...]) -> dict[str, str]:
    value = check_object(name, value)
    only_keys(name, value, keys, required=("address",))
    return {key: _check_ip(f"{name}/{key}", value[key]) for key in keys if key in value}


async def add_floating_ip(request: Request, ctx: ValidatedToken, sid: str, value: Any
                          ) -> Response:
    """``addFloatingIp``: associate the floating IP ``address`` with the server's port
    holding ``fixed_address`` (by default its first fixed IPv4 address)."""
    _proxy_version(request, MAX_FLOATING_ACTIONS)
    body = _action_body("addFloatingIp", value, ("address", "fixed_address"))
    address = body["address"]
    view = compute(request).servers.get(ctx, sid)
    fixed = [a.addr for nic in view.addresses.values() for a in nic if a.type == "fixed"]
    if not view.addresses:
        raise BadRequest("Instance network is not ready yet")
    if not fixed:
        raise BadRequest("No fixed IPs associated to instance")
    if "fixed_address" in body:
        fixed_address = body["fixed_address"]
        if fixed_address not in fixed:
            raise BadRequest("Specified fixed address not assigned to instance")
    else:
        v4 = [a for a in fixed if ipaddress.ip_address(a).version == 4]
        if not v4:
            raise BadRequest(f"Unable to associate floating IP {address} to any fixed IPs "
                             f"for instance {sid}. Instance has no fixed IPv4 addresses "
                             "to associate.")
        fixed_address = v4[0]
    net = networking(request)
    ports = net.ports.list(ctx, ListQuery(filters={"device_id": [sid]}))
    port_id = next((p.id for p in ports.items
                    if any(ip == fixed_address
                           for _, ip in ports.extra["fixed_ips"].get(p.id, []))), None)
    fip = _by_address(request, ctx, address).one()
    failed = (f"Unable to associate floating IP {address} to fixed IP {fixed_address} for "
              f"instance {sid}. Error: ")
    if port_id is None:
        raise BadRequest(failed + f"no port of the instance has the address {fixed_address}")
    try:
        net.floating_ips.update(ctx, fip.id, {"port_id": port_id,
                                              "fixed_ip_address": fixed_address})
    except Forbidden as exc:
        raise Forbidden(exc.message) from None
    except OneStackError as exc:
        if exc.status >= 500:
            raise
        # Nova: Neutron's 409 is FloatingIpAssociateFailed, anything else its catch-all;
        # both are a 400 with Neutron's reason.
        raise BadRequest(exc.message if isinstance(exc, Conflict) else failed + exc.message
                         ) from None
    return Response(status_code=202)


async def remove_floating_ip(request: Request, ctx: ValidatedToken, sid: str, value: Any
                             ) -> Response:
    """``removeFloatingIp``: disassociate the floating IP ``address`` if this server's
    port holds it (409 otherwise)."""
    _proxy_version(request, MAX_FLOATING_ACTIONS)
    address = _action_body("removeFloatingIp", value, ("address",))["address"]
    compute(request).servers.get(ctx, sid)
    page = _by_address(request, ctx, address)
    fip = page.one()
    details = page.extra.get(fip.id, {}).get("port_details")
    if fip.fixed_port_id is None or not details or details["device_id"] != sid:
        raise Conflict(f"Floating IP {address} is not associated with instance {sid}.")
    with _in_nova_terms():
        networking(request).floating_ips.update(ctx, fip.id, {"port_id": None})
    return Response(status_code=202)


# -- networks ----------------------------------------------------------------------------


def _first(network: Network, ip_version: int) -> Any:
    return next((s for s in network.subnets if s.ip_version == ip_version), None)


def _network_dict(network: Network, ctx: ValidatedToken) -> dict[str, Any]:
    """Nova's ``os-networks`` entry: ``id`` and ``label`` (the name), the addressing of
    its first IPv4 and IPv6 subnets, and for administrators the attributes nova-network
    had (null where Neutron has no counterpart)."""
    v4, v6 = _first(network, 4), _first(network, 6)
    net4 = ipaddress.ip_network(v4.cidr) if v4 is not None else None
    net6 = ipaddress.ip_network(v6.cidr) if v6 is not None else None
    dns = [d.address for d in v4.dns_nameservers] if v4 is not None else []
    body: dict[str, Any] = {
        "id": network.id, "label": network.name,
        "cidr": v4.cidr if v4 is not None else None,
        "netmask": str(net4.netmask) if net4 is not None else None,
        "gateway": v4.gateway_ip if v4 is not None else None,
        "broadcast": str(net4.broadcast_address) if net4 is not None else None,
        "dns1": dns[0] if dns else None, "dns2": dns[1] if len(dns) > 1 else None,
        "cidr_v6": v6.cidr if v6 is not None else None,
        "gateway_v6": v6.gateway_ip if v6 is not None else None,
        "netmask_v6": str(net6.prefixlen) if net6 is not None else None,
    }
    if ctx.is_admin:
        body.update({name: None for name in (
            "deleted_at", "injected", "bridge", "vlan", "vpn_public_address",
            "vpn_public_port", "vpn_private_address", "dhcp_start", "host",
            "bridge_interface", "multi_host", "priority", "rxtx_base", "dhcp_server",
            "share_address")})
        body.update({
            "created_at": network.created_at.isoformat() if network.created_at else None,
            "updated_at": network.updated_at.isoformat() if network.updated_at else None,
            "deleted": False, "project_id": network.project_id, "mtu": network.mtu,
            "enable_dhcp": v4.enable_dhcp if v4 is not None else None,
        })
    return body


def _tenant_network_dict(network: Network) -> dict[str, Any]:
    """Nova's ``os-tenant-networks`` entry: ``id``, ``label`` and one ``cidr``."""
    subnet = _first(network, 4) or _first(network, 6)
    return {"id": network.id, "cidr": subnet.cidr if subnet is not None else None,
            "label": network.name}


def _network(request: Request, ctx: ValidatedToken) -> Network:
    with _in_nova_terms("Network not found"):
        network: Network = networking(request).networks.get(
            ctx, request.path_params["network_id"]).one()
    return network


async def list_networks(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    page = networking(request).networks.list(ctx, ListQuery())
    return json_response({"networks": [_network_dict(n, ctx) for n in page.items]})


async def show_network(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    return json_response({"network": _network_dict(_network(request, ctx), ctx)})


async def list_tenant_networks(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    page = networking(request).networks.list(ctx, ListQuery())
    return json_response({"networks": [_tenant_network_dict(n) for n in page.items]})


async def show_tenant_network(request: Request) -> Response:
    _proxy_version(request)
    ctx = caller(request)
    return json_response({"network": _tenant_network_dict(_network(request, ctx))})


async def gone(request: Request) -> Response:
    """nova-network's writes: 410 at every microversion, as Nova answers them."""
    raise Gone(_GONE, fault="computeFault")


routes = [
    Route("/v2.1/os-floating-ips", _level("reader", "os-floating-ips:list")(list_floating_ips),
          methods=["GET"]),
    Route("/v2.1/os-floating-ips", _level("member", "os-floating-ips:create")(
        create_floating_ip), methods=["POST"]),
    Route("/v2.1/os-floating-ips/{floatingip_id}",
          _level("reader", "os-floating-ips:show")(show_floating_ip), methods=["GET"]),
    Route("/v2.1/os-floating-ips/{floatingip_id}",
          _level("member", "os-floating-ips:delete")(delete_floating_ip), methods=["DELETE"]),
    Route("/v2.1/os-floating-ip-pools",
          _level("reader", "os-floating-ip-pools:list")(list_pools), methods=["GET"]),
    Route("/v2.1/os-networks", _level("reader", "os-networks:list")(list_networks),
          methods=["GET"]),
    Route("/v2.1/os-networks", _level("reader", "os-networks:create")(gone),
          methods=["POST"]),
    Route("/v2.1/os-networks/add", _level("reader", "os-networks:add")(gone),
          methods=["POST"]),
    Route("/v2.1/os-networks/{network_id}",
          _level("reader", "os-networks:show")(show_network), methods=["GET"]),
    Route("/v2.1/os-networks/{network_id}", _level("reader", "os-networks:delete")(gone),
          methods=["DELETE"]),
    Route("/v2.1/os-networks/{network_id}/action",
          _level("reader", "os-networks:disassociate")(gone), methods=["POST"]),
    Route("/v2.1/os-tenant-networks",
          _level("reader", "os-tenant-networks:list")(list_tenant_networks), methods=["GET"]),
    Route("/v2.1/os-tenant-networks", _level("reader", "os-tenant-networks:create")(gone),
          methods=["POST"]),
    Route("/v2.1/os-tenant-networks/{network_id}",
          _level("reader", "os-tenant-networks:show")(show_tenant_network), methods=["GET"]),
    Route("/v2.1/os-tenant-networks/{network_id}",
          _level("reader", "os-tenant-networks:delete")(gone), methods=["DELETE"]),
]
