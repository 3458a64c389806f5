"""Image records (Glance v2): discovery, create, show, list, update, delete, tags,
deactivate/reactivate, schemas and info, in process."""

from __future__ import annotations

import pytest

from tests.api.image_helpers import (
    PATCH,
    assert_glance_error,
    create_image,
    make_project_member,
    patch,
    show,
    upload,
)

BASE = "http://127.0.0.1:5000"
GLANCE_FIELDS = {"id", "name", "status", "visibility", "protected", "os_hidden", "owner",
                 "disk_format", "container_format", "size", "virtual_size", "checksum",
                 "os_hash_algo", "os_hash_value", "min_disk", "min_ram", "tags",
                 "created_at", "updated_at", "self", "file", "schema"}


# -- discovery -------------------------------------------------------------------------

def test_version_documents(cloud):
    for path, status in (("/image", 300), ("/image/", 300), ("/image/versions", 200)):
        r = cloud.request("GET", path, token=None)
        assert r.status_code == status, (path, r.text)
        versions = r.json()["versions"]
        assert versions[0] == {"id": "v2.9", "status": "CURRENT",
                               "links": [{"rel": "self", "href": f"{BASE}/image/v2/"}]}
        assert {v["id"] for v in versions} >= {"v2.0", "v2.1", "v2.5", "v2.6"}
        assert all(v["status"] == "SUPPORTED" for v in versions[1:])


def test_catalog_lists_the_image_endpoint(cloud):
    r = cloud.request("GET", "/v3/auth/catalog")
    image = [s for s in r.json()["catalog"] if s["type"] == "image"]
    assert image and {e["url"] for e in image[0]["endpoints"]} == {f"{BASE}/image"}


def test_everything_but_versions_needs_a_token(cloud):
    for method, path in (("GET", "/image/v2/images"), ("POST", "/image/v2/images"),
                         ("GET", "/image/v2/schemas/image"), ("GET", "/image/v2/info/import")):
        r = cloud.request(method, path, token=None)
        assert_glance_error(r, 401)
    r = cloud.request("GET", "/image/v2/images", token="not-a-token")
    assert_glance_error(r, 401)


# -- create and show ------------------------------------------------------------------

def test_create_and_show(cloud):
    r = cloud.request("POST", "/image/v2/images", json={
        "name": "cirros", "disk_format": "qcow2", "container_format": "bare",
        "min_disk": 1, "min_ram": 64, "tags": ["a", "b", "a"], "os_distro": "cirros",
        "protected": False, "visibility": "private"})
    assert r.status_code == 201, r.text
    image = r.json()
    assert set(image) == GLANCE_FIELDS | {"os_distro"}
    assert image["status"] == "queued" and image["visibility"] == "private"
    assert image["owner"] == cloud.admin_project_id
    assert image["size"] is None and image["checksum"] is None
    assert image["virtual_size"] is None and image["os_hash_value"] is None
    assert image["tags"] == ["a", "b"]
    assert image["self"] == f"/v2/images/{image['id']}"
    assert image["file"] == f"/v2/images/{image['id']}/file"
    assert image["schema"] == "/v2/schemas/image"
    assert image["created_at"].endswith("Z") and image["created_at"] == image["updated_at"]
    assert r.headers["Location"] == f"{BASE}/image/v2/images/{image['id']}"
    assert r.headers["OpenStack-image-import-methods"] == "glance-direct"
    assert r.headers["OpenStack-image-store-ids"] == "local"
    assert show(cloud, image["id"]) == image


def test_create_defaults_and_chosen_id(cloud):
    image_id = "1bea47ed-f6a9-463b-b423-14b9cca9ad27"
    image = create_image(cloud, id=image_id, disk_format=None, container_format=None)
    assert image["id"] == image_id
    assert image["visibility"] == "shared" and image["name"] is None
    assert image["disk_format"] is None and image["protected"] is False
    assert image["min_disk"] == 0 and image["min_ram"] == 0
    r = cloud.request("POST", "/image/v2/images", json={"id": image_id})
    assert_glance_error(r, 409, image_id)


@pytest.mark.parametrize("body, status, words", [
    ({"name": 5}, 400, ["name"]),
    ({"name": "x" * 256}, 400, ["name"]),
    ({"disk_format": "floppy"}, 400, ["disk_format"]),
    ({"container_format": "zip"}, 400, ["container_format"]),
    ({"visibility": "everyone"}, 400, ["visibility"]),
    ({"protected": "yes"}, 400, ["protected"]),
    ({"min_ram": -1}, 400, ["min_ram", "negative"]),
    ({"min_disk": True}, 400, ["min_disk"]),
    ({"min_disk": 1.5}, 400, ["min_disk"]),
    ({"tags": "a"}, 400, ["tags"]),
    ({"tags": [1]}, 400, ["tags"]),
    ({"tags": ["t" * 256]}, 400, ["tags"]),
    ({"id": "not-a-uuid"}, 400, ["id"]),
    ({"os_distro": 7}, 400, ["os_distro"]),
    ({"k" * 256: "v"}, 400, ["255"]),
    ({"status": "active"}, 403, ["status", "read-only"]),
    ({"checksum": "0" * 32}, 403, ["read-only"]),
    ({"size": 1}, 403, ["read-only"]),
    ({"self": "/x"}, 403, ["read-only"]),
    ({"os_hash_value": "x"}, 403, ["read-only"]),
    ({"deleted": "x"}, 403, ["reserved"]),
    ({"os_glance_import_task": "x"}, 403, ["reserved"]),
    ({"locations": []}, 403, ["locations"]),
])
def test_create_refuses_bad_input(cloud, body, status, words):
    r = cloud.request("POST", "/image/v2/images", json=body)
    assert_glance_error(r, status, *words)


def test_create_refuses_non_json(cloud):
    for content in (b"", b"{", b"[]", b'"x"'):
        r = cloud.request("POST", "/image/v2/images", content=content,
                          headers={"Content-Type": "application/json"})
        assert_glance_error(r, 400)


def test_show_unknown_or_malformed_ids_are_404(cloud):
    for image_id in ("00000000-0000-0000-0000-000000000000", "cirros", "%20"):
        r = cloud.request("GET", f"/image/v2/images/{image_id}")
        assert_glance_error(r, 404)


def test_ids_are_case_insensitive(cloud):
    image = create_image(cloud)
    assert show(cloud, image["id"].upper())["id"] == image["id"]


# -- list -----------------------------------------------------------------------------

def _names(cloud, query: str = "", token="admin") -> list[str]:
    r = cloud.request("GET", f"/image/v2/images{query}", token=token)
    assert r.status_code == 200, r.text
    return [i["name"] for i in r.json()["images"]]


def test_list_shape_and_default_order(cloud):
    for name in ("a", "b", "c"):
        create_image(cloud, name=name)
    r = cloud.request("GET", "/image/v2/images")
    body = r.json()
    assert set(body) == {"images", "first", "schema"}
    assert body["first"] == "/v2/images" and body["schema"] == "/v2/schemas/images"
    # newest first (created_at desc, then id desc)
    assert [i["name"] for i in body["images"]] == ["c", "b", "a"]


def test_list_pagination_follows_next(cloud):
    made = [create_image(cloud, name=f"img-{n:02d}")["id"] for n in range(7)]
    seen: list[str] = []
    url = "/image/v2/images?limit=3&sort=name:asc"
    pages = 0
    while url:
        r = cloud.request("GET", url)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [i["id"] for i in body["images"]]
        assert body["first"] == "/v2/images?limit=3&sort=name%3Aasc"
        url = "/image" + body["next"] if "next" in body else None
        pages += 1
    assert seen == made and pages == 3
    r = cloud.request("GET", f"/image/v2/images?limit=2&marker={made[-1]}&sort_key=name"
                             "&sort_dir=asc")
    assert r.json()["images"] == [] and "next" not in r.json()
    r = cloud.request("GET", f"/image/v2/images?sort_key=name&sort_dir=desc&marker={made[3]}")
    assert [i["id"] for i in r.json()["images"]] == made[2::-1]


def test_list_sorting(cloud):
    create_image(cloud, name="b", disk_format="qcow2")
    create_image(cloud, name="a", disk_format="raw")
    create_image(cloud, name="c", disk_format="qcow2")
    assert _names(cloud, "?sort_key=name&sort_dir=asc") == ["a", "b", "c"]
    assert _names(cloud, "?sort=disk_format:asc,name:desc") == ["c", "b", "a"]
    assert _names(cloud, "?sort_key=disk_format&sort_key=name&sort_dir=desc&sort_dir=asc") \
        == ["a", "b", "c"]
    assert _names(cloud, "?sort=name") == ["c", "b", "a"]  # desc by default


@pytest.mark.parametrize("query, words", [
    ("?limit=x", ["limit"]), ("?limit=-1", ["limit"]),
    ("?sort_key=owner", ["sort key"]), ("?sort_dir=up", ["sort direction"]),
    ("?sort=name:asc&sort_key=name", ["combined"]),
    ("?sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=desc", ["sort dirs"]),
    ("?marker=00000000-0000-0000-0000-000000000000", ["Marker"]),
    ("?marker=nope", ["Marker"]), ("?visibility=everyone", ["visibility"]),
    ("?member_status=maybe", ["status"]), ("?size_min=big", ["size_min"]),
    ("?protected=maybe", ["protected"]), ("?os_hidden=2", ["os_hidden"]),
    ("?created_at=gt:yesterday", ["created_at"]), ("?changes-since=2020-01-01", ["v2"]),
    ("?name=in:%22unclosed", ["quote"]),
])
def test_list_refuses_bad_queries(cloud, query, words):
    assert_glance_error(cloud.request("GET", f"/image/v2/images{query}"), 400, *words)


def test_list_filters(cloud):
    a = create_image(cloud, name="alpha", disk_format="qcow2", tags=["x", "y"],
                     os_distro="debian", min_ram=512)
    b = create_image(cloud, name="beta, the second", tags=["x"], protected=True)
    c = create_image(cloud, name="gamma", visibility="private", os_distro="fedora")
    upload(cloud, c["id"], b"0123456789")
    assert _names(cloud, "?name=alpha") == ["alpha"]
    assert sorted(_names(cloud, '?name=in:alpha,"beta,%20the%20second"')) == [
        "alpha", "beta, the second"]
    assert _names(cloud, f"?id={b['id']}") == ["beta, the second"]
    assert sorted(_names(cloud, f"?id=in:{a['id']},{c['id']}")) == ["alpha", "gamma"]
    assert _names(cloud, "?status=active") == ["gamma"]
    assert sorted(_names(cloud, "?status=in:queued,saving")) == ["alpha", "beta, the second"]
    assert _names(cloud, "?disk_format=qcow2") == ["alpha"]
    assert len(_names(cloud, "?container_format=bare")) == 3
    assert _names(cloud, "?visibility=private") == ["gamma"]
    assert _names(cloud, "?tag=x&tag=y") == ["alpha"]
    assert sorted(_names(cloud, "?tag=x")) == ["alpha", "beta, the second"]
    assert _names(cloud, "?protected=true") == ["beta, the second"]
    assert _names(cloud, "?os_distro=fedora") == ["gamma"]
    assert _names(cloud, "?min_ram=512") == ["alpha"]
    assert _names(cloud, "?size_min=5&size_max=10") == ["gamma"]
    assert _names(cloud, "?size_min=11") == []
    assert _names(cloud, f"?owner={cloud.admin_project_id}&name=gamma") == ["gamma"]
    assert len(_names(cloud, "?created_at=gte:2000-01-01T00:00:00Z")) == 3
    assert _names(cloud, "?created_at=lt:2000-01-01T00:00:00Z") == []
    assert len(_names(cloud, "?updated_at=neq:2000-01-01T00:00:00Z")) == 3
    assert _names(cloud, "?checksum=781e5e245d69b566979b86e28d23f2c7") == ["gamma"]


def test_hidden_images_are_listed_only_on_request(cloud):
    create_image(cloud, name="shown")
    create_image(cloud, name="hidden", os_hidden=True)
    assert _names(cloud) == ["shown"]
    assert _names(cloud, "?os_hidden=true") == ["hidden"]


def test_list_limit_is_capped(cloud):
    cloud.config.image.api_limit_max = 2
    for n in range(3):
        create_image(cloud, name=str(n))
    r = cloud.request("GET", "/image/v2/images?limit=100")
    assert len(r.json()["images"]) == 2 and "next" in r.json()


# -- update ---------------------------------------------------------------------------

def test_patch_add_replace_remove(cloud):
    image = create_image(cloud, name="before", os_distro="debian")
    after = patch(cloud, image["id"], [
        {"op": "replace", "path": "/name", "value": "after"},
        {"op": "add", "path": "/os_version", "value": "12"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "add", "path": "/min_ram", "value": 256},
        {"op": "replace", "path": "/tags", "value": ["t1", "t2"]},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "add", "path": "/a~1b", "value": "slash"},
        {"op": "replace", "path": "/disk_format", "value": "qcow2"},
        {"op": "replace", "path": "/visibility", "value": "community"},
    ])
    assert after["name"] == "after" and after["os_version"] == "12"
    assert after["os_distro"] == "ubuntu" and after["min_ram"] == 256
    assert after["tags"] == ["t1", "t2"] and after["protected"] is True
    assert after["a/b"] == "slash" and after["disk_format"] == "qcow2"
    assert after["visibility"] == "community"
    assert after["updated_at"] >= image["updated_at"]
    after = patch(cloud, image["id"], [{"op": "remove", "path": "/os_version"},
                                       {"op": "add", "path": "/os_distro", "value": "arch"},
                                       {"op": "replace", "path": "/name", "value": None}])
    assert "os_version" not in after and after["os_distro"] == "arch"
    assert after["name"] is None
    assert show(cloud, image["id"]) == after


def test_patch_draft4_media_type(cloud):
    image = create_image(cloud, name="old")
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}",
                      json=[{"replace": "/name", "value": "new"}],
                      headers={"Content-Type": "application/openstack-images-v2.0-json-patch"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "new"


def test_patch_needs_the_json_patch_media_type(cloud):
    image = create_image(cloud)
    for content_type in ("application/json", "application/json-patch+json", None):
        headers = {"Content-Type": content_type} if content_type else {}
        r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", headers=headers,
                          content=b'[{"op": "replace", "path": "/name", "value": "x"}]')
        assert_glance_error(r, 415, "openstack-images-v2.1-json-patch")
        assert "openstack-images-v2.1-json-patch" in r.headers["Accept-Patch"]


@pytest.mark.parametrize("ops, status, words", [
    ({"op": "replace"}, 400, ["array"]),
    (["x"], 400, ["objects"]),
    ([{"op": "move", "path": "/name", "value": "x"}], 400, ["move"]),
    ([{"op": "replace", "value": "x"}], 400, ["path"]),
    ([{"op": "replace", "path": "name", "value": "x"}], 400, ["/"]),
    ([{"op": "replace", "path": "/name/first", "value": "x"}], 400, ["pointer"]),
    ([{"op": "replace", "path": "/", "value": "x"}], 400, ["pointer"]),
    ([{"op": "replace", "path": "/a~2", "value": "x"}], 400, ["~"]),
    ([{"op": "replace", "path": "/name"}], 400, ["value"]),
    ([{"op": "replace", "path": "/min_disk", "value": "1"}], 400, ["min_disk"]),
    ([{"op": "replace", "path": "/visibility", "value": "all"}], 400, ["visibility"]),
    ([{"op": "add", "path": "/os_distro", "value": 1}], 400, ["os_distro"]),
    ([{"op": "replace", "path": "/status", "value": "active"}], 403, ["read-only"]),
    ([{"op": "replace", "path": "/id", "value": "x"}], 403, ["read-only"]),
    ([{"op": "add", "path": "/checksum", "value": "x"}], 403, ["read-only"]),
    ([{"op": "add", "path": "/os_glance_x", "value": "x"}], 403, ["reserved"]),
    ([{"op": "remove", "path": "/name"}], 403, ["may not be removed"]),
    ([{"op": "replace", "path": "/nope", "value": "x"}], 409, ["does not exist"]),
    ([{"op": "remove", "path": "/nope"}], 409, ["does not exist"]),
])
def test_patch_refuses_bad_changes(cloud, ops, status, words):
    image = create_image(cloud, name="same")
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", json=ops, headers=PATCH)
    assert_glance_error(r, status, *words)
    assert show(cloud, image["id"]) == image  # nothing changed


def test_patch_all_or_nothing(cloud):
    image = create_image(cloud, name="same")
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", headers=PATCH, json=[
        {"op": "replace", "path": "/name", "value": "changed"},
        {"op": "remove", "path": "/missing"}])
    assert_glance_error(r, 409)
    assert show(cloud, image["id"])["name"] == "same"


def test_formats_change_only_while_queued(cloud):
    image = create_image(cloud)
    upload(cloud, image["id"], b"data")
    ops = [{"op": "replace", "path": "/disk_format", "value": "qcow2"}]
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", json=ops, headers=PATCH)
    assert_glance_error(r, 403, "queued")
    # setting the same value is no change
    patch(cloud, image["id"], [{"op": "replace", "path": "/disk_format", "value": "raw"}])


def test_property_and_tag_quotas(cloud):
    cloud.config.image.image_property_quota = 2
    cloud.config.image.image_tag_quota = 2
    r = cloud.request("POST", "/image/v2/images", json={"a": "1", "b": "2", "c": "3"})
    assert_glance_error(r, 413, "properties")
    r = cloud.request("POST", "/image/v2/images", json={"tags": ["1", "2", "3"]})
    assert_glance_error(r, 413, "tags")
    image = create_image(cloud, a="1", b="2", tags=["1", "2"])
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", headers=PATCH,
                      json=[{"op": "add", "path": "/c", "value": "3"}])
    assert_glance_error(r, 413)
    r = cloud.request("PUT", f"/image/v2/images/{image['id']}/tags/3")
    assert_glance_error(r, 413)


# -- delete, protected ----------------------------------------------------------------

def test_delete(cloud):
    image = create_image(cloud)
    upload(cloud, image["id"], b"some data")
    r = cloud.request("DELETE", f"/image/v2/images/{image['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{image['id']}"), 404)
    assert_glance_error(cloud.request("DELETE", f"/image/v2/images/{image['id']}"), 404)


def test_protected_images_cannot_be_deleted(cloud):
    image = create_image(cloud, protected=True)
    r = cloud.request("DELETE", f"/image/v2/images/{image['id']}")
    assert_glance_error(r, 403, "protected")
    patch(cloud, image["id"], [{"op": "replace", "path": "/protected", "value": False}])
    assert cloud.request("DELETE", f"/image/v2/images/{image['id']}").status_code == 204


# -- tags -----------------------------------------------------------------------------

def test_tags(cloud):
    image = create_image(cloud, tags=["one"])
    base = f"/image/v2/images/{image['id']}/tags"
    assert cloud.request("PUT", f"{base}/two").status_code == 204
    assert cloud.request("PUT", f"{base}/two").status_code == 204  # already there
    assert show(cloud, image["id"])["tags"] == ["one", "two"]
    assert cloud.request("DELETE", f"{base}/one").status_code == 204
    assert show(cloud, image["id"])["tags"] == ["two"]
    assert_glance_error(cloud.request("DELETE", f"{base}/one"), 404)
    assert_glance_error(cloud.request("PUT", f"{base}/{'t' * 256}"), 400)
    missing = "/image/v2/images/00000000-0000-0000-0000-000000000000/tags/x"
    assert_glance_error(cloud.request("PUT", missing), 404)


# -- deactivate / reactivate ----------------------------------------------------------

def test_deactivate_and_reactivate(cloud):
    image = create_image(cloud)
    actions = f"/image/v2/images/{image['id']}/actions"
    r = cloud.request("POST", f"{actions}/deactivate")
    assert_glance_error(r, 403, "queued")  # only active images
    upload(cloud, image["id"], b"data")
    assert cloud.request("POST", f"{actions}/deactivate").status_code == 204
    assert cloud.request("POST", f"{actions}/deactivate").status_code == 204  # no-op
    assert show(cloud, image["id"])["status"] == "deactivated"
    # an administrator may still read the data
    assert cloud.request("GET", f"/image/v2/images/{image['id']}/file").content == b"data"
    assert cloud.request("POST", f"{actions}/reactivate").status_code == 204
    assert show(cloud, image["id"])["status"] == "active"
    assert cloud.request("POST", f"{actions}/reactivate").status_code == 204
    assert cloud.request("POST", f"{actions}/explode").status_code in (404, 405)


# -- schemas and info -----------------------------------------------------------------

def test_schemas(cloud):
    image = cloud.request("GET", "/image/v2/schemas/image").json()
    assert image["name"] == "image"
    assert set(image["properties"]) >= GLANCE_FIELDS
    assert image["additionalProperties"] == {"type": "string"}
    assert image["properties"]["status"]["readOnly"] is True
    assert "qcow2" in image["properties"]["disk_format"]["enum"]
    images = cloud.request("GET", "/image/v2/schemas/images").json()
    assert images["name"] == "images"
    assert images["properties"]["images"]["items"] == image
    member = cloud.request("GET", "/image/v2/schemas/member").json()
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    members = cloud.request("GET", "/image/v2/schemas/members").json()
    assert members["properties"]["members"]["items"] == member


def test_info(cloud):
    r = cloud.request("GET", "/image/v2/info/import")
    assert r.json() == {"import-methods": {"description": "Import methods available.",
                                           "type": "array", "value": ["glance-direct"]}}
    stores = cloud.request("GET", "/image/v2/info/stores").json()["stores"]
    assert stores == [{"id": "local", "description": stores[0]["description"],
                       "default": "true"}]
    detail = cloud.request("GET", "/image/v2/info/stores/detail").json()["stores"]
    assert detail[0]["type"] == "file" and detail[0]["properties"]["data_dir"]
    token, _ = make_project_member(cloud, "viewer")
    r = cloud.request("GET", "/image/v2/info/stores/detail", token=token)
    assert_glance_error(r, 403)


def test_unknown_paths_and_methods_are_glance_errors(cloud):
    assert_glance_error(cloud.request("GET", "/image/v2/nothing"), 404)
    assert_glance_error(cloud.request("PUT", "/image/v2/images"), 405)


def test_odd_input_is_never_a_500(cloud):
    image = create_image(cloud)
    iid = image["id"]
    calls = [
        ("POST", "/image/v2/images", {"content": b"\xff\xfe", "headers": {
            "Content-Type": "application/json"}}),
        ("POST", "/image/v2/images", {"json": {"name": "a\x00b"}}),
        ("POST", "/image/v2/images", {"json": {"tags": [None]}}),
        ("POST", "/image/v2/images", {"json": {"": "empty key"}}),
        ("POST", "/image/v2/images", {"json": {"min_ram": 2**70}}),
        ("POST", "/image/v2/images", {"json": {"owner": ["x"]}}),
        ("PATCH", f"/image/v2/images/{iid}", {"content": b"\xff", "headers": PATCH}),
        ("PATCH", f"/image/v2/images/{iid}", {"json": [{"op": "add", "path": 5,
                                                         "value": 1}], "headers": PATCH}),
        ("PATCH", f"/image/v2/images/{iid}", {"json": [{"op": "add", "path": "/tags",
                                                         "value": "x"}], "headers": PATCH}),
        ("PATCH", f"/image/v2/images/{iid}", {"json": [{"op": ["add"], "path": "/x",
                                                         "value": "x"}], "headers": PATCH}),
        ("GET", "/image/v2/images?limit=1e3", {}),
        ("GET", "/image/v2/images?marker=%00", {}),
        ("GET", "/image/v2/images?created_at=gt:2020-01-01T00:00:00%2B05:00", {}),
        ("GET", "/image/v2/images?size_min=99999999999999999999999", {}),
        ("GET", "/image/v2/images?name=in:", {}),
        ("GET", "/image/v2/images?sort=,", {}),
        ("GET", "/image/v2/images?%00=%00", {}),
        ("PUT", f"/image/v2/images/{iid}/tags/%00", {}),
        ("POST", f"/image/v2/images/{iid}/members", {"json": {"member": "a\x00"}}),
        ("POST", f"/image/v2/images/{iid}/import", {"json": {"method": "glance-direct"}}),
        ("GET", f"/image/v2/images/{iid}/file", {"headers": {"Range": "bytes=-0"}}),
        ("PUT", f"/image/v2/images/{iid}/file", {"content": b"x", "headers": {
            "Content-Type": "application/octet-stream", "x-openstack-image-size": "1e3"}}),
    ]
    for method, path, kw in calls:
        r = cloud.request(method, path, **kw)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
