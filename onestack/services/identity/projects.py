"""Projects: where resources live and roles are granted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, InvalidField, NotFound
from onestack.db.models import Assignment, Domain, Project, ProjectTag
from onestack.services.identity.base import SubService, new_id


class Projects(SubService):
    def find_by_ref(self, session: Session, ref: dict[str, Any], path: str) -> Project | None:
        """A project named by ``{"id"}`` or ``{"name", "domain": {"id"|"name"}}``."""
        if ref.get("id") is not None:
            if not isinstance(ref["id"], str):
                raise InvalidField(f"{path}/id", "must be a string")
            return session.get(Project, ref["id"])
        name = ref.get("name")
        if name is None:
            raise InvalidField(path, "needs an id, or a name and a domain")
        if not isinstance(name, str):
            raise InvalidField(f"{path}/name", "must be a string")
        domain_ref = ref.get("domain")
        if not isinstance(domain_ref, dict):
            raise InvalidField(f"{path}/domain", "is required with a project name")
        domain = self.identity.domains.find_by_ref(session, domain_ref, f"{path}/domain")
        if domain is None:
            return None
        return session.scalar(select(Project).where(Project.domain_id == domain.id,
                                                    Project.name == name))

    def create(self, *, name: str, domain_id: str | None = None, parent_id: str | None = None,
               description: str = "", enabled: bool = True, tags: list[str] | None = None,
               id: str | None = None, extra: dict[str, Any] | None = None) -> Project:
        with self.db.session() as session:
            parent = None
            if parent_id:
                parent = session.get(Project, parent_id)
                if parent is None:
                    raise NotFound(f"Could not find project: {parent_id}.")
                if domain_id and domain_id != parent.domain_id:
                    raise InvalidField("project/domain_id",
                                       "must be the domain of the parent project")
                domain_id = parent.domain_id
            domain_id = domain_id or "default"
            if session.get(Domain, domain_id) is None:
                raise NotFound(f"Could not find domain: {domain_id}.")
            if session.scalar(select(Project.id).where(Project.domain_id == domain_id,
                                                       Project.name == name)):
                raise Conflict(f"Conflict occurred attempting to store project - it is not "
                               f"permitted to have two projects with the same name in the "
                               f"same domain : {name}.")
            project = Project(id=id or new_id(), name=name, domain_id=domain_id,
                              parent_id=parent.id if parent else None,
                              description=description, enabled=enabled, extra=extra or {},
                              tags=[ProjectTag(name=t) for t in dict.fromkeys(tags or [])])
            session.add(project)
            session.flush()
            return project

    def delete_in(self, session: Session, project: Project) -> None:
        """Delete one project (no children left) and what hangs on it."""
        session.execute(delete(Assignment).where(Assignment.target_id == project.id))
        session.delete(project)
        self.changed(session)
