"""Identity with the stock ``openstack`` CLI against a real ``onestack up``.

Every CLI call costs a second or two, so each test walks a whole lifecycle.
"""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.e2e


def names(rows, key="Name"):
    return {row[key] for row in rows}


def role_name(cell: str) -> str:
    """``member`` or ``role@Domain`` (domain-specific roles) -> the role's name."""
    return cell.split("@", 1)[0]


def test_token_issue_and_revoke(openstack, extra_clouds, server):
    token = openstack("token", "issue")
    assert set(token) >= {"id", "expires", "project_id", "user_id"}
    assert token["id"]

    def with_token(tok):
        return ["--os-auth-type", "token", "--os-token", tok, "--os-auth-url",
                server.auth_url, "--os-project-name", "admin",
                "--os-project-domain-name", "Default", "--os-identity-api-version", "3"]

    # The token works on its own ...
    again = openstack(*with_token(token["id"]), "token", "issue",
                      cloud_env=extra_clouds.no_cloud)
    assert again["user_id"] == token["user_id"]
    assert again["project_id"] == token["project_id"]
    # ... until it is revoked: then rescoping it is Keystone's 404 (the token method
    # cannot find the token), not a 401
    assert openstack("token", "revoke", token["id"]) == ""
    err = openstack.fails(*with_token(token["id"]), "token", "issue",
                          cloud_env=extra_clouds.no_cloud)
    assert "404" in err.stderr and "revoked" in err.stderr, err


def test_negative_cases(openstack, extra_clouds, server, unique):
    wrong = extra_clouds.add_user(f"wrong-password-{unique}", "admin", "not-the-password",
                                  project="admin")
    err = openstack.fails("token", "issue", cloud_env=wrong)
    assert "401" in err.stderr, err
    assert "requires authentication" in err.stderr, err

    missing = f"e2e-missing-{unique}"
    err = openstack.fails("project", "show", missing)
    # python-openstackclient words it "No project with a name or ID of 'x' exists."
    # (osc-lib) or, since it went through openstacksdk, "No Project found for x".
    assert re.search(rf"No [Pp]roject (with a name or ID of '{missing}' exists|found for "
                     rf"{missing})", err.stderr), err
    # ... which is the API's 404 underneath:
    r = httpx.get(f"{server.auth_url}/projects/{missing}", timeout=10,
                  headers={"X-Auth-Token": server.password_token()})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404, r.text

    name = f"e2e-dup-{unique}"
    project = openstack("project", "create", name)
    try:
        err = openstack.fails("project", "create", name)
        assert "409" in err.stderr, err
    finally:
        openstack("project", "delete", project["id"])


def test_project_lifecycle(openstack, unique):
    name = f"e2e-project-{unique}"
    p = openstack("project", "create", name, "--domain", "default",
                  "--description", "an e2e project", "--property", "team=blue",
                  "--tag", "alpha", "--tag", "beta")
    assert p["name"] == name
    assert p["domain_id"] == "default"
    assert p["parent_id"] == "default"
    assert p["description"] == "an e2e project"
    assert p["enabled"] is True
    assert p["is_domain"] is False
    assert p["team"] == "blue"
    assert sorted(p["tags"]) == ["alpha", "beta"]
    assert re.fullmatch(r"[0-9a-f]{32}", p["id"])

    listed = openstack("project", "list")
    assert {"ID": p["id"], "Name": name} in listed
    assert "admin" in names(listed)
    assert names(openstack("project", "list", "--tags", "beta")) == {name}

    openstack("project", "set", name, "--disable")
    assert openstack("project", "show", p["id"])["enabled"] is False

    openstack("project", "set", name, "--enable", "--description", "changed",
              "--property", "team=red", "--tag", "gamma")
    shown = openstack("project", "show", name)
    assert shown["enabled"] is True
    assert shown["description"] == "changed"
    assert shown["team"] == "red"
    assert sorted(shown["tags"]) == ["alpha", "beta", "gamma"]
    assert shown["id"] == p["id"]

    openstack("project", "delete", name)
    assert name not in names(openstack("project", "list"))
    err = openstack.fails("project", "show", p["id"])
    assert re.search(rf"No [Pp]roject (with a name or ID of '{p['id']}' exists|found for "
                     rf"{p['id']})", err.stderr), err


def test_domain_lifecycle(openstack, unique):
    name = f"e2e-domain-{unique}"
    d = openstack("domain", "create", name, "--description", "an e2e domain")
    assert d["name"] == name and d["enabled"] is True
    assert d["description"] == "an e2e domain"
    assert name in names(openstack("domain", "list"))

    # Keystone refuses to delete an enabled domain.
    err = openstack.fails("domain", "delete", name)
    assert "403" in err.stderr and "disable it first" in err.stderr, err

    openstack("domain", "set", name, "--disable")
    assert openstack("domain", "show", d["id"])["enabled"] is False
    openstack("domain", "delete", name)
    assert name not in names(openstack("domain", "list"))
    err = openstack.fails("domain", "show", d["id"])
    assert re.search(rf"No [Dd]omain (with a name or ID of '{d['id']}' exists|found for "
                     rf"{d['id']})", err.stderr), err


def test_user_group_role_lifecycle(openstack, extra_clouds, unique):
    proj, user, group = f"e2e-up-{unique}", f"e2e-user-{unique}", f"e2e-group-{unique}"
    prior, implied = f"e2e-prior-{unique}", f"e2e-implied-{unique}"
    pw1, pw2 = "first-Secret-1", "second-Secret-2"

    # -- project and user ------------------------------------------------------------
    p = openstack("project", "create", proj, "--domain", "default")
    u = openstack("user", "create", user, "--domain", "default", "--password", pw1,
                  "--project", proj, "--email", f"{user}@example.org",
                  "--description", "an e2e user")
    assert u["name"] == user
    assert u["domain_id"] == "default"
    assert u["default_project_id"] == p["id"]
    assert u["enabled"] is True
    assert "password" not in u
    assert {"ID": u["id"], "Name": user} in openstack("user", "list")
    shown = openstack("user", "show", u["id"])
    assert shown["name"] == user and shown["email"] == f"{user}@example.org"

    # -- group membership ----------------------------------------------------------------
    g = openstack("group", "create", group, "--domain", "default",
                  "--description", "an e2e group")
    assert g["name"] == group and g["domain_id"] == "default"
    openstack("group", "add", "user", group, user)
    assert f"{user} in group {group}" in openstack("group", "contains", "user", group, user)

    # -- roles, an implied role, grants ----------------------------------------------
    r1 = openstack("role", "create", prior)
    r2 = openstack("role", "create", implied)
    assert r1["name"] == prior and r2["name"] == implied
    assert {prior, implied, "admin", "member", "reader"} <= names(openstack("role", "list"))
    rule = openstack("implied", "role", "create", prior, "--implied-role", implied)
    assert rule == {"implies": r2["id"], "prior_role": r1["id"]}

    openstack("role", "add", "--user", user, "--project", proj, "member")
    openstack("role", "add", "--group", group, "--project", proj, prior)

    direct = openstack("role", "assignment", "list", "--user", user, "--names")
    assert [(role_name(a["Role"]), a["User"], a["Project"], a["Group"]) for a in direct] == [
        ("member", f"{user}@Default", f"{proj}@Default", "")]
    by_group = openstack("role", "assignment", "list", "--group", group, "--names")
    assert [(role_name(a["Role"]), a["Group"]) for a in by_group] == [
        (prior, f"{group}@Default")]
    effective = openstack("role", "assignment", "list", "--user", user, "--project", proj,
                          "--effective", "--names")
    # member directly, the prior role through the group, the implied role through it
    assert {"member", prior, implied} <= {role_name(a["Role"]) for a in effective}
    assert {(a["User"], a["Group"], a["Project"]) for a in effective} == {
        (f"{user}@Default", "", f"{proj}@Default")}

    # -- log in as the new user --------------------------------------------------------
    as_user = extra_clouds.add_user(f"user-{unique}", user, pw1, project=proj)
    token = openstack("token", "issue", cloud_env=as_user)
    assert token["user_id"] == u["id"] and token["project_id"] == p["id"]
    mine = openstack("project", "list", "--my-projects", cloud_env=as_user)
    assert [(x["ID"], x["Name"]) for x in mine] == [(p["id"], proj)]
    err = openstack.fails("user", "list", cloud_env=as_user)
    assert "403" in err.stderr, err

    # -- application credentials -------------------------------------------------------
    ac = openstack("application", "credential", "create", f"e2e-ac-{unique}",
                   "--description", "an e2e app cred", cloud_env=as_user)
    # (python-openstackclient >= 7 labels these columns "ID", "Secret", ...)
    assert ac["Secret"] and ac["ID"], ac
    assert ac["Project ID"] == p["id"]
    # without --role it gets the roles the creating token has
    assert {"member", prior, implied} <= {r["name"] for r in ac["Roles"]}, ac["Roles"]
    as_app = extra_clouds.add_app_cred(f"appcred-{unique}", ac["ID"], ac["Secret"])
    token = openstack("token", "issue", cloud_env=as_app)
    assert token["user_id"] == u["id"] and token["project_id"] == p["id"]
    listed = openstack("application", "credential", "list", cloud_env=as_user)
    assert [x["ID"] for x in listed] == [ac["ID"]]
    openstack("application", "credential", "delete", f"e2e-ac-{unique}", cloud_env=as_user)
    err = openstack.fails("token", "issue", cloud_env=as_app)
    assert "401" in err.stderr, err

    # -- password change and disabling -------------------------------------------------
    openstack("user", "set", user, "--password", pw2)
    err = openstack.fails("token", "issue", cloud_env=as_user)
    assert "401" in err.stderr, err
    as_user2 = extra_clouds.add_user(f"user2-{unique}", user, pw2, project=proj)
    assert openstack("token", "issue", cloud_env=as_user2)["user_id"] == u["id"]
    openstack("user", "set", user, "--disable")
    assert openstack("user", "show", user)["enabled"] is False
    err = openstack.fails("token", "issue", cloud_env=as_user2)
    assert "401" in err.stderr, err

    # -- take it all apart ---------------------------------------------------------------
    openstack("role", "remove", "--user", user, "--project", proj, "member")
    openstack("role", "remove", "--group", group, "--project", proj, prior)
    assert openstack("role", "assignment", "list", "--user", user, "--effective") == []
    openstack("group", "remove", "user", group, user)
    proc = openstack.run("group", "contains", "user", group, user)
    assert proc.returncode == 0 and f"{user} not in group {group}" in proc.stderr, proc
    openstack("role", "delete", prior, implied)
    openstack("group", "delete", group)
    openstack("user", "delete", user)
    openstack("project", "delete", proj)
    assert not {prior, implied} & names(openstack("role", "list"))
    assert user not in names(openstack("user", "list"))
    assert group not in names(openstack("group", "list"))


def test_region_service_endpoint_lifecycle(openstack, unique):
    region, svc, svc_type = f"e2e-region-{unique}", f"e2e-svc-{unique}", f"e2e-{unique}"
    url = f"http://127.0.0.1:9/{unique}"

    r = openstack("region", "create", region, "--description", "an e2e region")
    assert r["region"] == region and r["description"] == "an e2e region"
    s = openstack("service", "create", "--name", svc, "--description", "an e2e service",
                  svc_type)
    assert (s["name"], s["type"], s["enabled"]) == (svc, svc_type, True)
    e = openstack("endpoint", "create", "--region", region, s["id"], "public", url)
    assert (e["region"], e["service_id"], e["interface"], e["url"], e["enabled"]) == (
        region, s["id"], "public", url, True)

    assert region in {x["Region"] for x in openstack("region", "list")}
    assert (s["id"], svc, svc_type) in {(x["ID"], x["Name"], x["Type"])
                                        for x in openstack("service", "list")}
    endpoints = openstack("endpoint", "list", "--service", s["id"])
    assert [(x["ID"], x["Region"], x["Interface"], x["URL"]) for x in endpoints] == [
        (e["id"], region, "public", url)]
    # a new token's catalog carries the endpoint
    catalog = {x["Type"]: x for x in openstack("catalog", "list")}
    assert svc_type in catalog and "identity" in catalog
    assert url in str(catalog[svc_type]["Endpoints"])

    openstack("endpoint", "delete", e["id"])
    openstack("service", "delete", s["id"])
    openstack("region", "delete", region)
    assert svc not in names(openstack("service", "list"))
    assert region not in {x["Region"] for x in openstack("region", "list")}
