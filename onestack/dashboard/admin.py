"""Admin pages (users with the admin role only; the APIs check again): projects,
users, role assignments, flavors, hypervisors with their usage, every project's
instances."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from onestack.dashboard.client import ApiError
from onestack.dashboard.compute import _servers
from onestack.dashboard.web import Ctx, admin_page, redirect, render

C = "/compute/v2.1"


async def _projects(ctx: Ctx) -> Response:
    projects = (await ctx.api.get("/v3/projects"))["projects"]
    return render(ctx.request, "admin_table.html", ctx=ctx, title="Projects",
                  columns=["Name", "ID", "Domain", "Enabled", "Description"],
                  rows=[[p["name"], p["id"], p.get("domain_id"), p.get("enabled"),
                         p.get("description") or ""] for p in
                        sorted(projects, key=lambda p: p["name"])])


async def _users(ctx: Ctx) -> Response:
    users = (await ctx.api.get("/v3/users"))["users"]
    return render(ctx.request, "admin_table.html", ctx=ctx, title="Users",
                  columns=["Name", "ID", "Domain", "Enabled", "Default project"],
                  rows=[[u["name"], u["id"], u.get("domain_id"), u.get("enabled"),
                         u.get("default_project_id") or ""] for u in
                        sorted(users, key=lambda u: u["name"])])


async def _assignments(ctx: Ctx) -> Response:
    found = (await ctx.api.get("/v3/role_assignments", include_names="true"))
    rows: list[list[Any]] = []
    for a in found["role_assignments"]:
        who = a.get("user") or a.get("group") or {}
        scope = a.get("scope", {})
        target = scope.get("project") or scope.get("domain") or {}
        where = "project" if "project" in scope else "domain" if "domain" in scope \
            else "system"
        rows.append([a["role"].get("name", a["role"]["id"]),
                     ("user " if "user" in a else "group ") + str(who.get("name", who.get("id"))),
                     f"{where} {target.get('name', target.get('id', 'all'))}"])
    rows.sort()
    return render(ctx.request, "admin_table.html", ctx=ctx, title="Role assignments",
                  columns=["Role", "Who", "On"], rows=rows)


async def _flavors(ctx: Ctx) -> Response:
    error = ""
    values: dict[str, str] = {}
    if ctx.request.method == "POST":
        values = {k: ctx.field(k) for k in ("name", "vcpus", "ram", "disk")}

        def number(v: str) -> Any:
            return int(v) if v.lstrip("-").isdigit() else v

        try:
            await ctx.api.post(f"{C}/flavors", {"flavor": {
                "name": values["name"], "vcpus": number(values["vcpus"]),
                "ram": number(values["ram"]), "disk": number(values["disk"] or "0")}})
        except ApiError as exc:
            if exc.status == 401:
                raise
            error = exc.message
        else:
            ctx.flash(f"Flavor {values['name']} created.")
            return redirect("/admin/flavors", ctx.request)
    flavors = (await ctx.api.get(f"{C}/flavors/detail", is_public="None"))["flavors"]
    flavors.sort(key=lambda f: (f["vcpus"], f["ram"], f["name"]))
    return render(ctx.request, "admin_flavors.html", status=400 if error else 200, ctx=ctx,
                  flavors=flavors, error=error, values=values)


async def _delete_flavor(ctx: Ctx) -> Response:
    fid = ctx.request.path_params["flavor_id"]
    try:
        await ctx.api.delete(f"{C}/flavors/{fid}")
        ctx.flash("Flavor deleted.")
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    return redirect("/admin/flavors", ctx.request)


async def _hypervisors(ctx: Ctx) -> Response:
    # 2.87: the last microversion whose hypervisor bodies carry their usage
    r = await ctx.api.call("GET", f"{C}/os-hypervisors/detail",
                           headers={"OpenStack-API-Version": "compute 2.87"})
    return render(ctx.request, "admin_hypervisors.html", ctx=ctx,
                  hypervisors=r.json()["hypervisors"])


async def _all_instances(ctx: Ctx) -> Response:
    return render(ctx.request, "admin_instances.html", ctx=ctx,
                  **await _servers(ctx, all_projects=True))


projects = admin_page(_projects)
users = admin_page(_users)
assignments = admin_page(_assignments)
flavors = admin_page(_flavors)
flavor_delete = admin_page(_delete_flavor)
hypervisors = admin_page(_hypervisors)
all_instances = admin_page(_all_instances)
