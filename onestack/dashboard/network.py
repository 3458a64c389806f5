"""Networks and subnets, routers, floating IPs, security groups and rules, key pairs,
and the topology picture.

Each page's create forms post back to the page itself (a hidden ``form`` field says
which); a refusal re-renders the page with the API's message beside that form and the
values as typed. Deletes and other changes post to their own routes and come back with
a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from onestack.dashboard import topology
from onestack.dashboard.client import ApiError
from onestack.dashboard.web import Ctx, page, redirect, render

N = "/network/v2.0"
C = "/compute/v2.1"

Create = Callable[[Ctx, str], Awaitable[str]]


async def _form_page(ctx: Ctx, template: str, creates: dict[str, Create],
                     load: Callable[[Ctx], Awaitable[dict[str, Any]]],
                     back: str) -> Response:
    errors: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if ctx.request.method == "POST":
        kind = ctx.field("form")
        create = creates.get(kind)
        if create is None:
            errors[kind] = f"Unknown form {kind!r}."
        else:
            try:
                message = await create(ctx, kind)
            except ApiError as exc:
                if exc.status == 401:
                    raise
                errors[kind] = exc.message
            else:
                if message.startswith("-----BEGIN"):   # a new key pair: shown once
                    extra["private_key"] = message
                    extra["private_key_name"] = ctx.field("name")
                else:
                    ctx.flash(message)
                    return redirect(back, ctx.request)
    data = await load(ctx)
    values = {k: v for k, v in (ctx.form or {}).items() if k != "csrf" and isinstance(v, str)}
    return render(ctx.request, template, status=400 if errors else 200, ctx=ctx,
                  errors=errors, values=values, **data, **extra)


async def _change(ctx: Ctx, back: str, call: Callable[[], Awaitable[Any]], done: str
                  ) -> Response:
    try:
        await call()
        ctx.flash(done)
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    return redirect(back, ctx.request)


def _mine(ctx: Ctx) -> dict[str, str]:
    return {"project_id": ctx.session.project_id}


# -- networks and subnets ---------------------------------------------------------------


async def _load_networks(ctx: Ctx) -> dict[str, Any]:
    nets, subnets = await asyncio.gather(ctx.api.get(f"{N}/networks"),
                                         ctx.api.get(f"{N}/subnets"))
    by_net: dict[str, list[dict[str, Any]]] = {}
    for s in subnets["subnets"]:
        by_net.setdefault(s["network_id"], []).append(s)
    networks = sorted(nets["networks"], key=lambda n: n.get("name") or "")
    return {"networks": networks, "subnets": by_net,
            "own": [n for n in networks if n.get("project_id") == ctx.session.project_id]}


async def _create_network(ctx: Ctx, kind: str) -> str:
    body = await ctx.api.post(f"{N}/networks", {"network": {"name": ctx.field("name")}})
    return f"Network {body['network']['name']} created."


async def _create_subnet(ctx: Ctx, kind: str) -> str:
    subnet: dict[str, Any] = {"network_id": ctx.field("network_id"), "name": ctx.field("name"),
                              "cidr": ctx.field("cidr"), "ip_version": 4,
                              "enable_dhcp": ctx.field("enable_dhcp") == "on"}
    if ctx.field("cidr").count(":"):
        subnet["ip_version"] = 6
    if ctx.field("gateway_ip"):
        subnet["gateway_ip"] = ctx.field("gateway_ip")
    body = await ctx.api.post(f"{N}/subnets", {"subnet": subnet})
    return f"Subnet {body['subnet']['name'] or body['subnet']['cidr']} created."


async def _networks(ctx: Ctx) -> Response:
    return await _form_page(ctx, "networks.html", {"network": _create_network,
                                                   "subnet": _create_subnet},
                            _load_networks, "/networks")


async def _delete_network(ctx: Ctx) -> Response:
    nid = ctx.request.path_params["network_id"]
    return await _change(ctx, "/networks", lambda: ctx.api.delete(f"{N}/networks/{nid}"),
                         "Network deleted.")


async def _delete_subnet(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["subnet_id"]
    return await _change(ctx, "/networks", lambda: ctx.api.delete(f"{N}/subnets/{sid}"),
                         "Subnet deleted.")


networks = page(_networks)
network_delete = page(_delete_network)
subnet_delete = page(_delete_subnet)


# -- routers ----------------------------------------------------------------------------


async def _load_routers(ctx: Ctx) -> dict[str, Any]:
    routers, nets, subnets, ports = await asyncio.gather(
        ctx.api.get(f"{N}/routers"), ctx.api.get(f"{N}/networks"),
        ctx.api.get(f"{N}/subnets"),
        ctx.api.get(f"{N}/ports", device_owner="network:router_interface"))
    subnet_by_id = {s["id"]: s for s in subnets["subnets"]}
    interfaces: dict[str, list[dict[str, Any]]] = {}
    for p in ports["ports"]:
        for ip in p.get("fixed_ips", []):
            if ip["subnet_id"] in subnet_by_id:
                interfaces.setdefault(p["device_id"], []).append(subnet_by_id[ip["subnet_id"]])
    names = {n["id"]: n.get("name") for n in nets["networks"]}
    return {"routers": sorted(routers["routers"], key=lambda r: r.get("name") or ""),
            "external": [n for n in nets["networks"] if n.get("router:external")],
            "subnets": subnets["subnets"], "interfaces": interfaces, "net_names": names}


async def _create_router(ctx: Ctx, kind: str) -> str:
    router: dict[str, Any] = {"name": ctx.field("name")}
    if ctx.field("external"):
        router["external_gateway_info"] = {"network_id": ctx.field("external")}
    body = await ctx.api.post(f"{N}/routers", {"router": router})
    return f"Router {body['router']['name']} created."


async def _routers(ctx: Ctx) -> Response:
    return await _form_page(ctx, "routers.html", {"router": _create_router}, _load_routers,
                            "/routers")


async def _router_interface(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["router_id"]
    verb = "remove" if ctx.field("op") == "remove" else "add"
    body = {"subnet_id": ctx.field("subnet_id")}
    return await _change(ctx, "/routers",
                         lambda: ctx.api.put(f"{N}/routers/{rid}/{verb}_router_interface", body),
                         "Interface added." if verb == "add" else "Interface removed.")


async def _delete_router(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["router_id"]
    return await _change(ctx, "/routers", lambda: ctx.api.delete(f"{N}/routers/{rid}"),
                         "Router deleted.")


routers = page(_routers)
router_interface = page(_router_interface)
router_delete = page(_delete_router)


# -- floating IPs -----------------------------------------------------------------------


async def _load_fips(ctx: Ctx) -> dict[str, Any]:
    fips, nets, servers = await asyncio.gather(
        ctx.api.get(f"{N}/floatingips", **_mine(ctx)),
        ctx.api.get(f"{N}/networks", **{"router:external": "true"}),
        ctx.api.get(f"{C}/servers"))
    ports = await ctx.api.get(f"{N}/ports", **_mine(ctx))
    server_names = {s["id"]: s["name"] for s in servers["servers"]}
    port_server = {p["id"]: server_names.get(p["device_id"], p["device_id"])
                   for p in ports["ports"]}
    return {"fips": fips["floatingips"], "external": nets["networks"],
            "port_server": port_server}


async def _allocate(ctx: Ctx, kind: str) -> str:
    body = await ctx.api.post(f"{N}/floatingips", {"floatingip": {
        "floating_network_id": ctx.field("network_id")}})
    return f"Allocated {body['floatingip']['floating_ip_address']}."


async def _fips(ctx: Ctx) -> Response:
    return await _form_page(ctx, "floating_ips.html", {"allocate": _allocate}, _load_fips,
                            "/floating-ips")


async def _release(ctx: Ctx) -> Response:
    fid = ctx.request.path_params["floatingip_id"]
    return await _change(ctx, "/floating-ips",
                         lambda: ctx.api.delete(f"{N}/floatingips/{fid}"), "Released.")


floating_ips = page(_fips)
floating_ip_delete = page(_release)


# -- security groups --------------------------------------------------------------------


async def _load_groups(ctx: Ctx) -> dict[str, Any]:
    groups = await ctx.api.get(f"{N}/security-groups", **_mine(ctx))
    found = sorted(groups["security_groups"], key=lambda g: g.get("name") or "")
    return {"groups": found, "names": {g["id"]: g["name"] for g in found}}


async def _create_group(ctx: Ctx, kind: str) -> str:
    body = await ctx.api.post(f"{N}/security-groups", {"security_group": {
        "name": ctx.field("name"), "description": ctx.field("description")}})
    return f"Security group {body['security_group']['name']} created."


async def _create_rule(ctx: Ctx, kind: str) -> str:
    rule: dict[str, Any] = {"security_group_id": ctx.field("group_id"),
                            "direction": ctx.field("direction") or "ingress",
                            "ethertype": ctx.field("ethertype") or "IPv4"}
    if ctx.field("protocol"):
        rule["protocol"] = ctx.field("protocol")
    for name in ("port_range_min", "port_range_max"):
        value = ctx.field(name)
        if value:
            rule[name] = int(value) if value.isdigit() else value
    if ctx.field("remote_ip_prefix"):
        rule["remote_ip_prefix"] = ctx.field("remote_ip_prefix")
    await ctx.api.post(f"{N}/security-group-rules", {"security_group_rule": rule})
    return "Rule added."


async def _groups(ctx: Ctx) -> Response:
    return await _form_page(ctx, "security_groups.html", {"group": _create_group,
                                                          "rule": _create_rule},
                            _load_groups, "/security-groups")


async def _delete_group(ctx: Ctx) -> Response:
    gid = ctx.request.path_params["group_id"]
    return await _change(ctx, "/security-groups",
                         lambda: ctx.api.delete(f"{N}/security-groups/{gid}"),
                         "Security group deleted.")


async def _delete_rule(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["rule_id"]
    return await _change(ctx, "/security-groups",
                         lambda: ctx.api.delete(f"{N}/security-group-rules/{rid}"),
                         "Rule deleted.")


security_groups = page(_groups)
security_group_delete = page(_delete_group)
security_group_rule_delete = page(_delete_rule)


# -- key pairs --------------------------------------------------------------------------


async def _load_keys(ctx: Ctx) -> dict[str, Any]:
    keys = await ctx.api.get(f"{C}/os-keypairs")
    return {"keypairs": [k["keypair"] for k in keys["keypairs"]]}


async def _create_key(ctx: Ctx, kind: str) -> str:
    keypair: dict[str, Any] = {"name": ctx.field("name")}
    if kind == "import":
        keypair["public_key"] = ctx.field("public_key")
    body = await ctx.api.post(f"{C}/os-keypairs", {"keypair": keypair})
    private = body["keypair"].get("private_key")
    return private or f"Key pair {body['keypair']['name']} imported."


async def _keys(ctx: Ctx) -> Response:
    return await _form_page(ctx, "key_pairs.html", {"create": _create_key,
                                                    "import": _create_key},
                            _load_keys, "/key-pairs")


async def _delete_key(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    return await _change(ctx, "/key-pairs",
                         lambda: ctx.api.delete(f"{C}/os-keypairs/{name}"), "Key pair deleted.")


key_pairs = page(_keys)
key_pair_delete = page(_delete_key)


# -- topology ---------------------------------------------------------------------------


async def _topology(ctx: Ctx) -> Response:
    nets, subnets, routers, ports, servers = await asyncio.gather(
        ctx.api.get(f"{N}/networks"), ctx.api.get(f"{N}/subnets"),
        ctx.api.get(f"{N}/routers"), ctx.api.get(f"{N}/ports"),
        ctx.api.get(f"{C}/servers/detail"))
    svg = topology.build(nets["networks"], subnets["subnets"], routers["routers"],
                         ports["ports"], servers["servers"])
    return render(ctx.request, "topology.html", ctx=ctx, svg=svg)


topology_page = page(_topology)
