"""Trusts (Keystone's OS-TRUST extension): one user delegating roles to another.

The *trustor* creates a trust naming a *trustee*, a project and some of the roles the
trustor holds there. The trustee then gets *trust-scoped* tokens (``POST
/v3/auth/tokens`` with ``{"scope": {"OS-TRUST:trust": {"id": ...}}}``, authenticated as
the trustee): scoped to the trust's project, carrying the trust's roles that the
trustor still holds, in the name of the trustor (``impersonation``) or of the trustee.

A trust ends when it expires, when its ``remaining_uses`` (tokens it may still give)
run out, when it is deleted, or with its trustor, trustee or project; the tokens made
with it are checked against it at every validation, so they stop working with it
(except for a trust that only ran out of uses: the tokens it gave stay good).

A trust whose ``redelegation_count`` is above zero may be *redelegated*: its trustee,
with a token scoped to it, creates a trust of their own for a subset of its roles,
lasting no longer, impersonating only if it does, with one redelegation fewer. Every
trust of such a chain must still be good for the last one to work.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Forbidden, InvalidField, NotFound, Unauthorized
from onestack.db.models import Domain, Project, Role, User
from onestack.db.models.base import utcnow
from onestack.db.models.identity import Trust
from onestack.services.identity.base import SubService, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: How deep a chain of redelegations may go (Keystone's ``[trust]
#: max_redelegation_count`` default).
MAX_REDELEGATION_COUNT = 3


@dataclass(frozen=True)
class TrustGrant:
    """What a trust-scoped token is: whose it is, where, with which roles."""

    trust_id: str
    user_id: str          # the token's user: the trustor when impersonating
    role_holder_id: str   # whose roles the token carries: the chain's first trustor
    project_id: str
    roles: list[str]
    expires_at: dt.datetime | None
    body: dict[str, Any]  # the token's "OS-TRUST:trust"


def parse_expiry(value: Any) -> dt.datetime | None:
    """An ``expires_at`` as given (ISO 8601, ``Z`` or an offset) as naive UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField("trust/expires_at", f"{value!r} is not a timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"Timestamp not in expected format: {value[:64]!r}. The server "
                         "could not comply with the request since it is either malformed "
                         "or otherwise incorrect.") from None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    if stamp <= utcnow():
        raise BadRequest("The 'expires_at' must not be before now.")
    return stamp


def render_expiry(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def _expired(trust: Trust) -> bool:
    return trust.expires_at is not None and trust.expires_at <= utcnow()


def _int_or_none(body: dict[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidField(f"trust/{key}", f"{value!r} must be an integer of at least "
                                           f"{minimum} or null")
    return value


class Trusts(SubService):
    # -- lookups --------------------------------------------------------------------

    @staticmethod
    def _usable(session: Session, trust_id: str) -> Trust:
        """The trust while it can be used: not expired, uses left. 404 otherwise, as
        Keystone answers for a trust that is gone in any of these ways."""
        trust = session.get(Trust, trust_id)
        if trust is None or _expired(trust) or trust.remaining_uses == 0:
            raise NotFound(f"Could not find trust: {trust_id}.")
        return trust

    @staticmethod
    def chain(session: Session, trust: Trust) -> list[Trust]:
        """The trust and those it was redelegated from, the original last."""
        out = [trust]
        while out[-1].redelegated_trust_id is not None and len(out) <= \
                MAX_REDELEGATION_COUNT + 1:
            parent = session.get(Trust, out[-1].redelegated_trust_id)
            if parent is None:
                break
            out.append(parent)
        return out

    # -- the API --------------------------------------------------------------------

    @staticmethod
    def check_unrestricted(ctx: ValidatedToken | None) -> None:
        """A restricted application credential's token manages no trusts (checked
        before the body is read)."""
        authorize(ctx, "identity:create_trust")
        if ctx is not None and ctx.restricted:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "Using method 'application_credential' is not allowed for "
                            "managing trusts.")

    def create(self, ctx: ValidatedToken | None, body: dict[str, Any]) -> Trust:
        """``POST /v3/OS-TRUST/trusts``: ``ctx`` is the trustor's token (``None``, the
        system itself, may create any trust)."""
        self.check_unrestricted(ctx)
        for key in ("trustor_user_id", "trustee_user_id"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise InvalidField(f"trust/{key}", "is a required non-empty string")
        impersonation = body.get("impersonation")
        if not isinstance(impersonation, bool):
            raise InvalidField("trust/impersonation", "is a required boolean")
        project_id = body.get("project_id")
        if project_id is not None and not isinstance(project_id, str):
            raise InvalidField("trust/project_id", f"{project_id!r} is not a string")
        roles_body = body.get("roles") or []
        if not isinstance(roles_body, list):
            raise InvalidField("trust/roles", "must be a list of {id} or {name} objects")
        allow_redelegation = body.get("allow_redelegation", False)
        if not isinstance(allow_redelegation, bool):
            raise InvalidField("trust/allow_redelegation", "must be a boolean")
        remaining_uses = _int_or_none(body, "remaining_uses", 1)
        requested_count = _int_or_none(body, "redelegation_count", 0)
        expires_at = parse_expiry(body.get("expires_at"))
        if project_id and not roles_body:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "At least one role should be specified.")
        if ctx is not None and ctx.user_id != body["trustor_user_id"]:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "The authenticated user should match the trustor.")
        if ctx is not None and ctx.oauth1 is not None:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "Redelegation allowed for delegated by trust only.")
        with self.db.session() as session:
            if session.get(User, body["trustee_user_id"]) is None:
                raise NotFound(f"Could not find user: {body['trustee_user_id']}.")
            if session.get(User, body["trustor_user_id"]) is None:
                raise NotFound(f"Could not find user: {body['trustor_user_id']}.")
            parent = None
            if ctx is not None and ctx.trust is not None:
                parent = self._usable(session, ctx.trust["id"])
            roles = self._roles(session, roles_body)
            if project_id:
                if session.get(Project, project_id) is None:
                    raise NotFound(f"Could not find project: {project_id}.")
                holder = self.chain(session, parent)[-1].trustor_user_id if parent \
                    else body["trustor_user_id"]
                held = {r.id for r in self.identity.assignments.effective_roles(
                    session, holder, project_id=project_id)}
                for role_id in roles:
                    if role_id not in held:
                        raise NotFound(f"Could not find role: {role_id}.")
            redelegatable = allow_redelegation and requested_count != 0
            if not redelegatable:
                count = 0
            else:
                if requested_count is not None and requested_count > MAX_REDELEGATION_COUNT:
                    raise Forbidden(f"Requested redelegation depth of {requested_count} is "
                                    f"greater than allowed {MAX_REDELEGATION_COUNT}.")
                if remaining_uses is not None:
                    raise BadRequest("remaining_uses must not be set if redelegation is "
                                     "allowed.")
                count = requested_count if requested_count is not None \
                    else MAX_REDELEGATION_COUNT
            if parent is not None:
                left = parent.redelegation_count - 1
                if redelegatable and requested_count and requested_count != left:
                    raise Forbidden('Modifying "redelegation_count" upon redelegation is '
                                    "forbidden. Omitting this parameter is advised.")
                count = max(left, 0) if redelegatable else 0
                for ancestor in self.chain(session, parent):
                    expires_at = self._check_redelegation(
                        ancestor, project_id, roles, impersonation, remaining_uses,
                        expires_at)
            trust = Trust(id=new_id(), trustor_user_id=body["trustor_user_id"],
                          trustee_user_id=body["trustee_user_id"], project_id=project_id,
                          impersonation=impersonation, roles=roles, expires_at=expires_at,
                          remaining_uses=remaining_uses,
                          allow_redelegation=bool(count), redelegation_count=count,
                          redelegated_trust_id=parent.id if parent else None)
            session.add(trust)
            session.flush()
            session.expunge(trust)
            return trust

    @staticmethod
    def _check_redelegation(parent: Trust, project_id: str | None, roles: list[str],
                            impersonation: bool, remaining_uses: int | None,
                            expires_at: dt.datetime | None) -> dt.datetime | None:
        """Whether a trust may be redelegated from ``parent`` (one link of the chain);
        the new trust's expiry (the parent's, when it sets none)."""
        if not 0 < parent.redelegation_count <= MAX_REDELEGATION_COUNT:
            raise Forbidden(f"Remaining redelegation depth of {parent.redelegation_count} "
                            f"out of allowed range of [0..{MAX_REDELEGATION_COUNT}].")
        if remaining_uses is not None:
            raise Forbidden(f'Field "remaining_uses" is set to {remaining_uses} while it '
                            "must not be set in order to redelegate a trust.")
        if project_id != parent.project_id:
            raise Forbidden("A redelegated trust must be for the project of the trust it "
                            "comes from.")
        if parent.expires_at is not None:
            if expires_at is None:
                expires_at = parent.expires_at
            elif expires_at > parent.expires_at:
                raise Forbidden("Requested expiration time is more than redelegated trust "
                                "can provide.")
        if not set(roles) <= set(parent.roles):
            raise Forbidden("Some of requested roles are not in redelegated trust.")
        if impersonation and not parent.impersonation:
            raise Forbidden("Impersonation is not allowed because redelegated trust does "
                            "not specify impersonation. Redelegated trust id: "
                            f"{parent.id}.")
        return expires_at

    @staticmethod
    def _roles(session: Session, refs: list[Any]) -> list[str]:
        """Role ids for ``[{"id": ...} | {"name": ...}]`` (global roles by name)."""
        out: list[str] = []
        for i, ref in enumerate(refs):
            if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
                raise InvalidField(f"trust/roles/{i}", "must be an object with an id or "
                                                       "a name")
            if ref.get("id"):
                role_id = str(ref["id"])
            else:
                found = list(session.scalars(select(Role.id).where(
                    Role.name == str(ref["name"]), Role.domain_id.is_(None))))
                if not found:
                    raise NotFound(f"Could not find role: {ref['name']}.")
                role_id = found[0]
            if role_id not in out:
                out.append(role_id)
        return out

    def list_trusts(self, ctx: ValidatedToken | None, trustor_user_id: str | None = None,
             trustee_user_id: str | None = None) -> list[Trust]:
        if trustor_user_id:
            authorize(ctx, "identity:list_trusts_for_trustor",
                      trustor_user_id=trustor_user_id)
        elif trustee_user_id:
            authorize(ctx, "identity:list_trusts_for_trustee",
                      trustee_user_id=trustee_user_id)
        else:
            authorize(ctx, "identity:list_trusts")
        query = select(Trust).order_by(Trust.id)
        if trustor_user_id:
            query = query.where(Trust.trustor_user_id == trustor_user_id)
        if trustee_user_id:
            query = query.where(Trust.trustee_user_id == trustee_user_id)
        with self.db.session() as session:
            trusts = list(session.scalars(query))
        return [t for t in trusts if t.remaining_uses != 0]

    def _target(self, session: Session, ctx: ValidatedToken | None, trust_id: str,
                rule: str) -> Trust:
        trust = self._usable(session, trust_id)   # a 404 before the policy, as Keystone
        authorize(ctx, rule, trustor_user_id=trust.trustor_user_id,
                  trustee_user_id=trust.trustee_user_id)
        return trust

    def get(self, ctx: ValidatedToken | None, trust_id: str) -> Trust:
        with self.db.session() as session:
            trust = self._target(session, ctx, trust_id, "identity:get_trust")
            session.expunge(trust)
            return trust

    def delete(self, ctx: ValidatedToken | None, trust_id: str) -> None:
        """Delete the trust and those redelegated from it; their tokens stop working."""
        with self.db.session() as session:
            trust = self._target(session, ctx, trust_id, "identity:delete_trust")
            self.check_unrestricted(ctx)
            doomed = [trust.id]
            frontier = [trust.id]
            while frontier:
                frontier = list(session.scalars(select(Trust.id).where(
                    Trust.redelegated_trust_id.in_(frontier))))
                doomed += frontier
            for tid in reversed(doomed):
                row = session.get(Trust, tid)
                if row is not None:
                    session.delete(row)
                    session.flush()
            self.changed(session)

    def roles(self, ctx: ValidatedToken | None, trust_id: str) -> list[Role]:
        with self.db.session() as session:
            trust = self._target(session, ctx, trust_id, "identity:list_roles_for_trust")
            found = [session.get(Role, rid) for rid in trust.roles]
            return [r for r in found if r is not None]

    def role(self, ctx: ValidatedToken | None, trust_id: str, role_id: str) -> Role:
        with self.db.session() as session:
            trust = self._target(session, ctx, trust_id, "identity:get_role_for_trust")
            role = session.get(Role, role_id) if role_id in trust.roles else None
            if role is None:
                raise NotFound(f"Could not find role: {role_id}.")
            return role

    # -- trust-scoped tokens ----------------------------------------------------------

    def grant(self, session: Session, trust: Trust) -> TrustGrant:
        """What a token scoped to ``trust`` holds now; ``Unauthorized`` when the trust
        (or one it was redelegated from) can no longer give it."""
        chain = self.chain(session, trust)
        if chain[-1].redelegated_trust_id is not None:
            raise Unauthorized("A trust this trust was redelegated from no longer exists.")
        for link in chain:
            if _expired(link):
                raise Unauthorized(f"The trust {link.id} has expired.")
        for user_id, who in ((trust.trustor_user_id, "trustor"),
                             (trust.trustee_user_id, "trustee"),
                             (chain[-1].trustor_user_id, "original trustor")):
            user = session.get(User, user_id)
            domain = session.get(Domain, user.domain_id) if user is not None else None
            if user is None or not user.enabled or domain is None or not domain.enabled:
                raise Unauthorized(f"The trust's {who} is disabled or no longer exists.")
        if not trust.project_id:
            raise Unauthorized("The trust names no project, so it gives no token.")
        holder = chain[-1].trustor_user_id
        roles = self.identity.assignments.effective_roles(
            session, holder, project_id=trust.project_id, only=trust.roles)
        if not roles:
            raise Unauthorized("The trustor no longer holds any of the trust's roles.")
        user_id = trust.trustor_user_id if trust.impersonation else trust.trustee_user_id
        return TrustGrant(
            trust_id=trust.id, user_id=user_id, role_holder_id=holder,
            project_id=trust.project_id, roles=list(trust.roles),
            expires_at=trust.expires_at,
            body={"id": trust.id, "impersonation": trust.impersonation,
                  "trustee_user": {"id": trust.trustee_user_id},
                  "trustor_user": {"id": trust.trustor_user_id}})

    def use(self, trust_ref: Any, user_id: str) -> TrustGrant:
        """Issuing a trust-scoped token: ``user_id`` authenticated and must be the
        trustee; one use of the trust is spent."""
        if not isinstance(trust_ref, dict) or not isinstance(trust_ref.get("id"), str) \
                or not trust_ref["id"]:
            raise InvalidField("auth/scope/OS-TRUST:trust/id", "is a required string")
        with self.db.session() as session:
            trust = session.get(Trust, trust_ref["id"])
            if trust is None or _expired(trust) or trust.remaining_uses == 0:
                raise Unauthorized(f"Could not find trust: {trust_ref['id']}.")
            if trust.trustee_user_id != user_id:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "User is not a trustee.")
            grant = self.grant(session, trust)
            if trust.remaining_uses is not None:
                spent = session.execute(
                    update(Trust).where(Trust.id == trust.id, Trust.remaining_uses > 0)
                    .values(remaining_uses=Trust.remaining_uses - 1))
                if not spent.rowcount:  # type: ignore[attr-defined]
                    raise Unauthorized(f"Could not find trust: {trust.id}.")
            return grant

    def for_token(self, session: Session, trust_id: str, user_id: str,
                  project_id: str | None) -> TrustGrant:
        """Validating a trust-scoped token: its trust must still be good and give the
        token's user and project (a trust whose uses ran out still backs the tokens it
        gave)."""
        trust = session.get(Trust, trust_id)
        if trust is None:
            raise Unauthorized("The token's trust no longer exists.")
        grant = self.grant(session, trust)
        if grant.user_id != user_id or grant.project_id != project_id:
            raise Unauthorized("The token does not match its trust.")
        return grant
