"""Groups of users; roles granted to a group reach every member."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from onestack.db.models import Assignment, Group
from onestack.services.identity.base import SubService


class Groups(SubService):
    def delete_in(self, session: Session, group_id: str) -> None:
        session.execute(delete(Assignment).where(Assignment.actor_id == group_id))
        group = session.get(Group, group_id)
        if group is not None:
            session.delete(group)
        self.changed(session)
