"""Overview, instances (list, launch, actions, detail, console log, serial console)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from onestack.dashboard.client import ApiError
from onestack.dashboard.web import Ctx, page, redirect, render

C = "/compute/v2.1"
N = "/network/v2.0"
#: Statuses during which the list keeps asking for itself.
MOVING = {"BUILD", "REBOOT", "HARD_REBOOT", "REBUILD", "RESIZE", "MIGRATING", "VERIFY_RESIZE"}


def moving(server: dict[str, Any]) -> bool:
    return server.get("status") in MOVING or bool(server.get("OS-EXT-STS:task_state"))


def addresses(server: dict[str, Any]) -> list[str]:
    out = []
    for net, addrs in (server.get("addresses") or {}).items():
        for a in addrs:
            kind = " (floating)" if a.get("OS-EXT-IPS:type") == "floating" else ""
            out.append(f"{net}: {a.get('addr')}{kind}")
    return out


async def _image_names(ctx: Ctx) -> dict[str, str]:
    try:
        images = (await ctx.api.get("/image/v2/images", limit=1000))["images"]
    except ApiError:
        return {}
    return {i["id"]: i.get("name") or i["id"] for i in images}


# -- overview ---------------------------------------------------------------------------


async def _overview(ctx: Ctx) -> Response:
    pid = ctx.session.project_id
    compute_q, network_q, servers = await asyncio.gather(
        ctx.api.get(f"{C}/os-quota-sets/{pid}/detail"),
        ctx.api.get(f"{N}/quotas/{pid}/details"),
        ctx.api.get(f"{C}/servers/detail", limit=5, sort_key="updated_at"))
    cq, nq = compute_q["quota_set"], network_q["quota"]

    def bar(label: str, used: int, limit: int, unit: str = "") -> dict[str, Any]:
        pct = 0 if limit <= 0 else min(100, round(100 * used / limit))
        return {"label": label, "used": used, "limit": limit, "unit": unit, "pct": pct,
                "unlimited": limit < 0}

    bars = [bar("Instances", cq["instances"]["in_use"], cq["instances"]["limit"]),
            bar("vCPUs", cq["cores"]["in_use"], cq["cores"]["limit"]),
            bar("RAM", cq["ram"]["in_use"], cq["ram"]["limit"], " MiB"),
            bar("Floating IPs", nq["floatingip"]["used"], nq["floatingip"]["limit"]),
            bar("Security groups", nq["security_group"]["used"],
                nq["security_group"]["limit"])]
    volumes = "volumev3" in ctx.session.services or "block-storage" in ctx.session.services
    if volumes:
        try:
            vq = (await ctx.api.get(f"/volume/v3/{pid}/os-quota-sets/{pid}", usage="true")
                  )["quota_set"]
            bars[3:3] = [bar("Volumes", vq["volumes"]["in_use"], vq["volumes"]["limit"]),
                         bar("Volume storage", vq["gigabytes"]["in_use"],
                             vq["gigabytes"]["limit"], " GB")]
        except (ApiError, KeyError, TypeError):
            volumes = False
    recent = servers["servers"]
    lists = await asyncio.gather(*(ctx.api.get(f"{C}/servers/{s['id']}/os-instance-actions")
                                   for s in recent), return_exceptions=True)
    actions = []
    for server, found in zip(recent, lists, strict=True):
        if isinstance(found, BaseException):
            continue
        for a in found["instanceActions"]:
            actions.append({**a, "server_name": server.get("name"),
                            "server_id": server["id"]})
    actions.sort(key=lambda a: a.get("start_time") or "", reverse=True)
    return render(ctx.request, "overview.html", ctx=ctx, bars=bars, actions=actions[:10],
                  volumes=volumes)


overview = page(_overview)


# -- instances --------------------------------------------------------------------------


#: Instances a page of the list shows (the API's ``limit``; ``marker`` pages on).
PAGE = 50


async def _servers(ctx: Ctx, all_projects: bool = False) -> dict[str, Any]:
    """One page of the instance list, sorted by name (the API sorts and pages)."""
    q = ctx.request.query_params
    try:
        limit = max(1, min(int(q.get("limit", PAGE)), 1000))
    except ValueError:
        limit = PAGE
    params: dict[str, Any] = {"limit": limit, "sort_key": "display_name",
                              "sort_dir": "asc"}
    if all_projects:
        params["all_tenants"] = 1
    if q.get("marker"):
        params["marker"] = q["marker"]
    if q.get("name"):
        params["name"] = q["name"]
    servers, names = await asyncio.gather(ctx.api.get(f"{C}/servers/detail", **params),
                                          _image_names(ctx))
    rows = servers["servers"]
    more = any(link.get("rel") == "next" for link in servers.get("servers_links", []))
    query = {k: v for k, v in (("name", q.get("name")), ("limit", q.get("limit"))) if v}
    here = dict(query, **({"marker": q["marker"]} if q.get("marker") else {}))
    return {"servers": rows, "image_names": names, "polling": any(moving(s) for s in rows),
            "addresses": addresses, "next_marker": rows[-1]["id"] if more and rows else "",
            "query": query, "here": urlencode(here), "paged": bool(q.get("marker")),
            "name_filter": q.get("name", "")}


async def _instances(ctx: Ctx) -> Response:
    return render(ctx.request, "instances.html", ctx=ctx, **await _servers(ctx))


async def _instance_rows(ctx: Ctx) -> Response:
    return render(ctx.request, "_instance_rows.html", ctx=ctx, **await _servers(ctx))


instances = page(_instances)
instance_rows = page(_instance_rows)


async def _launch_choices(ctx: Ctx) -> dict[str, Any]:
    images, flavors, networks, keypairs, groups = await asyncio.gather(
        ctx.api.get("/image/v2/images", status="active", limit=1000),
        ctx.api.get(f"{C}/flavors/detail"),
        ctx.api.get(f"{N}/networks"),
        ctx.api.get(f"{C}/os-keypairs"),
        ctx.api.get(f"{N}/security-groups", project_id=ctx.session.project_id))
    return {"images": images["images"], "flavors": flavors["flavors"],
            "networks": [n for n in networks["networks"] if not n.get("router:external")],
            "keypairs": [k["keypair"] for k in keypairs["keypairs"]],
            "groups": groups["security_groups"]}


async def _launch(ctx: Ctx) -> Response:
    values: dict[str, Any] = {"count": "1", "networks": [], "groups": ["default"]}
    error = ""
    if ctx.request.method == "POST":
        values = {k: ctx.field(k) for k in ("name", "image", "flavor", "keypair",
                                            "user_data", "count")}
        values["networks"], values["groups"] = ctx.fields("networks"), ctx.fields("groups")
        server: dict[str, Any] = {
            "name": values["name"], "imageRef": values["image"],
            "flavorRef": values["flavor"],
            "networks": [{"uuid": n} for n in values["networks"]] or "auto"}
        if values["keypair"]:
            server["key_name"] = values["keypair"]
        if values["groups"]:
            server["security_groups"] = [{"name": g} for g in values["groups"]]
        values["boot"], values["volume_size"] = ctx.field("boot"), ctx.field("volume_size")
        if values["boot"] == "volume":   # a new volume made from the image, kept no longer
            size = values["volume_size"]  # than the instance
            server["block_device_mapping_v2"] = [{
                "boot_index": 0, "uuid": values["image"], "source_type": "image",
                "destination_type": "volume", "delete_on_termination": True,
                "volume_size": int(size) if size.isdigit() else size}]
            server["imageRef"] = ""
        if values["user_data"]:
            server["user_data"] = base64.b64encode(values["user_data"].encode()).decode()
        try:
            count = int(values["count"] or "1")
        except ValueError:
            count = 0
        server["min_count"] = server["max_count"] = count
        try:
            body = await ctx.api.post(f"{C}/servers", {"server": server})
        except ApiError as exc:
            if exc.status == 401:
                raise
            error = exc.message
        else:
            ctx.flash(f"Launching {values['name']}." if count == 1 else
                      f"Launching {count} instances named {values['name']}.")
            if count == 1 and "server" in body:
                return redirect("/instances", ctx.request)
            return redirect("/instances", ctx.request)
    choices = await _launch_choices(ctx)
    return render(ctx.request, "launch.html", status=400 if error else 200, ctx=ctx,
                  values=values, error=error, **choices)


launch = page(_launch)


async def _instance(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["server_id"]
    server = (await ctx.api.get(f"{C}/servers/{sid}"))["server"]
    actions, names, fips, images = await asyncio.gather(
        ctx.api.get(f"{C}/servers/{sid}/os-instance-actions"), _image_names(ctx),
        ctx.api.get(f"{N}/floatingips", project_id=ctx.session.project_id),
        ctx.api.get("/image/v2/images", status="active", limit=1000))
    ports = (await ctx.api.get(f"{N}/ports", device_id=sid))["ports"]
    port_ids = {p["id"] for p in ports}
    return render(ctx.request, "instance.html", ctx=ctx, server=server,
                  actions=actions["instanceActions"], image_names=names,
                  addresses=addresses(server), moving=moving(server),
                  attached=[f for f in fips["floatingips"] if f.get("port_id") in port_ids],
                  free=[f for f in fips["floatingips"] if not f.get("port_id")],
                  images=images["images"])


instance = page(_instance)


async def _action(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["server_id"]
    action = ctx.field("action")
    back = f"/instances/{sid}" if ctx.field("back") == "detail" else "/instances"
    simple = {"start": {"os-start": None}, "stop": {"os-stop": None},
              "reboot": {"reboot": {"type": "SOFT"}},
              "hard-reboot": {"reboot": {"type": "HARD"}}}
    try:
        if action in simple:
            await ctx.api.post(f"{C}/servers/{sid}/action", simple[action])
            ctx.flash(f"Requested {action}.")
        elif action == "delete":
            await ctx.api.delete(f"{C}/servers/{sid}")
            ctx.flash("Deleting the instance.")
            back = "/instances"
        elif action == "rebuild":
            await ctx.api.post(f"{C}/servers/{sid}/action",
                               {"rebuild": {"imageRef": ctx.field("image")}})
            ctx.flash("Rebuilding the instance.")
        elif action == "snapshot":
            await ctx.api.call("POST", f"{C}/servers/{sid}/action",
                               json={"createImage": {"name": ctx.field("name")}})
            ctx.flash(f"Snapshot {ctx.field('name')} requested: see Images.")
        elif action == "associate":
            await _associate(ctx, sid, ctx.field("floatingip"))
        elif action == "disassociate":
            await ctx.api.put(f"{N}/floatingips/{ctx.field('floatingip')}",
                              {"floatingip": {"port_id": None}})
            ctx.flash("Floating IP disassociated.")
        else:
            ctx.flash(f"Unknown action {action!r}.", "error")
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    return redirect(back, ctx.request)


async def _associate(ctx: Ctx, sid: str, fip: str) -> None:
    ports = (await ctx.api.get(f"{N}/ports", device_id=sid))["ports"]
    if not ports:
        ctx.flash("The instance has no port to associate a floating IP with.", "error")
        return
    made = ""
    if fip == "new":   # allocate one from the first external network
        nets = (await ctx.api.get(f"{N}/networks", **{"router:external": "true"}))["networks"]
        if not nets:
            ctx.flash("There is no external network to allocate a floating IP from.",
                      "error")
            return
        body = await ctx.api.post(f"{N}/floatingips", {"floatingip": {
            "floating_network_id": nets[0]["id"]}})
        fip = made = body["floatingip"]["id"]
    try:
        body = await ctx.api.put(f"{N}/floatingips/{fip}",
                                 {"floatingip": {"port_id": ports[0]["id"]}})
    except ApiError:
        if made:   # nothing half-made
            await ctx.api.delete(f"{N}/floatingips/{made}")
        raise
    ctx.flash(f"Floating IP {body['floatingip']['floating_ip_address']} associated.")


server_action = page(_action)


async def _console_log(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["server_id"]
    try:
        body = await ctx.api.post(f"{C}/servers/{sid}/action",
                                  {"os-getConsoleOutput": {"length": 200}})
        text, error = body.get("output", ""), ""
    except ApiError as exc:
        if exc.status == 401:
            raise
        text, error = "", exc.message
    return render(ctx.request, "_console_log.html", ctx=ctx, text=text, error=error)


console_log = page(_console_log)


async def _console(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["server_id"]
    if ctx.request.method == "POST":   # the page's script asks for a console URL
        try:
            body = await ctx.api.post(f"{C}/servers/{sid}/remote-consoles", {
                "remote_console": {"protocol": "serial", "type": "serial"}})
        except ApiError as exc:
            if exc.status == 401:
                raise
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        url = body["remote_console"]["url"]
        # the path and token, on whatever host the browser reached the dashboard by
        return JSONResponse({"path": url[url.index("/compute/"):]})
    server = (await ctx.api.get(f"{C}/servers/{sid}"))["server"]
    return render(ctx.request, "console.html", ctx=ctx, server=server)


console = page(_console)
