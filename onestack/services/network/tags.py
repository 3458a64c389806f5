"""Tags on any registered networking resource (Neutron's ``standard-attr-tag``).

Whoever may see a resource may read its tags; its project (and admins) may change
them. A change bumps the resource's revision number, as in Neutron.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models.base import utcnow
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import base
from onestack.services.network.base import KINDS, Kind, owns, policy_error

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

MAX_TAGS = 50


def kind_of(collection: str) -> Kind:
    kind = KINDS.get(collection)
    if kind is None or not kind.taggable:
        raise NotFound(f"The resource could not be found: {collection}.")
    return kind


class Tags:
    def __init__(self, net: Networking) -> None:
        self.db = net.db

    def _resource(self, session: Session, ctx: ValidatedToken, collection: str,
                  resource_id: str, change: bool) -> tuple[Kind, Any]:
        kind = kind_of(collection)
        row = kind.get_visible(session, ctx, resource_id)
        if change:
            if not owns(ctx, row.project_id):
                raise policy_error(f"update_{kind.member}:tags")
            row.updated_at = utcnow()  # bumps the revision number
        return kind, row

    def list(self, ctx: ValidatedToken, collection: str, resource_id: str) -> list[str]:
        with self.db.session() as session:
            self._resource(session, ctx, collection, resource_id, change=False)
            return base.tags_of(session, collection, [resource_id])[resource_id]

    def check(self, ctx: ValidatedToken, collection: str, resource_id: str, tag: str) -> None:
        if tag not in self.list(ctx, collection, resource_id):
            raise NotFound(f"Tag {tag} could not be found.", fault="TagNotFound")

    def replace(self, ctx: ValidatedToken, collection: str, resource_id: str,
                tags: Sequence[Any]) -> Sequence[str]:
        if len(set(tags)) > MAX_TAGS:
            raise BadRequest(f"Invalid input for tags: at most {MAX_TAGS} tags are allowed.")
        with self.db.session() as session:
            self._resource(session, ctx, collection, resource_id, change=True)
            return base.set_tags(session, collection, resource_id, tags)

    def add(self, ctx: ValidatedToken, collection: str, resource_id: str, tag: str) -> None:
        with self.db.session() as session:
            self._resource(session, ctx, collection, resource_id, change=True)
            current = base.tags_of(session, collection, [resource_id])[resource_id]
            if tag not in current and len(current) >= MAX_TAGS:
                raise BadRequest(f"Invalid input for tags: at most {MAX_TAGS} tags are "
                                 "allowed.")
            base.add_tag(session, collection, resource_id, tag)

    def remove(self, ctx: ValidatedToken, collection: str, resource_id: str, tag: str) -> None:
        with self.db.session() as session:
            self._resource(session, ctx, collection, resource_id, change=True)
            base.remove_tag(session, collection, resource_id, tag)
