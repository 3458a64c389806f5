"""First start: the default domain, the admin project and user (admin on its project,
the default domain and the system), the roles (reader, member, manager, admin,
service), the region and the catalog. Idempotent:
every later start only fills in what is missing.

The admin user is exempt from lockout (Keystone's ``ignore_lockout_failure_attempts``
option): otherwise anyone who can reach the API could lock the cloud's administrator
out with ten wrong passwords. Guessing is slowed per client address instead
(``throttle.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from onestack.db.models import Domain, Project, Role, User
from onestack.services.identity.assignments import (
    SYSTEM,
    USER_DOMAIN,
    USER_PROJECT,
    USER_SYSTEM,
)
from onestack.services.identity.domains import DEFAULT_DOMAIN_ID
from onestack.services.identity.service import Identity

#: The user option that keeps the admin from being locked out.
EXEMPT_FROM_LOCKOUT = "ignore_lockout_failure_attempts"

#: (type, name, path under the public URL) of every service the server offers.
#: Other services add themselves here as they land.
SERVICES: list[tuple[str, str, str]] = [
    ("identity", "keystone", "/v3"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/network"),
    ("compute", "nova", "/compute/v2.1"),
    ("block-storage", "cinder", "/volume/v3"),
    ("volumev3", "cinderv3", "/volume/v3"),
]


@dataclass
class BootstrapResult:
    admin_user_id: str
    admin_project_id: str
    #: Set only when the admin user was created now (its password is otherwise unknown).
    admin_password: str | None


def bootstrap(identity: Identity, public_url: str, admin_password: str | None = None,
              ) -> BootstrapResult:
    identity.keys.ensure()
    with identity.db.session() as session:
        identity.ensure_revision_row(session)
        if session.get(Domain, DEFAULT_DOMAIN_ID) is None:
            session.add(Domain(id=DEFAULT_DOMAIN_ID, name="Default",
                               description="The default domain", enabled=True, extra={}))
    roles: dict[str, str] = {}
    # Keystone's bootstrap roles: ``manager`` (a project manager: here it may do what a
    # member may) and ``service`` (for services' own users) exist so that tools and
    # tests may grant them; no OneStack policy gives them more than that.
    for name in ("reader", "member", "manager", "admin", "service"):
        role = identity.roles.find(name) or identity.roles.create(name=name)
        roles[name] = role.id
    identity.roles.add_implied(roles["admin"], roles["member"])
    identity.roles.add_implied(roles["manager"], roles["member"])
    identity.roles.add_implied(roles["member"], roles["reader"])

    with identity.db.session() as session:
        project = session.scalar(select(Project).where(
            Project.domain_id == DEFAULT_DOMAIN_ID, Project.name == "admin"))
        user = session.scalar(select(User).where(
            User.domain_id == DEFAULT_DOMAIN_ID, User.name == "admin"))
    if project is None:
        project = identity.projects.create(name="admin", domain_id=DEFAULT_DOMAIN_ID,
                                           description="Bootstrap project for the cloud "
                                                       "administrator")
    created_password = None
    if user is None:
        created_password = admin_password or secrets.token_urlsafe(18)
        user = identity.users.create(name="admin", domain_id=DEFAULT_DOMAIN_ID,
                                     password=created_password,
                                     default_project_id=project.id,
                                     options={EXEMPT_FROM_LOCKOUT: True})
    elif EXEMPT_FROM_LOCKOUT not in (user.options or {}):
        # installs made before the option: an operator's explicit false stays
        identity.users.update(None, user.id, {"options": {EXEMPT_FROM_LOCKOUT: True}})
    with identity.db.session() as session:
        admin_role = session.get(Role, roles["admin"])
        assert admin_role is not None
        identity.assignments.grant(session, USER_PROJECT, user.id, project.id, admin_role.id)
        identity.assignments.grant(session, USER_DOMAIN, user.id, DEFAULT_DOMAIN_ID,
                                   admin_role.id)
        # as Keystone's bootstrap: the admin is the system's administrator too (installs
        # made before system scope gain the grant at their next start)
        identity.assignments.grant(session, USER_SYSTEM, user.id, SYSTEM, admin_role.id)

    region = identity.config.identity.region
    identity.catalog.ensure_region(region)
    for type_, name, path in SERVICES:
        identity.catalog.ensure_service(type=type_, name=name, url=public_url + path,
                                        region_id=region)
    return BootstrapResult(user.id, project.id, created_password)
