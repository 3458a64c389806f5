"""A server's metadata (``/servers/{id}/metadata``) and tags (``/servers/{id}/tags``):
read by anyone with a role on its project, changed by its members while the server is
in a state that allows it (Nova's checks) and not locked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Instance, InstanceMetadata, InstanceTag
from onestack.services.compute import policy, states
from onestack.services.compute.instances import check_lock, check_state, find_instance, touch
from onestack.services.compute.server_requests import MAX_TAGS
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: vm_states in which metadata and tags may change (Nova's checks).
CHANGEABLE = (states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED)


class ServerMetadata:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db


    def metadata(self, ctx: ValidatedToken, server_id: str) -> dict[str, str]:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:server-metadata:index",
                                  inst.project_id)
            return {m.key: m.value for m in inst.metadata_items}

    def metadata_item(self, ctx: ValidatedToken, server_id: str, key: str) -> str:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:server-metadata:show",
                                  inst.project_id)
            for item in inst.metadata_items:
                if item.key == key:
                    return item.value
        raise NotFound("Metadata item was not found")

    def set_metadata(self, ctx: ValidatedToken, server_id: str, items: dict[str, str], *,
                     replace: bool, rule: str) -> dict[str, str]:
        """Merge ``items`` into the metadata (or replace it all); returns the result."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, rule, inst.project_id)
            self._check_metadata_change(ctx, inst, "update metadata")
            current = {m.key: m for m in inst.metadata_items}
            wanted = dict(items) if replace else {**{k: m.value for k, m in current.items()},
                                                  **items}
            self.compute.quotas.check(session, inst.project_id,
                                      {"metadata_items": len(wanted)})
            for key, row in current.items():
                if key not in wanted:
                    inst.metadata_items.remove(row)
                elif row.value != wanted[key]:
                    row.value = wanted[key]
            for key, value in wanted.items():
                if key not in current:
                    inst.metadata_items.append(InstanceMetadata(key=key, value=value))
            touch(inst)
            return wanted

    def delete_metadata_item(self, ctx: ValidatedToken, server_id: str, key: str) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:server-metadata:delete",
                                  inst.project_id)
            row = next((m for m in inst.metadata_items if m.key == key), None)
            if row is None:
                raise NotFound("Metadata item was not found")
            self._check_metadata_change(ctx, inst, "delete metadata")
            inst.metadata_items.remove(row)
            touch(inst)

    @staticmethod
    def _check_metadata_change(ctx: ValidatedToken, inst: Instance, action: str) -> None:
        check_lock(ctx, inst)
        check_state(action, inst, CHANGEABLE, (None,), must_have_launched=False)

    # -- tags -------------------------------------------------------------------------

    def tags(self, ctx: ValidatedToken, server_id: str) -> list[str]:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-server-tags:index",
                                  inst.project_id)
            return [t.tag for t in inst.tags]

    def has_tag(self, ctx: ValidatedToken, server_id: str, tag: str) -> None:
        """Nothing if the server has ``tag``; Nova's 404 otherwise."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-server-tags:show", inst.project_id)
            if not any(t.tag == tag for t in inst.tags):
                raise NotFound(f"Server {server_id} has no tag '{tag}'")

    def set_tags(self, ctx: ValidatedToken, server_id: str, tags: list[str]
                 ) -> list[str]:
        with self.db.session() as session:
            inst = self._taggable(session, ctx, server_id, "update_all", "update tags")
            wanted = list(dict.fromkeys(tags))
            current = {t.tag: t for t in inst.tags}
            for tag, row in current.items():
                if tag not in wanted:
                    inst.tags.remove(row)
            for tag in wanted:
                if tag not in current:
                    inst.tags.append(InstanceTag(tag=tag))
            touch(inst)
            return sorted(wanted)

    def add_tag(self, ctx: ValidatedToken, server_id: str, tag: str,
                problem: str | None = None) -> bool:
        """Add one tag; False if the server had it already. ``problem``: why the API
        found the tag invalid (a 400 once the server's state allows tags at all)."""
        with self.db.session() as session:
            inst = self._taggable(session, ctx, server_id, "update", "update tag")
            if problem is not None:
                raise BadRequest(problem)
            if len(inst.tags) >= MAX_TAGS:
                raise BadRequest(f"The number of tags exceeded the per-server limit "
                                 f"{MAX_TAGS}")
            if any(t.tag == tag for t in inst.tags):
                return False
            inst.tags.append(InstanceTag(tag=tag))
            touch(inst)
            return True

    def delete_tag(self, ctx: ValidatedToken, server_id: str, tag: str) -> None:
        with self.db.session() as session:
            inst = self._taggable(session, ctx, server_id, "delete", "delete tag")
            row = next((t for t in inst.tags if t.tag == tag), None)
            if row is None:
                raise NotFound(f"Instance {server_id} has no tag '{tag}'")
            inst.tags.remove(row)
            touch(inst)

    def delete_tags(self, ctx: ValidatedToken, server_id: str) -> None:
        with self.db.session() as session:
            inst = self._taggable(session, ctx, server_id, "delete_all", "delete tags")
            inst.tags.clear()
            touch(inst)

    @staticmethod
    def _taggable(session: Session, ctx: ValidatedToken, server_id: str, rule: str,
                  action: str) -> Instance:
        inst = find_instance(session, ctx, server_id)
        policy.require_member(ctx, f"os_compute_api:os-server-tags:{rule}", inst.project_id)
        check_state(action, inst, CHANGEABLE, None, must_have_launched=False)
        return inst

