"""Nova's image proxy (/compute/v2.1/images[...] and its metadata), served from the
Image service as the caller: the view, the filters, paging, who sees and changes what,
and the microversions that removed the routes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.api.compute_helpers import (
    Tenant,
    action,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    tenant,
    upload_image,
)


def reader_of(cloud, project: Tenant, name: str) -> str:
    """A token of a user holding only ``reader`` on ``project`` (named ``name``)."""
    ident = cloud.services.identity
    user = ident.users.create(name=f"{name}-reader", password="secret-pw",
                              domain_id="default")
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user.id, project.project_id,
                                ident.roles.find("reader").id)
    return cloud.login(f"{name}-reader", "secret-pw", project=name)


def images(cloud, query: str = "", token: str | None = "admin", detail: bool = True,
           microversion: str | None = None) -> dict:
    path = "/images/detail" if detail else "/images"
    return ok(nova(cloud, "GET", f"{path}{query}", token=token, microversion=microversion))


def ids(body: dict) -> list[str]:
    return [i["id"] for i in body["images"]]


def show(cloud, image_id: str, token: str | None = "admin") -> dict:
    return ok(nova(cloud, "GET", f"/images/{image_id}", token=token))["image"]


def metadata(cloud, image_id: str, token: str | None = "admin") -> dict:
    return ok(nova(cloud, "GET", f"/images/{image_id}/metadata", token=token))["metadata"]


def test_the_view_of_an_active_image(quiet):
    image_id = upload_image(quiet, name="cirros", min_ram=64, min_disk=1,
                            os_distro="cirros", auto_disk_config="true")
    image = show(quiet, image_id)
    glance = ok(quiet.request("GET", f"/image/v2/images/{image_id}"))
    assert image["id"] == image_id and image["name"] == "cirros"
    assert (image["status"], image["progress"]) == ("ACTIVE", 100)
    assert (image["minRam"], image["minDisk"]) == (64, 1)
    assert image["OS-EXT-IMG-SIZE:size"] == glance["size"] == 65536
    assert image["metadata"] == {"os_distro": "cirros", "auto_disk_config": "true"}
    assert image["OS-DCF:diskConfig"] == "AUTO"
    assert image["created"] == glance["created_at"] and image["updated"] == glance["updated_at"]
    assert dt.datetime.strptime(image["created"], "%Y-%m-%dT%H:%M:%SZ")
    assert "server" not in image
    root = "http://127.0.0.1:5000/compute"
    assert image["links"] == [
        {"rel": "self", "href": f"{root}/v2.1/images/{image_id}"},
        {"rel": "bookmark", "href": f"{root}/images/{image_id}"},
        {"rel": "alternate", "type": "application/vnd.openstack.image",
         "href": f"http://127.0.0.1:5000/image/images/{image_id}"}]
    basic = images(quiet, detail=False)
    assert basic == {"images": [{"id": image_id, "name": "cirros",
                                 "links": image["links"]}]}
    assert images(quiet)["images"] == [image]


def test_a_snapshot_in_progress_shows_saving_and_its_server(quiet):
    env = boot_env(quiet)
    server_id = boot(quiet, env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    r = action(quiet, server_id, {"createImage": {"name": "snap", "metadata": {"k": "v"}}})
    snapshot_id = r.json()["image_id"]
    image = show(quiet, snapshot_id)
    assert (image["status"], image["progress"]) == ("SAVING", 25)
    assert image["OS-EXT-IMG-SIZE:size"] == 0
    assert image["metadata"]["image_type"] == "snapshot"
    assert image["metadata"]["k"] == "v"
    root = "http://127.0.0.1:5000/compute"
    assert image["server"] == {"id": server_id, "links": [
        {"rel": "self", "href": f"{root}/v2.1/servers/{server_id}"},
        {"rel": "bookmark", "href": f"{root}/servers/{server_id}"}]}
    # the filters Nova maps onto the snapshot's properties
    assert ids(images(quiet, "?type=snapshot")) == [snapshot_id]
    assert ids(images(quiet, f"?server={server_id}")) == [snapshot_id]
    assert ids(images(quiet, f"?server={root}/v2.1/servers/{server_id}",
                      detail=False)) == [snapshot_id]
    assert ids(images(quiet, "?server=6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f")) == []
    assert ids(images(quiet, "?status=SAVING")) == []  # Glance's queued is not "saving"
    assert env.image in ids(images(quiet, "?status=ACTIVE"))
    assert snapshot_id not in ids(images(quiet, "?status=ACTIVE"))
    # deleting the image while it is being saved
    assert nova(quiet, "DELETE", f"/images/{snapshot_id}").status_code == 204
    nova_error(nova(quiet, "GET", f"/images/{snapshot_id}"), 404, "Image not found.")


def test_filters_and_paging(quiet):
    first = upload_image(quiet, name="one", min_ram=128, min_disk=2, purpose="web")
    time.sleep(1.1)  # changes-since has a second's resolution in Nova's dates
    second = upload_image(quiet, name="two")
    third = upload_image(quiet, name="three")
    assert ids(images(quiet)) == [third, second, first]  # newest first, as Glance
    assert ids(images(quiet, "?name=two")) == [second]
    assert ids(images(quiet, "?minRam=128")) == [first]
    assert ids(images(quiet, "?minDisk=2&name=one")) == [first]
    assert ids(images(quiet, "?property-purpose=web")) == [first]
    assert ids(images(quiet, "?unknown=ignored")) == [third, second, first]
    since = show(quiet, second)["created"]
    assert ids(images(quiet, f"?changes-since={since}")) == [third, second]
    nova_error(nova(quiet, "GET", "/images?changes-since=yesterday"), 400)
    page = images(quiet, "?limit=2")
    assert ids(page) == [third, second]
    link = page["images_links"][0]
    assert link["rel"] == "next" and f"marker={second}" in link["href"]
    assert "/v2.1/images/detail?" in link["href"]
    rest = images(quiet, f"?limit=2&marker={second}")
    assert ids(rest) == [first] and "images_links" not in rest
    assert images(quiet, "?limit=1", detail=False)["images_links"][0]["href"].startswith(
        "http://127.0.0.1:5000/compute/v2.1/images?")
    for query in ("?limit=-1", "?limit=x", "?marker=6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"):
        nova_error(nova(quiet, "GET", f"/images{query}"), 400)
    for query in ("?minRam=abc", "?changes-since=", "?name=in:%22open", "?limit=1e3"):
        nova_error(nova(quiet, "GET", f"/images/detail{query}"), 400)
    # more images than the Image service gives in one page: as many pages as it takes
    quiet.services.config.image.api_limit_max = 2
    assert ids(images(quiet)) == [third, second, first]
    assert ids(images(quiet, "?limit=3")) == [third, second, first]


def test_who_sees_and_deletes_what(quiet):
    alpha, beta = tenant(quiet, "alpha"), tenant(quiet, "beta")
    reader = reader_of(quiet, alpha, "alpha")
    private = upload_image(quiet, token=alpha.token, name="mine", visibility="private")
    public = upload_image(quiet, name="everyone's")
    assert set(ids(images(quiet, token=alpha.token))) == {private, public}
    assert ids(images(quiet, token=beta.token)) == [public]
    nova_error(nova(quiet, "GET", f"/images/{private}", token=beta.token), 404,
               "Image not found.")
    nova_error(nova(quiet, "DELETE", f"/images/{private}", token=beta.token), 404)
    nova_error(nova(quiet, "DELETE", f"/images/{public}", token=alpha.token), 403,
               "You are not allowed to delete the image.")
    nova_error(nova(quiet, "DELETE", f"/images/{public}", token=reader), 403)
    assert show(quiet, public)["status"] == "ACTIVE"
    assert nova(quiet, "DELETE", f"/images/{private}", token=alpha.token).status_code == 204
    nova_error(nova(quiet, "GET", f"/images/{private}", token=alpha.token), 404)
    nova_error(nova(quiet, "GET", f"/images/{private}"), 404)
    for bad in ("-1", "a" * 37, "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5j", private):
        nova_error(nova(quiet, "DELETE", f"/images/{bad}"), 404)
    assert nova(quiet, "DELETE", "/images/").status_code == 404
    assert nova(quiet, "POST", "/images", json={}).status_code == 405


def test_removed_by_later_microversions(quiet):
    image_id = upload_image(quiet, name="gone", purpose="x")
    for path in ("/images", "/images/detail", f"/images/{image_id}"):
        ok(nova(quiet, "GET", path, microversion="2.35"))
        nova_error(nova(quiet, "GET", path, microversion="2.36"), 404)
        nova_error(nova(quiet, "GET", path, microversion="latest"), 404)
    nova_error(nova(quiet, "DELETE", f"/images/{image_id}", microversion="2.36"), 404)
    for path in (f"/images/{image_id}/metadata", f"/images/{image_id}/metadata/purpose"):
        ok(nova(quiet, "GET", path, microversion="2.38"))
        nova_error(nova(quiet, "GET", path, microversion="2.39"), 404)
    nova_error(nova(quiet, "POST", f"/images/{image_id}/metadata", microversion="2.39",
                    json={"metadata": {"a": "b"}}), 404)
    assert show(quiet, image_id)["metadata"] == {"purpose": "x"}


def test_metadata_calls(quiet):
    alpha = tenant(quiet, "alpha")
    t = alpha.token
    image_id = upload_image(quiet, token=t, name="m", os_version="1", os_distro="d")
    assert metadata(quiet, image_id, t) == {"os_version": "1", "os_distro": "d"}
    # POST merges, answering the whole metadata
    r = nova(quiet, "POST", f"/images/{image_id}/metadata", token=t,
             json={"metadata": {"os_version": "2", "architecture": "x86_64"}})
    assert ok(r) == {"metadata": {"os_version": "2", "os_distro": "d",
                                  "architecture": "x86_64"}}
    # PUT replaces
    r = nova(quiet, "PUT", f"/images/{image_id}/metadata", token=t,
             json={"metadata": {"os_version": "3", "hw_qemu_guest_agent": "yes"}})
    assert ok(r) == {"metadata": {"os_version": "3", "hw_qemu_guest_agent": "yes"}}
    glance = ok(quiet.request("GET", f"/image/v2/images/{image_id}", token=t))
    assert glance["os_version"] == "3" and "os_distro" not in glance
    assert glance["name"] == "m" and glance["status"] == "active"
    # one item
    assert ok(nova(quiet, "GET", f"/images/{image_id}/metadata/os_version", token=t)) == {
        "meta": {"os_version": "3"}}
    nova_error(nova(quiet, "GET", f"/images/{image_id}/metadata/nope", token=t), 404)
    r = nova(quiet, "PUT", f"/images/{image_id}/metadata/os_version", token=t,
             json={"meta": {"os_version": "4"}})
    assert ok(r) == {"meta": {"os_version": "4"}}
    r = nova(quiet, "PUT", f"/images/{image_id}/metadata/new_key", token=t,
             json={"meta": {"new_key": "v"}})
    assert ok(r) == {"meta": {"new_key": "v"}}
    assert nova(quiet, "DELETE", f"/images/{image_id}/metadata/hw_qemu_guest_agent",
                token=t).status_code == 204
    nova_error(nova(quiet, "DELETE", f"/images/{image_id}/metadata/hw_qemu_guest_agent",
                    token=t), 404, "Invalid metadata key")
    assert metadata(quiet, image_id, t) == {"os_version": "4", "new_key": "v"}
    assert show(quiet, image_id, t)["metadata"] == {"os_version": "4", "new_key": "v"}


def test_metadata_refusals(quiet):
    alpha, beta = tenant(quiet, "alpha"), tenant(quiet, "beta")
    reader = reader_of(quiet, alpha, "alpha")
    image_id = upload_image(quiet, token=alpha.token, name="m", visibility="private",
                            k="v")
    public = upload_image(quiet, name="p", k="v")
    path = f"/images/{image_id}/metadata"
    t = alpha.token
    for body, words in (({"metadata": {"": "x"}}, "metadata"),
                        ({"metadata": {"a" * 256: "b"}}, "metadata"),
                        ({"metadata": {"k": 1}}, "metadata/k"),
                        ({"metadata": {"k": "v"}, "other": 1}, "'other' was unexpected"),
                        ({}, "'metadata' is a required property"),
                        ({"metadata": {"name": "renamed"}}, "reserved image attribute"),
                        ({"metadata": {"status": "active"}}, "reserved image attribute")):
        nova_error(nova(quiet, "POST", path, token=t, json=body), 400, words)
        nova_error(nova(quiet, "PUT", path, token=t, json=body), 400, words)
    nova_error(nova(quiet, "PUT", f"{path}/k", token=t, json={"meta": {"j": "v"}}), 400,
               "Request body and URI mismatch")
    nova_error(nova(quiet, "PUT", f"{path}/k", token=t,
                    json={"meta": {"k": "v", "j": "v"}}), 400, "exactly one")
    nova_error(nova(quiet, "PUT", f"{path}/k", token=t, content=b"[]"), 400)
    # Glance's own refusal: a reserved property name
    nova_error(nova(quiet, "PUT", f"{path}/os_glance_x", token=t,
                    json={"meta": {"os_glance_x": "v"}}), 403, "reserved")
    # who: another project does not see it; a reader may not change it; the public
    # image is not alpha's to change
    unknown = "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"
    for image in (image_id, unknown):
        p = f"/images/{image}/metadata"
        nova_error(nova(quiet, "GET", p, token=beta.token), 404, "Image not found.")
        nova_error(nova(quiet, "GET", f"{p}/k", token=beta.token), 404)
        nova_error(nova(quiet, "POST", p, token=beta.token,
                        json={"metadata": {"a": "b"}}), 404)
        nova_error(nova(quiet, "PUT", p, token=beta.token,
                        json={"metadata": {"a": "b"}}), 404)
        nova_error(nova(quiet, "PUT", f"{p}/a", token=beta.token,
                        json={"meta": {"a": "b"}}), 404)
        nova_error(nova(quiet, "DELETE", f"{p}/k", token=beta.token), 404)
    nova_error(nova(quiet, "POST", path, token=reader,
                    json={"metadata": {"a": "b"}}), 403)
    assert metadata(quiet, image_id, reader) == {"k": "v"}
    changes: list[tuple[str, str, Any]] = [
        ("POST", f"/images/{public}/metadata", {"metadata": {"a": "b"}}),
        ("PUT", f"/images/{public}/metadata", {"metadata": {}}),
        ("PUT", f"/images/{public}/metadata/k", {"meta": {"k": "w"}}),
        ("DELETE", f"/images/{public}/metadata/k", None)]
    for method, p, body in changes:
        nova_error(nova(quiet, method, p, token=t, json=body), 403, "not authorized")
    assert metadata(quiet, public) == {"k": "v"}
    assert metadata(quiet, image_id, t) == {"k": "v"}


def test_metadata_items_quota(quiet):
    alpha = tenant(quiet, "alpha")
    ok(nova(quiet, "PUT", f"/os-quota-sets/{alpha.project_id}",
            json={"quota_set": {"metadata_items": 2}}))
    image_id = upload_image(quiet, token=alpha.token, name="q", a="1")
    path = f"/images/{image_id}/metadata"
    ok(nova(quiet, "POST", path, token=alpha.token, json={"metadata": {"b": "2"}}))
    nova_error(nova(quiet, "POST", path, token=alpha.token, json={"metadata": {"c": "3"}}),
               403, "Image metadata limit exceeded")
    nova_error(nova(quiet, "PUT", f"{path}/c", token=alpha.token,
                    json={"meta": {"c": "3"}}), 403, "Image metadata limit exceeded")
    nova_error(nova(quiet, "PUT", path, token=alpha.token,
                    json={"metadata": {"x": "1", "y": "2", "z": "3"}}), 403,
               "Image metadata limit exceeded")
    # changing an existing item, or replacing with as many, stays within the limit
    ok(nova(quiet, "PUT", f"{path}/a", token=alpha.token, json={"meta": {"a": "9"}}))
    ok(nova(quiet, "PUT", path, token=alpha.token, json={"metadata": {"x": "1", "y": "2"}}))
    assert metadata(quiet, image_id, alpha.token) == {"x": "1", "y": "2"}
