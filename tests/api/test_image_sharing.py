"""Who sees and changes which image: visibility (public, community, shared, private),
the members API between two projects, and Glance's 403/404 answers, in process."""

from __future__ import annotations

import pytest

from tests.api.image_helpers import (
    OCTET,
    PATCH,
    assert_glance_error,
    create_image,
    make_project_member,
    patch,
    show,
    upload,
)


@pytest.fixture
def alice(cloud):
    """A member of project alice-project: (token, project id)."""
    return make_project_member(cloud, "alice")


@pytest.fixture
def bob(cloud):
    return make_project_member(cloud, "bob")


def names(cloud, token, query: str = "") -> set[str]:
    r = cloud.request("GET", f"/image/v2/images{query}", token=token)
    assert r.status_code == 200, r.text
    return {i["name"] for i in r.json()["images"]}


def members_url(image_id: str, member: str = "") -> str:
    return f"/image/v2/images/{image_id}/members" + (f"/{member}" if member else "")


def test_users_create_images_in_their_own_project(cloud, alice, bob):
    token, project = alice
    image = create_image(cloud, token=token, name="mine")
    assert image["owner"] == project and image["visibility"] == "shared"
    r = cloud.request("POST", "/image/v2/images", token=token,
                      json={"name": "theirs", "owner": bob[1]})
    assert_glance_error(r, 403, "another project")
    # an administrator may create images for any project
    assert create_image(cloud, owner=bob[1])["owner"] == bob[1]


def test_only_admins_publicize(cloud, alice):
    token, _ = alice
    r = cloud.request("POST", "/image/v2/images", token=token, json={"visibility": "public"})
    assert_glance_error(r, 403, "publicize_image")
    image = create_image(cloud, token=token, visibility="community")
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", token=token, headers=PATCH,
                      json=[{"op": "replace", "path": "/visibility", "value": "public"}])
    assert_glance_error(r, 403, "publicize_image")
    patch(cloud, image["id"], [{"op": "replace", "path": "/visibility", "value": "public"}])
    # owners may change other fields of a public image, and unpublish it
    patch(cloud, image["id"], [{"op": "replace", "path": "/visibility", "value": "private"}],
          token=token)


def test_only_admins_change_the_owner(cloud, alice, bob):
    token, _ = alice
    image = create_image(cloud, token=token)
    r = cloud.request("PATCH", f"/image/v2/images/{image['id']}", token=token, headers=PATCH,
                      json=[{"op": "replace", "path": "/owner", "value": bob[1]}])
    assert_glance_error(r, 403, "Owner")
    assert patch(cloud, image["id"], [{"op": "replace", "path": "/owner",
                                       "value": bob[1]}])["owner"] == bob[1]
    assert names(cloud, bob[0]) == {None}
    assert names(cloud, token) == set()


def test_visibility(cloud, alice, bob):
    a_token, _ = alice
    b_token, _ = bob
    for visibility in ("private", "shared", "community"):
        create_image(cloud, token=a_token, name=f"alice-{visibility}", visibility=visibility)
    create_image(cloud, name="admin-public", visibility="public")
    create_image(cloud, name="admin-private", visibility="private")
    create_image(cloud, name="admin-community", visibility="community")
    # the owner lists its own images (community included) and public ones
    assert names(cloud, a_token) == {"alice-private", "alice-shared", "alice-community",
                                     "admin-public"}
    # others see public ones; community images only when asked for
    assert names(cloud, b_token) == {"admin-public"}
    assert names(cloud, b_token, "?visibility=community") == {"alice-community",
                                                               "admin-community"}
    assert names(cloud, b_token, "?visibility=all") == {"admin-public", "alice-community",
                                                        "admin-community"}
    assert names(cloud, b_token, "?visibility=private") == set()
    # an administrator lists everything but others' community images
    assert names(cloud, "admin") == {"alice-private", "alice-shared", "admin-public",
                                     "admin-private", "admin-community"}


def test_what_others_may_not_do_is_403_or_404(cloud, alice, bob):
    a_token, _ = alice
    b_token, _ = bob
    private = create_image(cloud, token=a_token, name="private", visibility="private")
    community = create_image(cloud, token=a_token, name="community", visibility="community")
    upload(cloud, community["id"], b"community data", token=a_token)
    # invisible: every call is a 404, so its existence is not revealed
    pid = private["id"]
    for method, path, kw in (
            ("GET", f"/image/v2/images/{pid}", {}),
            ("DELETE", f"/image/v2/images/{pid}", {}),
            ("PATCH", f"/image/v2/images/{pid}", {"headers": PATCH, "json": []}),
            ("PUT", f"/image/v2/images/{pid}/file", {"headers": OCTET, "content": b"x"}),
            ("GET", f"/image/v2/images/{pid}/file", {}),
            ("PUT", f"/image/v2/images/{pid}/tags/t", {}),
            ("POST", f"/image/v2/images/{pid}/actions/deactivate", {}),
            ("GET", members_url(pid), {})):
        assert_glance_error(cloud.request(method, path, token=b_token, **kw), 404)
    # visible but not theirs: reading works, changing is a 403
    cid = community["id"]
    assert show(cloud, cid, token=b_token)["name"] == "community"
    r = cloud.request("GET", f"/image/v2/images/{cid}/file", token=b_token)
    assert r.status_code == 200 and r.content == b"community data"
    for method, path, kw in (
            ("DELETE", f"/image/v2/images/{cid}", {}),
            ("PATCH", f"/image/v2/images/{cid}",
             {"headers": PATCH, "json": [{"op": "replace", "path": "/name", "value": "x"}]}),
            ("PUT", f"/image/v2/images/{cid}/tags/t", {}),
            ("DELETE", f"/image/v2/images/{cid}/tags/t", {}),
            ("POST", f"/image/v2/images/{cid}/actions/deactivate", {})):
        assert_glance_error(cloud.request(method, path, token=b_token, **kw), 403)
    image = create_image(cloud, token=b_token)
    r = cloud.request("PUT", f"/image/v2/images/{image['id']}/file", token=a_token,
                      content=b"x", headers=OCTET)
    assert_glance_error(r, 404)


def test_readers_may_look_but_not_touch(cloud, alice):
    a_token, project = alice
    ident = cloud.services.identity
    reader = ident.users.create(name="reader", password="reader-secret", domain_id="default")
    with ident.db.session() as s:
        ident.assignments.grant(s, "UserProject", reader.id, project,
                                ident.roles.find("reader").id)
    r_token = cloud.login("reader", "reader-secret", project="alice-project")
    image = create_image(cloud, token=a_token, name="team")
    upload(cloud, image["id"], b"team data", token=a_token)
    assert show(cloud, image["id"], token=r_token)["name"] == "team"
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{image['id']}/file",
                                      token=r_token), 403)
    assert_glance_error(cloud.request("DELETE", f"/image/v2/images/{image['id']}",
                                      token=r_token), 403)
    assert_glance_error(cloud.request("POST", "/image/v2/images", token=r_token, json={}),
                        403)


def test_deactivated_data_is_for_admins(cloud, alice):
    token, _ = alice
    image = create_image(cloud, token=token, visibility="community")
    upload(cloud, image["id"], b"data", token=token)
    r = cloud.request("POST", f"/image/v2/images/{image['id']}/actions/deactivate",
                      token=token)
    assert r.status_code == 204
    r = cloud.request("GET", f"/image/v2/images/{image['id']}/file", token=token)
    assert_glance_error(r, 403, "deactivated")
    assert cloud.request("GET", f"/image/v2/images/{image['id']}/file").content == b"data"


def test_sharing_between_two_projects(cloud, alice, bob):
    a_token, a_project = alice
    b_token, b_project = bob
    image = create_image(cloud, token=a_token, name="shared-image")
    upload(cloud, image["id"], b"shared data", token=a_token)
    iid = image["id"]
    # before sharing, bob cannot see it
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{iid}", token=b_token), 404)

    r = cloud.request("POST", members_url(iid), token=a_token, json={"member": b_project})
    assert r.status_code == 200, r.text
    member = r.json()
    assert member == {"image_id": iid, "member_id": b_project, "status": "pending",
                      "created_at": member["created_at"],
                      "updated_at": member["updated_at"], "schema": "/v2/schemas/member"}
    assert_glance_error(cloud.request("POST", members_url(iid), token=a_token,
                                      json={"member": b_project}), 409)

    # pending: bob may use the image, but it is not in his list unless asked for
    assert show(cloud, iid, token=b_token)["name"] == "shared-image"
    r = cloud.request("GET", f"/image/v2/images/{iid}/file", token=b_token)
    assert r.content == b"shared data"
    assert names(cloud, b_token) == set()
    assert names(cloud, b_token, "?member_status=pending") == {"shared-image"}
    assert names(cloud, b_token, "?member_status=all") == {"shared-image"}

    # only the member sets its status; the owner cannot accept for it
    r = cloud.request("PUT", members_url(iid, b_project), token=a_token,
                      json={"status": "accepted"})
    assert_glance_error(r, 403)
    r = cloud.request("PUT", members_url(iid, b_project), token=b_token,
                      json={"status": "maybe"})
    assert_glance_error(r, 400, "Status")
    r = cloud.request("PUT", members_url(iid, b_project), token=b_token,
                      json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert names(cloud, b_token) == {"shared-image"}
    assert names(cloud, b_token, "?visibility=shared") == {"shared-image"}
    assert names(cloud, b_token, "?member_status=rejected") == set()

    # the owner sees all members; a member sees only itself
    carol_token, carol_project = make_project_member(cloud, "carol")
    cloud.request("POST", members_url(iid), token=a_token, json={"member": carol_project})
    r = cloud.request("GET", members_url(iid), token=a_token)
    assert r.json()["schema"] == "/v2/schemas/members"
    assert {m["member_id"] for m in r.json()["members"]} == {b_project, carol_project}
    r = cloud.request("GET", members_url(iid), token=b_token)
    assert [m["member_id"] for m in r.json()["members"]] == [b_project]
    assert cloud.request("GET", members_url(iid, b_project), token=b_token).json()[
        "status"] == "accepted"
    assert_glance_error(cloud.request("GET", members_url(iid, carol_project),
                                      token=b_token), 404)
    # members may not share further, change or delete the image
    r = cloud.request("POST", members_url(iid), token=b_token, json={"member": "x"})
    assert_glance_error(r, 403)
    assert_glance_error(cloud.request("DELETE", members_url(iid, carol_project),
                                      token=b_token), 403)
    assert_glance_error(cloud.request("DELETE", f"/image/v2/images/{iid}", token=b_token),
                        403)

    # rejecting hides it from lists again; removing the member revokes access
    cloud.request("PUT", members_url(iid, b_project), token=b_token,
                  json={"status": "rejected"})
    assert names(cloud, b_token) == set()
    assert show(cloud, iid, token=b_token)["id"] == iid
    r = cloud.request("DELETE", members_url(iid, b_project), token=a_token)
    assert r.status_code == 204
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{iid}", token=b_token), 404)
    assert_glance_error(cloud.request("DELETE", members_url(iid, b_project), token=a_token),
                        404)
    assert carol_token  # carol still has access
    assert show(cloud, iid, token=carol_token)["id"] == iid


def test_members_only_for_shared_images(cloud, alice, bob):
    a_token, _ = alice
    _, b_project = bob
    image = create_image(cloud, token=a_token, visibility="private")
    iid = image["id"]
    r = cloud.request("POST", members_url(iid), token=a_token, json={"member": b_project})
    assert_glance_error(r, 403, "shared")
    assert_glance_error(cloud.request("GET", members_url(iid), token=a_token), 403)
    assert_glance_error(cloud.request("GET", members_url(iid, b_project), token=a_token),
                        404)
    # a member of an image that stops being shared loses access
    patch(cloud, iid, [{"op": "replace", "path": "/visibility", "value": "shared"}],
          token=a_token)
    cloud.request("POST", members_url(iid), token=a_token, json={"member": b_project})
    assert show(cloud, iid, token=bob[0])["id"] == iid
    patch(cloud, iid, [{"op": "replace", "path": "/visibility", "value": "private"}],
          token=a_token)
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{iid}", token=bob[0]), 404)


@pytest.mark.parametrize("body, words", [
    ({}, ["not specified"]), ({"member": ""}, ["empty"]), ({"member": 5}, ["member"]),
    ({"member": "m" * 256}, ["255"]),
])
def test_member_input_is_checked(cloud, body, words):
    image = create_image(cloud)
    r = cloud.request("POST", members_url(image["id"]), json=body)
    assert_glance_error(r, 400, *words)
    r = cloud.request("PUT", members_url(image["id"], "x"), json={})
    assert_glance_error(r, 400)


def test_member_quota(cloud):
    cloud.config.image.image_member_quota = 2
    image = create_image(cloud)
    for member in ("p1", "p2"):
        r = cloud.request("POST", members_url(image["id"]), json={"member": member})
        assert r.status_code == 200
    r = cloud.request("POST", members_url(image["id"]), json={"member": "p3"})
    assert_glance_error(r, 413, "member")


def test_deleting_an_image_removes_its_members(cloud, bob):
    image = create_image(cloud)
    cloud.request("POST", members_url(image["id"]), json={"member": bob[1]})
    cloud.request("DELETE", f"/image/v2/images/{image['id']}")
    with cloud.services.db.session() as s:
        from onestack.db.models import ImageMember
        assert s.query(ImageMember).count() == 0
