"""Volumes (Block Storage, ``/volume/v3``): list, create (empty or from an image),
extend, snapshot, attach to and detach from an instance (the Compute API's
``os-volume_attachments``, as ``openstack server add volume`` does), delete; and the
volume snapshots. The page exists only when the catalog has a block-storage service.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from onestack.dashboard.client import ApiError
from onestack.dashboard.web import Ctx, error_page, page, redirect, render

C = "/compute/v2.1"
#: Seconds the page keeps looking after a change.
WATCH = 10


def has_volumes(ctx: Ctx) -> bool:
    return bool({"block-storage", "volumev3"} & ctx.session.services)


def _v(ctx: Ctx) -> str:
    return f"/volume/v3/{ctx.session.project_id}"


def _number(value: str) -> Any:
    return int(value) if value.isdigit() else value


async def _volumes(ctx: Ctx) -> Response:
    if not has_volumes(ctx):
        return error_page(ctx.request, 404, "This cloud has no Block Storage service.", ctx)
    error, values = "", {}
    if ctx.request.method == "POST":
        values = {k: ctx.field(k) for k in ("name", "size", "image")}
        spec: dict[str, Any] = {"name": values["name"], "size": _number(values["size"])}
        if values["image"]:
            spec["imageRef"] = values["image"]
        try:
            body = await ctx.api.post(f"{_v(ctx)}/volumes", {"volume": spec})
        except ApiError as exc:
            if exc.status == 401:
                raise
            error = exc.message
        else:
            ctx.flash(f"Creating volume {body['volume'].get('name') or body['volume']['id']}.")
            return redirect(f"/volumes?w={WATCH}", ctx.request)
    volumes, snapshots, servers, images = await asyncio.gather(
        ctx.api.get(f"{_v(ctx)}/volumes/detail"), ctx.api.get(f"{_v(ctx)}/snapshots/detail"),
        ctx.api.get(f"{C}/servers"),
        ctx.api.get("/image/v2/images", status="active", limit=1000))
    rows = sorted(volumes["volumes"], key=lambda v: v.get("name") or "")
    moving = any(v["status"] in ("creating", "extending", "attaching", "detaching",
                                 "deleting", "downloading") for v in rows) or \
        any(s["status"] in ("creating", "deleting") for s in snapshots["snapshots"])
    # after a change the page also looks again for a few seconds: a detach, for one,
    # leaves the volume "in-use" until the host has let go of it
    try:
        watch = max(0, min(int(ctx.request.query_params.get("w", "0")), WATCH))
    except ValueError:
        watch = 0
    return render(ctx.request, "volumes.html", status=400 if error else 200, ctx=ctx,
                  watch=watch - 1 if watch else 0, polling=moving or watch > 0,
                  volumes=rows, snapshots=snapshots["snapshots"],
                  servers=servers["servers"],
                  server_names={s["id"]: s["name"] for s in servers["servers"]},
                  images=images["images"], error=error, values=values, moving=moving)


async def _action(ctx: Ctx) -> Response:
    if not has_volumes(ctx):
        return error_page(ctx.request, 404, "This cloud has no Block Storage service.", ctx)
    vid = ctx.request.path_params["volume_id"]
    action = ctx.field("action")
    try:
        if action == "extend":
            await ctx.api.post(f"{_v(ctx)}/volumes/{vid}/action",
                               {"os-extend": {"new_size": _number(ctx.field("size"))}})
            ctx.flash("Extending the volume.")
        elif action == "snapshot":
            await ctx.api.post(f"{_v(ctx)}/snapshots", {"snapshot": {
                "volume_id": vid, "name": ctx.field("name"),
                "force": ctx.field("force") == "on"}})
            ctx.flash("Snapshot requested.")
        elif action == "attach":
            await ctx.api.post(f"{C}/servers/{ctx.field('server_id')}/os-volume_attachments",
                               {"volumeAttachment": {"volumeId": vid}})
            ctx.flash("Attaching the volume.")
        elif action == "detach":
            await ctx.api.delete(f"{C}/servers/{ctx.field('server_id')}"
                                 f"/os-volume_attachments/{vid}")
            ctx.flash("Detaching the volume.")
        elif action == "delete":
            await ctx.api.delete(f"{_v(ctx)}/volumes/{vid}")
            ctx.flash("Deleting the volume.")
        elif action == "delete-snapshot":
            await ctx.api.delete(f"{_v(ctx)}/snapshots/{ctx.field('snapshot_id')}")
            ctx.flash("Deleting the snapshot.")
        else:
            ctx.flash(f"Unknown action {action!r}.", "error")
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    return redirect(f"/volumes?w={WATCH}", ctx.request)


volumes = page(_volumes)
volume_action = page(_action)
