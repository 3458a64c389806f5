"""Images: list, create and upload (streamed, with a progress bar), visibility, delete.

An upload is two requests from the page's script: ``POST /dashboard/images`` makes the
image record (a JSON answer with its id), then ``PUT /dashboard/images/{id}/data``
streams the file's bytes through to the Image API's ``PUT /v2/images/{id}/file`` chunk
by chunk (the dashboard holds one chunk at a time, never the file). If the upload
fails, the script deletes the record, so nothing half-made is left.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from onestack.dashboard.client import ApiError
from onestack.dashboard.web import Ctx, page, redirect, render

IMAGES = "/image/v2/images"
DISK_FORMATS = ("qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "ari", "aki")
VISIBILITIES = ("private", "shared", "community", "public")


async def _images(ctx: Ctx) -> Response:
    if ctx.request.method == "POST":   # make the record (JSON, for the page's script)
        body = {"name": ctx.field("name"), "disk_format": ctx.field("disk_format"),
                "container_format": "bare",
                "visibility": ctx.field("visibility") or "private"}
        try:
            image = await ctx.api.post(IMAGES, body)
        except ApiError as exc:
            if exc.status == 401:
                raise
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse({"id": image["id"]}, status_code=201)
    images = (await ctx.api.get(IMAGES, limit=1000))["images"]
    images.sort(key=lambda i: (i.get("name") or "", i["id"]))
    return render(ctx.request, "images.html", ctx=ctx, images=images,
                  formats=DISK_FORMATS, visibilities=VISIBILITIES)


async def _data(ctx: Ctx) -> Response:
    image_id = ctx.request.path_params["image_id"]
    try:
        await ctx.api.upload(f"{IMAGES}/{image_id}/file", ctx.request.stream(),
                             ctx.request.headers.get("content-length"))
    except ApiError as exc:
        if exc.status == 401:
            raise
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    ctx.flash("Image uploaded.")
    return JSONResponse({"id": image_id})


async def _visibility(ctx: Ctx) -> Response:
    image_id = ctx.request.path_params["image_id"]
    try:
        await ctx.api.call("PATCH", f"{IMAGES}/{image_id}", json=[
            {"op": "replace", "path": "/visibility", "value": ctx.field("visibility")}],
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        ctx.flash("Visibility changed.")
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    return redirect("/images", ctx.request)


async def _delete(ctx: Ctx) -> Response:
    image_id = ctx.request.path_params["image_id"]
    try:
        await ctx.api.delete(f"{IMAGES}/{image_id}")
        ctx.flash("Image deleted.")
    except ApiError as exc:
        if exc.status == 401:
            raise
        ctx.flash(exc.message, "error")
    if ctx.request.headers.get("X-Requested-With") == "fetch":
        return JSONResponse({})
    return redirect("/images", ctx.request)


images = page(_images)
image_data = page(_data)
image_visibility = page(_visibility)
image_delete = page(_delete)
