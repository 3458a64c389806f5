"""Roles and implied roles (a prior role brings the roles it implies).

A role is global (``domain_id`` NULL) or specific to one domain. Domain-specific roles
never appear in tokens themselves; they exist to imply global roles. An inference rule
``prior -> implied`` makes every holder of ``prior`` hold ``implied`` too, transitively.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.db.models import Assignment, Domain, ImpliedRole, Role
from onestack.services.identity.base import SubService, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: Roles nothing may imply (Keystone's ``[assignment] prohibited_implied_role``).
PROHIBITED_IMPLIED_ROLES = ("admin",)
#: Resource options a role understands, each a boolean (null removes it).
ROLE_OPTIONS = ("immutable",)


def _is_immutable(role: Role) -> bool:
    return bool((role.options or {}).get("immutable"))


def merge_options(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply option changes: a null value removes the option."""
    out = dict(current or {})
    for key, value in changes.items():
        if key not in ROLE_OPTIONS:
            raise BadRequest(f"Invalid input for field 'role/options': additional "
                             f"property {key!r} is not allowed.")
        if value is None:
            out.pop(key, None)
        elif not isinstance(value, bool):
            raise BadRequest(f"Invalid input for field 'role/options/{key}': "
                             f"{value!r} is not of type 'boolean'.")
        else:
            out[key] = value
    return out


class Roles(SubService):
    # -- roles ----------------------------------------------------------------------

    def _name_taken(self, session: Session, name: str, domain_id: str | None,
                    except_id: str | None = None) -> bool:
        stmt = select(Role.id).where(Role.name == name)
        stmt = stmt.where(Role.domain_id.is_(None) if domain_id is None
                          else Role.domain_id == domain_id)
        if except_id is not None:
            stmt = stmt.where(Role.id != except_id)
        return session.scalar(stmt) is not None

    def authorize_create(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create``, made before the request body is read."""
        authorize(ctx, "identity:create_role")

    def create(self, ctx: ValidatedToken | None = None, *, name: str,
               domain_id: str | None = None, description: str = "",
               id: str | None = None, options: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> Role:
        self.authorize_create(ctx)
        with self.db.session() as session:
            if domain_id is not None and session.get(Domain, domain_id) is None:
                raise NotFound(f"Could not find domain: {domain_id}.")
            if self._name_taken(session, name, domain_id):
                raise Conflict(f"Conflict occurred attempting to store role - Duplicate "
                               f"entry found with name {name}.")
            if id is not None and session.get(Role, id) is not None:
                raise Conflict(f"Conflict occurred attempting to store role - Duplicate "
                               f"entry found with ID {id}.")
            role = Role(id=id or new_id(), name=name, domain_id=domain_id,
                        description=description or "",
                        options=merge_options({}, options or {}), extra=extra or {})
            session.add(role)
            session.flush()
            self.changed(session)
            return role

    def find(self, name: str) -> Role | None:
        with self.db.session() as session:
            return session.scalar(select(Role).where(Role.name == name,
                                                     Role.domain_id.is_(None)))

    def get(self, ctx: ValidatedToken | None, role_id: str) -> Role:
        authorize(ctx, "identity:get_role")
        with self.db.session() as session:
            return get_or_404(session, Role, role_id, "role")

    def list(self, ctx: ValidatedToken | None, name: str | None = None, domain_id: str | None = None
             ) -> list[Role]:
        """Global roles, or with ``domain_id`` the roles specific to that domain."""
        authorize(ctx, "identity:list_roles")
        with self.db.session() as session:
            stmt = select(Role).where(Role.domain_id.is_(None) if domain_id is None
                                      else Role.domain_id == domain_id)
            if name is not None:
                stmt = stmt.where(Role.name == name)
            return list(session.scalars(stmt.order_by(Role.name, Role.id)))

    def authorize_update(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``update``, made before the request body is read."""
        authorize(ctx, "identity:update_role")

    def update(self, ctx: ValidatedToken | None, role_id: str, changes: dict[str, Any]) -> Role:
        self.authorize_update(ctx)
        """Change name, description, options or extra attributes.

        An immutable role accepts only the change that makes it mutable again.
        """
        with self.db.session() as session:
            role = get_or_404(session, Role, role_id, "role")
            if _is_immutable(role):
                options = changes.get("options") or {}
                if len(changes) > 1 or "immutable" not in options or \
                        options["immutable"] not in (False, None):
                    raise Forbidden(f"Unable to update immutable role resource: "
                                    f"`{role_id}. Set resource option \"immutable\" to "
                                    f"false first.")
            if "domain_id" in changes and changes["domain_id"] != role.domain_id:
                raise BadRequest("Update of `domain_id` is not allowed.")
            if "id" in changes and changes["id"] != role.id:
                raise BadRequest("Cannot change ID.")
            if "name" in changes and changes["name"] != role.name:
                if self._name_taken(session, changes["name"], role.domain_id, role.id):
                    raise Conflict(f"Conflict occurred attempting to store role - "
                                   f"Duplicate entry found with name {changes['name']}.")
                role.name = changes["name"]
            if "description" in changes:
                role.description = changes["description"] or ""
            if "options" in changes:
                role.options = merge_options(role.options, changes["options"] or {})
            extra = {k: v for k, v in changes.items()
                     if k not in ("id", "name", "description", "options", "domain_id")}
            if extra:
                role.extra = {**(role.extra or {}), **extra}
            self.changed(session)
            return role

    def delete(self, ctx: ValidatedToken | None, role_id: str) -> None:
        """Delete a role with its assignments and inference rules."""
        authorize(ctx, "identity:delete_role")
        with self.db.session() as session:
            role = get_or_404(session, Role, role_id, "role")
            if _is_immutable(role):
                raise Forbidden(f"Unable to delete immutable role resource: `{role_id}. "
                                f"Set resource option \"immutable\" to false first.")
            # the foreign keys cascade too; deleting explicitly keeps it backend-neutral
            session.execute(delete(Assignment).where(Assignment.role_id == role_id))
            session.execute(delete(ImpliedRole).where(
                (ImpliedRole.prior_role_id == role_id)
                | (ImpliedRole.implied_role_id == role_id)))
            session.delete(role)
            self.changed(session)

    # -- implied roles --------------------------------------------------------------

    def add_implied(self, prior_id: str, implied_id: str) -> None:
        """Idempotent rule creation for bootstrap (no checks beyond existence)."""
        with self.db.session() as session:
            for rid in (prior_id, implied_id):
                if session.get(Role, rid) is None:
                    raise NotFound(f"Could not find role: {rid}.")
            if session.get(ImpliedRole, (prior_id, implied_id)) is None:
                session.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
                self.changed(session)

    def create_implied(self, ctx: ValidatedToken | None, prior_id: str, implied_id: str
                       ) -> tuple[Role, Role]:
        """``PUT /v3/roles/{prior}/implies/{implied}``, with Keystone's checks and a
        refusal of rules that would make a role imply itself."""
        authorize(ctx, "identity:create_implied_role")
        with self.db.session() as session:
            implied = get_or_404(session, Role, implied_id, "role")
            prior = get_or_404(session, Role, prior_id, "role")
            if implied.name in PROHIBITED_IMPLIED_ROLES:
                raise Forbidden(f"{implied_id} cannot be an implied roles.")
            if prior.domain_id is None and implied.domain_id is not None:
                raise Forbidden("Global role cannot imply a domain-specific role")
            if session.get(ImpliedRole, (prior_id, implied_id)) is not None:
                raise Conflict(f"Conflict occurred attempting to store implied_role - "
                               f"{prior_id} already implies {implied_id}.")
            if prior_id == implied_id or prior_id in self._implied_closure(session,
                                                                           implied_id):
                raise Conflict(f"Conflict occurred attempting to store implied_role - "
                               f"{prior.name} ({prior_id}) implying {implied.name} "
                               f"({implied_id}) would make a role imply itself.")
            session.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
            self.changed(session)
            return prior, implied

    def _implied_closure(self, session: Session, role_id: str) -> set[str]:
        """Every role ``role_id`` implies, directly or not (itself excluded)."""
        edges: dict[str, list[str]] = {}
        for prior, child in session.execute(
                select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
            edges.setdefault(prior, []).append(child)
        seen: set[str] = set()
        todo = [role_id]
        while todo:
            for child in edges.get(todo.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def check_implied(self, ctx: ValidatedToken | None, prior_id: str, implied_id: str) -> None:
        """Raise ``NotFound`` unless ``prior`` implies ``implied`` directly."""
        authorize(ctx, "identity:check_implied_role")
        self.get_implied(None, prior_id, implied_id)

    def get_implied(self, ctx: ValidatedToken | None, prior_id: str, implied_id: str
                    ) -> tuple[Role, Role]:
        authorize(ctx, "identity:get_implied_role")
        with self.db.session() as session:
            prior = get_or_404(session, Role, prior_id, "role")
            implied = get_or_404(session, Role, implied_id, "role")
            if session.get(ImpliedRole, (prior_id, implied_id)) is None:
                raise NotFound(f"{prior_id} does not imply {implied_id}.")
            return prior, implied

    def delete_implied(self, ctx: ValidatedToken | None, prior_id: str, implied_id: str) -> None:
        authorize(ctx, "identity:delete_implied_role")
        with self.db.session() as session:
            get_or_404(session, Role, prior_id, "role")
            get_or_404(session, Role, implied_id, "role")
            rule = session.get(ImpliedRole, (prior_id, implied_id))
            if rule is None:
                raise NotFound(f"{prior_id} does not imply {implied_id}.")
            session.delete(rule)
            self.changed(session)

    def list_implied(self, ctx: ValidatedToken | None, prior_id: str
                     ) -> tuple[Role, builtins.list[Role]]:
        """The roles one prior role implies directly."""
        authorize(ctx, "identity:list_implied_roles")
        with self.db.session() as session:
            prior = get_or_404(session, Role, prior_id, "role")
            implied = list(session.scalars(
                select(Role).join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
                .where(ImpliedRole.prior_role_id == prior_id).order_by(Role.name)))
            return prior, implied

    def list_inferences(self, ctx: ValidatedToken | None
                        ) -> builtins.list[tuple[Role, builtins.list[Role]]]:
        """Every inference rule, grouped by prior role."""
        authorize(ctx, "identity:list_role_inference_rules")
        with self.db.session() as session:
            roles = {r.id: r for r in session.scalars(select(Role))}
            rules: dict[str, builtins.list[Role]] = {}
            for prior, child in session.execute(
                    select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
                rules.setdefault(prior, []).append(roles[child])
            out = [(roles[prior], sorted(children, key=lambda r: r.name))
                   for prior, children in rules.items()]
            return sorted(out, key=lambda pair: pair[0].name)
