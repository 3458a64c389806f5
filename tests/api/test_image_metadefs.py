"""Image metadata definitions, tasks and the empty image id: in process."""

from __future__ import annotations

from tests.api.image_helpers import make_project_member

NS = "/image/v2/metadefs/namespaces"


def ok(r, status: int = 200):
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def error(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    return str(body)


def test_namespace_lifecycle_and_visibility(cloud):
    types = ok(cloud.request("GET", "/image/v2/metadefs/resource_types"))["resource_types"]
    assert "OS::Glance::Image" in [t["name"] for t in types]
    body = ok(cloud.request("POST", NS, json={
        "namespace": "hw", "display_name": "Hardware", "description": "guest hardware",
        "visibility": "public", "protected": True,
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
        "properties": {"hw_rng": {"title": "RNG", "type": "boolean"}}}), 201)
    assert body["namespace"] == "hw" and body["protected"] is True
    assert body["self"] == "/v2/metadefs/namespaces/hw"
    assert body["schema"] == "/v2/schemas/metadefs/namespace"
    assert body["resource_type_associations"][0]["prefix"] == "hw_"
    error(cloud.request("POST", NS, json={"namespace": "hw"}), 409)
    ok(cloud.request("POST", NS, json={"namespace": "secret"}), 201)  # private

    token, _ = make_project_member(cloud, "reader-of-defs")
    listed = ok(cloud.request("GET", NS, token=token))["namespaces"]
    assert [n["namespace"] for n in listed] == ["hw"]  # not the admin's private one
    assert cloud.request("GET", f"{NS}/secret", token=token).status_code == 404
    assert {n["namespace"] for n in ok(cloud.request("GET", NS))["namespaces"]} == {
        "hw", "secret"}
    assert [n["namespace"] for n in ok(cloud.request(
        "GET", f"{NS}?resource_types=OS::Glance::Image"))["namespaces"]] == ["hw"]
    assert [n["namespace"] for n in ok(cloud.request(
        "GET", f"{NS}?visibility=private"))["namespaces"]] == ["secret"]
    shown = ok(cloud.request("GET", f"{NS}/hw", token=token))
    assert shown["properties"] == {"hw_rng": {"title": "RNG", "type": "boolean"}}
    # members read, administrators write
    error(cloud.request("POST", NS, token=token, json={"namespace": "mine"}), 403)
    error(cloud.request("DELETE", f"{NS}/hw", token=token), 403)

    error(cloud.request("DELETE", f"{NS}/hw"), 403)  # protected
    body = ok(cloud.request("PUT", f"{NS}/hw", json={
        "namespace": "hw", "visibility": "private", "protected": False,
        "display_name": "Hardware"}))
    assert body["visibility"] == "private" and body["protected"] is False
    assert cloud.request("GET", f"{NS}/hw", token=token).status_code == 404
    renamed = ok(cloud.request("PUT", f"{NS}/hw", json={"namespace": "hardware"}))
    assert renamed["namespace"] == "hardware"
    assert ok(cloud.request("GET", f"{NS}/hardware"))["properties"]["hw_rng"]["type"] == \
        "boolean"
    assert cloud.request("DELETE", f"{NS}/hardware").status_code == 204
    assert cloud.request("GET", f"{NS}/hardware").status_code == 404
    for body in ({}, {"namespace": ""}, {"namespace": "x" * 81},
                 {"namespace": "v", "visibility": "shared"},
                 {"namespace": "p", "properties": {"k": {"type": "string"}}}):
        error(cloud.request("POST", NS, json=body), 400)


def test_objects_properties_tags_associations(cloud):
    ok(cloud.request("POST", NS, json={"namespace": "parts", "visibility": "public"}), 201)
    base = f"{NS}/parts"
    obj = ok(cloud.request("POST", f"{base}/objects", json={
        "name": "cpu", "required": ["cores"],
        "properties": {"cores": {"title": "Cores", "type": "integer"}}}), 201)
    assert obj["self"] == "/v2/metadefs/namespaces/parts/objects/cpu"
    assert obj["required"] == ["cores"]
    error(cloud.request("POST", f"{base}/objects", json={"name": "cpu"}), 409)
    assert [o["name"] for o in ok(cloud.request("GET", f"{base}/objects"))["objects"]] == [
        "cpu"]
    moved = ok(cloud.request("PUT", f"{base}/objects/cpu", json={"name": "processor"}))
    assert moved["name"] == "processor" and moved["created_at"] == obj["created_at"]
    error(cloud.request("GET", f"{base}/objects/cpu"), 404)
    assert cloud.request("DELETE", f"{base}/objects/processor").status_code == 204
    assert ok(cloud.request("GET", f"{base}/objects"))["objects"] == []

    enum = ["kvm", "qemu"]
    prop = ok(cloud.request("POST", f"{base}/properties", json={
        "name": "hypervisor", "title": "Hypervisor", "type": "string", "enum": enum}), 201)
    assert prop == {"name": "hypervisor", "title": "Hypervisor", "type": "string",
                    "enum": enum}
    assert ok(cloud.request("GET", f"{base}/properties/hypervisor"))["enum"] == enum
    assert ok(cloud.request("PUT", f"{base}/properties/hypervisor", json={
        "name": "hypervisor", "title": "HV", "type": "string"}))["title"] == "HV"
    assert list(ok(cloud.request("GET", f"{base}/properties"))["properties"]) == [
        "hypervisor"]
    error(cloud.request("POST", f"{base}/properties", json={"name": "x", "type": "str"}),
          400)
    assert cloud.request("DELETE", f"{base}/properties/hypervisor").status_code == 204
    assert ok(cloud.request("GET", f"{base}/properties"))["properties"] == {}

    tags = ok(cloud.request("POST", f"{base}/tags", json={
        "tags": [{"name": "a"}, {"name": "b"}]}), 201)
    assert tags == {"tags": [{"name": "a"}, {"name": "b"}]}
    ok(cloud.request("POST", f"{base}/tags/c"), 201)
    assert [t["name"] for t in ok(cloud.request("GET", f"{base}/tags"))["tags"]] == [
        "a", "b", "c"]
    assert ok(cloud.request("PUT", f"{base}/tags/c", json={"name": "d"}))["name"] == "d"
    assert ok(cloud.request("GET", f"{base}/tags/d"))["name"] == "d"
    # a list replaces the tags unless X-Openstack-Append says otherwise
    ok(cloud.request("POST", f"{base}/tags", json={"tags": [{"name": "e"}]},
                     headers={"X-Openstack-Append": "True"}), 201)
    assert len(ok(cloud.request("GET", f"{base}/tags"))["tags"]) == 4
    ok(cloud.request("POST", f"{base}/tags", json={"tags": [{"name": "z"}]}), 201)
    assert [t["name"] for t in ok(cloud.request("GET", f"{base}/tags"))["tags"]] == ["z"]
    assert cloud.request("DELETE", f"{base}/tags").status_code == 204
    assert ok(cloud.request("GET", f"{base}/tags"))["tags"] == []

    assoc = ok(cloud.request("POST", f"{base}/resource_types", json={
        "name": "OS::Nova::Flavor", "prefix": "hw:"}), 201)
    assert assoc["name"] == "OS::Nova::Flavor" and assoc["prefix"] == "hw:"
    assert [a["name"] for a in ok(cloud.request("GET", f"{base}/resource_types"))[
        "resource_type_associations"]] == ["OS::Nova::Flavor"]
    assert cloud.request("DELETE",
                         f"{base}/resource_types/OS::Nova::Flavor").status_code == 204
    assert ok(cloud.request("GET", f"{base}/resource_types"))[
        "resource_type_associations"] == []
    error(cloud.request("GET", f"{NS}/nowhere/objects"), 404)


def test_schemas(cloud):
    for path, name in [("namespace", "namespace"), ("namespaces", "namespaces"),
                       ("object", "object"), ("objects", "objects"),
                       ("property", "property"), ("properties", "properties"),
                       ("tag", "tag"), ("tags", "tags"),
                       ("resource_type", "resource_type_association"),
                       ("resource_types", "resource_type_associations")]:
        assert ok(cloud.request("GET", f"/image/v2/schemas/metadefs/{path}"))["name"] == name
    assert ok(cloud.request("GET", "/image/v2/schemas/task"))["name"] == "task"


def test_tasks_refuse_url_imports_and_empty_image_ids(cloud):
    r = cloud.request("POST", "/image/v2/tasks", json={"type": "import", "input": {
        "import_from": "http://example.invalid/x.qcow2", "import_from_format": "qcow2",
        "image_properties": {"disk_format": "qcow2", "container_format": "bare"}}})
    assert "not enabled" in error(r, 400)
    error(cloud.request("POST", "/image/v2/tasks", json={"type": "export", "input": {}}),
          400)
    assert ok(cloud.request("GET", "/image/v2/tasks"))["tasks"] == []
    error(cloud.request("GET", "/image/v2/tasks/00000000-0000-4000-8000-000000000001"), 404)
    token, _ = make_project_member(cloud, "tasker")
    error(cloud.request("GET", "/image/v2/tasks", token=token), 403)
    for method in ("GET", "DELETE"):
        error(cloud.request(method, "/image/v2/images/"), 404)
