"""Helpers shared by the Networking API tests (tests/api/test_network_*.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

V2 = "/network/v2.0"


@dataclass
class Tenant:
    """A project with a member user, and that user's project-scoped token."""

    token: str
    project_id: str
    user_id: str


def tenant(cloud, name: str, role: str = "member") -> Tenant:
    ident = cloud.services.identity
    project = ident.projects.create(name=name, domain_id="default")
    user = ident.users.create(name=f"{name}-user", password=f"{name}-secret",
                              domain_id="default")
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user.id, project.id,
                                ident.roles.find(role).id)
    return Tenant(cloud.login(f"{name}-user", f"{name}-secret", project=name), project.id,
                  user.id)


def neutron_error(r, status: int, type_: str | None = None, *words: str) -> dict[str, Any]:
    """A Neutron error body with this status (and fault type, and message words)."""
    assert r.status_code == status, r.text
    error = r.json()["NeutronError"]
    assert set(error) == {"type", "message", "detail"}, error
    if type_ is not None:
        assert error["type"] == type_, error
    for word in words:
        assert word in error["message"], error["message"]
    return error


def post(cloud, collection: str, member: str, token: str | None = "admin",
         status: int = 201, **attrs: Any) -> dict[str, Any]:
    r = cloud.request("POST", f"{V2}/{collection}", token=token, json={member: attrs})
    assert r.status_code == status, r.text
    return r.json()[member] if status == 201 else r.json()


def network(cloud, token: str | None = "admin", **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("name", "net")
    return post(cloud, "networks", "network", token, **attrs)


def subnet(cloud, network_id: str, cidr: str = "10.0.0.0/24", token: str | None = "admin",
           **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("ip_version", 6 if ":" in cidr else 4)
    return post(cloud, "subnets", "subnet", token, network_id=network_id, cidr=cidr, **attrs)


def port(cloud, network_id: str, token: str | None = "admin", **attrs: Any) -> dict[str, Any]:
    return post(cloud, "ports", "port", token, network_id=network_id, **attrs)


def get(cloud, path: str, token: str | None = "admin", status: int = 200) -> Any:
    r = cloud.request("GET", f"{V2}/{path}", token=token)
    assert r.status_code == status, r.text
    return r.json()


def put(cloud, path: str, member: str, token: str | None = "admin", **attrs: Any):
    return cloud.request("PUT", f"{V2}/{path}", token=token, json={member: attrs})


def delete(cloud, path: str, token: str | None = "admin"):
    return cloud.request("DELETE", f"{V2}/{path}", token=token)


def ids(body: dict[str, Any], collection: str) -> list[str]:
    return [item["id"] for item in body[collection]]
