"""Projects: where resources live and roles are granted.

A project lives in one domain and may have a parent project in the same domain
(Keystone's hierarchical multitenancy). Top-level projects have no parent row; the API
shows their domain as their ``parent_id``, as Keystone does. The rules follow Keystone:

* a project with children cannot be deleted, and cannot be disabled while a child is
  enabled; a project under a disabled parent cannot be created or enabled;
* a hierarchy is at most ``MAX_DEPTH`` projects deep;
* ``domain_id`` and ``parent_id`` cannot change after creation;
* the ``immutable`` option forbids every change but turning the option off.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, InvalidField, NotFound
from onestack.db.models import ApplicationCredential, Assignment, Domain, Project, ProjectTag
from onestack.services.identity.base import SubService, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: Keystone's ``max_project_tree_depth``: projects in one branch, top-level included.
MAX_DEPTH = 5
#: Keystone's limit of tags on one project.
MAX_TAGS = 80
#: Resource options a project understands (Keystone's project options registry).
PROJECT_OPTIONS = ("immutable",)
#: Columns of a project; every other attribute a client sends is kept in ``extra``.
COLUMNS = ("name", "description", "enabled", "tags", "options")
#: Attributes that may be sent but never change or land in ``extra``.
FIXED = ("id", "domain_id", "parent_id", "is_domain", "links")


def _conflict(name: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store project - it is not permitted "
                    f"to have two projects with the same name in the same domain : {name}.")


def _is_immutable(project: Project) -> bool:
    return bool((project.extra.get("options") or {}).get("immutable"))


def _check_mutable(project: Project, action: str) -> None:
    if _is_immutable(project):
        raise Forbidden(f"Cannot {action} project {project.id}: it is immutable. Set the "
                        f"\"immutable\" option to false first.")


def merge_options(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply option changes; a null value removes the option."""
    out = dict(current or {})
    for key, value in changes.items():
        if key not in PROJECT_OPTIONS:
            raise InvalidField(f"project/options/{key}", "is not a known project option")
        if value is None:
            out.pop(key, None)
        elif not isinstance(value, bool):
            raise InvalidField(f"project/options/{key}", f"{value!r} is not a boolean")
        else:
            out[key] = value
    return out


def check_tags(tags: Iterable[str], path: str = "project/tags") -> list[str]:
    """Keystone's tag rules: unique, at most 80, 1-255 characters, no ``/`` or ``,``."""
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= 255:
            raise InvalidField(path, f"{tag!r} is not a string of 1 to 255 characters")
        if "/" in tag or "," in tag:
            raise InvalidField(path, f"{tag!r} contains '/' or ','")
        try:
            tag.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidField(path, f"{tag!r} is not valid Unicode text") from None
        if tag in out:
            raise InvalidField(path, f"{tag!r} is given more than once")
        out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidField(path, f"a project has at most {MAX_TAGS} tags")
    return out


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

    # -- hierarchy ------------------------------------------------------------------

    def ancestors_in(self, session: Session, project: Project) -> list[Project]:
        """The parents of a project, nearest first (its domain not included)."""
        out: list[Project] = []
        seen = {project.id}
        parent_id = project.parent_id
        while parent_id and parent_id not in seen:
            parent = session.get(Project, parent_id)
            if parent is None:
                break
            out.append(parent)
            seen.add(parent.id)
            parent_id = parent.parent_id
        return out

    def subtree_in(self, session: Session, project: Project) -> list[Project]:
        """Every project below this one, parents before their children."""
        out: list[Project] = []
        level = [project.id]
        while level:
            children = list(session.scalars(
                select(Project).where(Project.parent_id.in_(level)).order_by(Project.name)))
            children = [c for c in children if c not in out]
            out.extend(children)
            level = [c.id for c in children]
        return out

    def parents(self, project_id: str) -> list[Project]:
        with self.db.session() as session:
            return self.ancestors_in(session, get_or_404(session, Project, project_id,
                                                         "project"))

    def subtree(self, project_id: str) -> list[Project]:
        with self.db.session() as session:
            return self.subtree_in(session, get_or_404(session, Project, project_id,
                                                       "project"))

    # -- CRUD -----------------------------------------------------------------------

    def authorize_create(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create``, made before the request body is read."""
        authorize(ctx, "identity:create_project")

    def create(self, ctx: ValidatedToken | None = None, *, name: str,
               domain_id: str | None = None, parent_id: str | None = None,
               description: str = "", enabled: bool = True, tags: list[str] | None = None,
               options: dict[str, Any] | None = None, id: str | None = None,
               extra: dict[str, Any] | None = None) -> Project:
        """Create a project; its domain is its parent's, else ``domain_id``, else default.

        An unknown domain or parent is bad input (400), as in Keystone.
        """
        name = name.strip()
        tags = check_tags(tags or [])
        extra = {k: v for k, v in (extra or {}).items() if k not in COLUMNS + FIXED}
        if options:
            extra["options"] = merge_options({}, options)
        with self.db.session() as session:
            parent = None
            if parent_id and session.get(Project, parent_id) is None and \
                    session.get(Domain, parent_id) is not None:
                # a top-level project may name its domain as its parent
                if domain_id and domain_id != parent_id:
                    raise InvalidField("project/parent_id",
                                       "names a domain other than the project's domain")
                domain_id, parent_id = parent_id, None
            if parent_id:
                parent = session.get(Project, parent_id)
                if parent is None:
                    raise InvalidField("project/parent_id",
                                       f"could not find project {parent_id}")
                if domain_id and domain_id != parent.domain_id:
                    raise InvalidField("project/domain_id", f"the parent project is in "
                                       f"domain {parent.domain_id}, not {domain_id}")
                domain_id = parent.domain_id
                branch = [parent, *self.ancestors_in(session, parent)]
                for ancestor in branch:
                    if not ancestor.enabled:
                        raise BadRequest(f"Cannot create a project in a branch containing "
                                         f"a disabled project: {ancestor.id}.")
                if len(branch) + 1 > MAX_DEPTH:
                    raise Forbidden(f"Max hierarchy depth reached for {parent_id} branch.")
            domain_id = domain_id or "default"
            if session.get(Domain, domain_id) is None:
                raise InvalidField("project/domain_id", f"could not find domain {domain_id}")
            if session.scalar(select(Project.id).where(Project.domain_id == domain_id,
                                                       Project.name == name)):
                raise _conflict(name)
            project = Project(id=id or new_id(), name=name, domain_id=domain_id,
                              parent_id=parent.id if parent else None,
                              description=description, enabled=enabled, extra=extra,
                              tags=[ProjectTag(name=t) for t in tags])
            session.add(project)
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(name) from None
            self.changed(session)
            return project

    def show(self, ctx: ValidatedToken | None, project_id: str) -> Project:
        """``get`` for a caller (``get`` itself stays context-free: compute calls it)."""
        authorize(ctx, "identity:get_project", project_id=project_id)
        return self.get(project_id)

    def get(self, project_id: str) -> Project:
        with self.db.session() as session:
            return get_or_404(session, Project, project_id, "project")

    def authorize_list(self, ctx: ValidatedToken | None) -> None:
        authorize(ctx, "identity:list_projects")

    def list(self, ctx: ValidatedToken | None, *, name: str | None = None,
             domain_id: str | None = None,
             enabled: bool | None = None, parent_id: str | None = None,
             ids: Iterable[str] | None = None, tags: builtins.list[str] | None = None,
             tags_any: builtins.list[str] | None = None, not_tags: builtins.list[str] | None = None,
             not_tags_any: builtins.list[str] | None = None) -> builtins.list[Project]:
        """Projects matching every filter given.

        ``tags``: has all of them; ``tags_any``: has one of them; ``not_tags``: lacks
        at least one of them; ``not_tags_any``: has none of them. ``parent_id`` may name
        a domain, meaning the domain's top-level projects.
        """
        self.authorize_list(ctx)
        stmt = select(Project)
        if name is not None:
            stmt = stmt.where(Project.name == name)
        if domain_id is not None:
            stmt = stmt.where(Project.domain_id == domain_id)
        if enabled is not None:
            stmt = stmt.where(Project.enabled.is_(enabled))
        if parent_id is not None:
            stmt = stmt.where(or_(Project.parent_id == parent_id,
                                  and_(Project.parent_id.is_(None),
                                       Project.domain_id == parent_id)))
        if ids is not None:
            stmt = stmt.where(Project.id.in_(list(ids)))

        def tagged(tag_names: builtins.list[str]) -> Any:
            return Project.id.in_(select(ProjectTag.project_id)
                                  .where(ProjectTag.name.in_(tag_names)))

        if tags:
            stmt = stmt.where(and_(*(tagged([t]) for t in tags)))
        if tags_any:
            stmt = stmt.where(tagged(tags_any))
        if not_tags:
            stmt = stmt.where(not_(and_(*(tagged([t]) for t in not_tags))))
        if not_tags_any:
            stmt = stmt.where(not_(tagged(not_tags_any)))
        with self.db.session() as session:
            return list(session.scalars(stmt.order_by(Project.name, Project.id)))

    def authorize_update(self, ctx: ValidatedToken | None, project_id: str) -> None:
        """The policy check of ``update``, made before the request body is read."""
        authorize(ctx, "identity:update_project", project_id=project_id)

    def update(self, ctx: ValidatedToken | None, project_id: str, changes: dict[str, Any]
               ) -> Project:
        """Apply a PATCH body (already shape-checked); unknown keys go to ``extra``."""
        self.authorize_update(ctx, project_id)
        with self.db.session() as session:
            project = get_or_404(session, Project, project_id, "project")
            if "id" in changes and changes["id"] != project_id:
                raise InvalidField("project/id", "cannot be changed")
            if "domain_id" in changes and changes["domain_id"] != project.domain_id:
                raise InvalidField("project/domain_id", "Update of `domain_id` is not "
                                   "allowed.")
            if "is_domain" in changes and changes["is_domain"] is not False:
                raise InvalidField("project/is_domain", "Update of `is_domain` is not "
                                   "allowed.")
            if "parent_id" in changes and changes["parent_id"] != \
                    (project.parent_id or project.domain_id):
                raise Forbidden("Update of `parent_id` is not allowed.")
            if _is_immutable(project) and (
                    set(changes) != {"options"} or not isinstance(changes["options"], dict)
                    or "immutable" not in changes["options"]
                    or changes["options"]["immutable"] not in (False, None)):
                _check_mutable(project, "update")
            options = project.extra.get("options") or {}
            if "options" in changes:
                options = merge_options(options, changes["options"] or {})
            if "name" in changes:
                name = changes["name"].strip()
                if name != project.name and session.scalar(select(Project.id).where(
                        Project.domain_id == project.domain_id, Project.name == name)):
                    raise _conflict(name)
                project.name = name
            if "description" in changes:
                project.description = changes["description"] or ""
            if "enabled" in changes:
                self._set_enabled(session, project, changes["enabled"])
            if "tags" in changes:
                self._set_tags(session, project, check_tags(changes["tags"] or []))
            extra = {k: v for k, v in changes.items() if k not in COLUMNS + FIXED}
            new_extra = {**project.extra, **extra}
            if options:
                new_extra["options"] = options
            else:
                new_extra.pop("options", None)
            project.extra = new_extra
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(project.name) from None
            self.changed(session)
            return project

    def _set_enabled(self, session: Session, project: Project, enabled: bool) -> None:
        if enabled and not project.enabled:
            for ancestor in self.ancestors_in(session, project):
                if not ancestor.enabled:
                    raise Forbidden(f"Cannot enable project {project.id} since it has "
                                    f"disabled parents")
        if not enabled and project.enabled:
            if any(p.enabled for p in self.subtree_in(session, project)):
                raise Forbidden(f"Cannot disable project {project.id} since its subtree "
                                f"contains enabled projects.")
        project.enabled = enabled

    def _set_tags(self, session: Session, project: Project, tags: builtins.list[str]) -> None:
        wanted = set(tags)
        for tag in list(project.tags):
            if tag.name not in wanted:
                project.tags.remove(tag)
        have = {t.name for t in project.tags}
        project.tags.extend(ProjectTag(name=t) for t in tags if t not in have)
        session.flush()
        session.refresh(project, ["tags"])

    def delete(self, ctx: ValidatedToken | None, project_id: str) -> None:
        """Delete a leaf project with its role assignments and application credentials."""
        authorize(ctx, "identity:delete_project", project_id=project_id)
        with self.db.session() as session:
            project = get_or_404(session, Project, project_id, "project")
            _check_mutable(project, "delete")
            if session.scalar(select(Project.id).where(Project.parent_id == project_id)):
                raise Forbidden(f"Cannot delete the project {project_id} since it is not a "
                                f"leaf in the hierarchy. Use the cascade option if you want "
                                f"to delete a whole subtree.")
            self.delete_in(session, project)

    def delete_in(self, session: Session, project: Project) -> None:
        """Delete one project (no children left) and what hangs on it."""
        session.execute(delete(Assignment).where(Assignment.target_id == project.id))
        session.execute(delete(ApplicationCredential)
                        .where(ApplicationCredential.project_id == project.id))
        session.delete(project)
        self.changed(session)

    # -- tags -----------------------------------------------------------------------

    def tags(self, ctx: ValidatedToken | None, project_id: str) -> builtins.list[str]:
        authorize(ctx, "identity:list_project_tags", project_id=project_id)
        return [t.name for t in self.get(project_id).tags]

    def check_tag(self, ctx: ValidatedToken | None, project_id: str, tag: str) -> None:
        """Raise ``NotFound`` unless the project has the tag."""
        authorize(ctx, "identity:get_project_tag", project_id=project_id)
        if tag not in self.tags(None, project_id):
            raise NotFound(f"Could not find project tag: {tag}.")

    def authorize_set_tags(self, ctx: ValidatedToken | None, project_id: str) -> None:
        """The policy check of ``set_tags``, made before the request body is read."""
        authorize(ctx, "identity:update_project_tags", project_id=project_id)

    def clear_tags(self, ctx: ValidatedToken | None, project_id: str) -> None:
        authorize(ctx, "identity:delete_project_tags", project_id=project_id)
        self.set_tags(None, project_id, [])

    def set_tags(self, ctx: ValidatedToken | None, project_id: str, tags: builtins.list[str]
                 ) -> builtins.list[str]:
        """Replace every tag of the project; returns the new tags."""
        self.authorize_set_tags(ctx, project_id)
        tags = check_tags(tags, "tags")
        with self.db.session() as session:
            project = get_or_404(session, Project, project_id, "project")
            _check_mutable(project, "update tags of")
            self._set_tags(session, project, tags)
            self.changed(session)
            return [t.name for t in project.tags]

    def add_tag(self, ctx: ValidatedToken | None, project_id: str, tag: str) -> None:
        """Add one tag (adding a tag the project has already is no change)."""
        authorize(ctx, "identity:create_project_tag", project_id=project_id)
        check_tags([tag], "tag")
        with self.db.session() as session:
            project = get_or_404(session, Project, project_id, "project")
            _check_mutable(project, "create tags for")
            names = [t.name for t in project.tags]
            if tag not in names:
                check_tags([*names, tag], "tags")
                self._set_tags(session, project, [*names, tag])
                self.changed(session)

    def remove_tag(self, ctx: ValidatedToken | None, project_id: str, tag: str) -> None:
        authorize(ctx, "identity:delete_project_tag", project_id=project_id)
        with self.db.session() as session:
            project = get_or_404(session, Project, project_id, "project")
            _check_mutable(project, "delete tags of")
            names = [t.name for t in project.tags]
            if tag not in names:
                raise NotFound(f"Could not find project tag: {tag}.")
            self._set_tags(session, project, [n for n in names if n != tag])
            self.changed(session)
