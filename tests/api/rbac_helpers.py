"""The callers the role tests use (tests/api/test_network_rbac.py,
tests/api/test_policy_table.py): a project ``alpha`` with a member, a reader and the
member's application credential restricted to ``reader``; a member of another project
``beta``; and an unscoped token of alpha's member."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.api.network_helpers import Tenant, tenant


def grant(cloud, user_id: str, project_id: str, role: str) -> None:
    ident = cloud.services.identity
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user_id, project_id,
                                ident.roles.find(role).id)


def app_cred_token(cloud, user_id: str, token: str, roles: list[str], name: str) -> str:
    """A token of a new application credential of the user, limited to ``roles``."""
    r = cloud.request("POST", f"/v3/users/{user_id}/application_credentials", token=token,
                      json={"application_credential": {
                          "name": name, "roles": [{"name": n} for n in roles]}})
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}})
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


@dataclass
class Callers:
    alpha: Tenant             # the member of project alpha
    reader: str               # a token of a user holding only ``reader`` on alpha
    reader_user_id: str
    app_cred: str             # alpha's member through a credential limited to reader
    other: Tenant             # the member of project beta
    unscoped: str             # alpha's member, unscoped

    def tokens(self, admin: str) -> dict[str, Any]:
        return {"admin": admin, "member": self.alpha.token, "reader": self.reader,
                "app_cred": self.app_cred, "other": self.other.token,
                "unscoped": self.unscoped, "none": None}


def callers(cloud, suffix: str = "") -> Callers:
    alpha = tenant(cloud, f"alpha{suffix}")
    ident = cloud.services.identity
    reader = ident.users.create(name=f"alpha{suffix}-reader", password="reader-secret",
                                domain_id="default")
    grant(cloud, reader.id, alpha.project_id, "reader")
    reader_token = cloud.login(f"alpha{suffix}-reader", "reader-secret",
                               project=f"alpha{suffix}")
    app_cred = app_cred_token(cloud, alpha.user_id, alpha.token, ["reader"],
                              f"read-only{suffix}")
    other = tenant(cloud, f"beta{suffix}")
    unscoped = cloud.login(f"alpha{suffix}-user", f"alpha{suffix}-secret")
    return Callers(alpha, reader_token, reader.id, app_cred, other, unscoped)
