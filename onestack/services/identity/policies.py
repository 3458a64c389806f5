"""Stored documents Identity keeps for other programs: policies (``/v3/policies``) and
endpoint groups (OS-EP-FILTER).

Keystone stores policy blobs without reading them (services enforce their own policy
files), and keeps endpoint groups without applying them unless its ``endpoint_filter``
catalog driver is chosen, which is not its default. OneStack does the same: both are
kept, listed and changed by administrators (a system reader reads them), and neither
changes what anyone may do or which catalog a token carries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from onestack.common.errors import InvalidField
from onestack.db.models import Endpoint
from onestack.db.models.identity import EndpointGroup, PolicyBlob
from onestack.services.identity.base import SubService, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: The attributes of an endpoint an endpoint group's filters may name.
FILTER_KEYS = ("interface", "service_id", "region_id")


class Policies(SubService):
    def create(self, ctx: ValidatedToken | None, *, blob: str, type_: str,
               extra: dict[str, Any]) -> PolicyBlob:
        authorize(ctx, "identity:create_policy")
        with self.db.session() as session:
            policy = PolicyBlob(id=new_id(), blob=blob, type=type_, extra=extra)
            session.add(policy)
            session.flush()
            session.expunge(policy)
            return policy

    def list_policies(self, ctx: ValidatedToken | None, type_: str | None = None
                      ) -> list[PolicyBlob]:
        authorize(ctx, "identity:list_policies")
        stmt = select(PolicyBlob)
        if type_ is not None:
            stmt = stmt.where(PolicyBlob.type == type_)
        with self.db.session() as session:
            return list(session.scalars(stmt.order_by(PolicyBlob.id)))

    def get(self, ctx: ValidatedToken | None, policy_id: str) -> PolicyBlob:
        authorize(ctx, "identity:get_policy")
        with self.db.session() as session:
            policy: PolicyBlob = get_or_404(session, PolicyBlob, policy_id, "policy")
            return policy

    def update(self, ctx: ValidatedToken | None, policy_id: str, *, blob: str | None,
               type_: str | None, extra: dict[str, Any]) -> PolicyBlob:
        authorize(ctx, "identity:update_policy")
        with self.db.session() as session:
            policy: PolicyBlob = get_or_404(session, PolicyBlob, policy_id, "policy")
            if blob is not None:
                policy.blob = blob
            if type_ is not None:
                policy.type = type_
            if extra:
                policy.extra = {**(policy.extra or {}), **extra}
            session.flush()
            session.expunge(policy)
            return policy

    def delete(self, ctx: ValidatedToken | None, policy_id: str) -> None:
        authorize(ctx, "identity:delete_policy")
        with self.db.session() as session:
            session.delete(get_or_404(session, PolicyBlob, policy_id, "policy"))


class EndpointGroups(SubService):
    def _check_filters(self, filters: dict[str, Any]) -> None:
        for key, value in filters.items():
            if key not in FILTER_KEYS:
                raise InvalidField(f"endpoint_group/filters/{key}",
                                   f"is not one of {', '.join(FILTER_KEYS)}")
            if not isinstance(value, str) or not value:
                raise InvalidField(f"endpoint_group/filters/{key}",
                                   "must be a non-empty string")
        if filters.get("interface") not in (None, "public", "internal", "admin"):
            raise InvalidField("endpoint_group/filters/interface",
                               "must be public, internal or admin")

    def create(self, ctx: ValidatedToken | None, *, name: str, description: str,
               filters: dict[str, Any]) -> EndpointGroup:
        authorize(ctx, "identity:create_endpoint_group")
        self._check_filters(filters)
        with self.db.session() as session:
            group = EndpointGroup(id=new_id(), name=name, description=description,
                                  filters=filters)
            session.add(group)
            session.flush()
            session.expunge(group)
            return group

    def list_groups(self, ctx: ValidatedToken | None, name: str | None = None
             ) -> list[EndpointGroup]:
        authorize(ctx, "identity:list_endpoint_groups")
        stmt = select(EndpointGroup)
        if name is not None:
            stmt = stmt.where(EndpointGroup.name == name)
        with self.db.session() as session:
            return list(session.scalars(stmt.order_by(EndpointGroup.name, EndpointGroup.id)))

    def get(self, ctx: ValidatedToken | None, group_id: str) -> EndpointGroup:
        authorize(ctx, "identity:get_endpoint_group")
        with self.db.session() as session:
            group: EndpointGroup = get_or_404(session, EndpointGroup, group_id,
                                              "endpoint group")
            return group

    def update(self, ctx: ValidatedToken | None, group_id: str, *, name: str | None,
               description: str | None, filters: dict[str, Any] | None) -> EndpointGroup:
        authorize(ctx, "identity:update_endpoint_group")
        if filters is not None:
            self._check_filters(filters)
        with self.db.session() as session:
            group: EndpointGroup = get_or_404(session, EndpointGroup, group_id,
                                              "endpoint group")
            if name is not None:
                group.name = name
            if description is not None:
                group.description = description
            if filters is not None:
                group.filters = filters
            session.flush()
            session.expunge(group)
            return group

    def delete(self, ctx: ValidatedToken | None, group_id: str) -> None:
        authorize(ctx, "identity:delete_endpoint_group")
        with self.db.session() as session:
            session.delete(get_or_404(session, EndpointGroup, group_id, "endpoint group"))

    def endpoints(self, ctx: ValidatedToken | None, group_id: str) -> list[Endpoint]:
        """The endpoints the group's filters match now."""
        authorize(ctx, "identity:get_endpoint_group")
        with self.db.session() as session:
            group: EndpointGroup = get_or_404(session, EndpointGroup, group_id,
                                              "endpoint group")
            stmt = select(Endpoint)
            for key, column in (("interface", Endpoint.interface),
                                ("service_id", Endpoint.service_id),
                                ("region_id", Endpoint.region_id)):
                if key in group.filters:
                    stmt = stmt.where(column == group.filters[key])
            return list(session.scalars(stmt.order_by(Endpoint.id)))


