"""Servers: create, list, show, update and delete; ``Servers`` is the face the API and
the actions call.

One module per job:

- ``server_requests``: what a create or a list asks for (``BootRequest``,
  ``ServerQuery``) and the request limits;
- ``server_create``: create, in one transaction (checks, rows, scheduling, ports);
- ``server_lists``: Nova's list filters, sorting and paging;
- ``server_views``: ``ServerView``, what the API renders of a server;
- ``server_metadata``: metadata and tags (``Compute.server_metadata``);
- ``instances``: finding an instance for a caller, its lock and state checks, its
  instance-action records (shared with the actions).

Policy is Nova's default: the owner project's members change a server, any role on it
reads it, admins do everything; a server of another project is a 404.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import Forbidden
from onestack.db.models import ComputeService, Instance
from onestack.services.compute import policy, states
from onestack.services.compute.instances import (
    check_lock,
    check_state,
    find_instance,
    finish_action,
    instance_name,
    instance_not_found,
    invalid_state,
    record_action,
    request_id,
    touch,
)
from onestack.services.compute.scheduler import COMPUTE_BINARY, service_is_up
from onestack.services.compute.server_create import (
    GiB,
    ServerCreation,
    check_disk_config,
    check_image_fits,
    generate_password,
    image_meta,
    sanitize_hostname,
)
from onestack.services.compute.server_lists import SORT_COLUMNS, list_page
from onestack.services.compute.server_requests import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    BootRequest,
    BootResult,
    NetworkRequest,
    ServerQuery,
    validate_user_data,
)
from onestack.services.compute.server_views import (
    Address,
    Addresses,
    FaultView,
    ServerView,
    server_views,
)
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: The names other modules imported from here before the split.
__all__ = [
    "MAX_TAGS", "MAX_TAG_LENGTH", "SORT_COLUMNS", "GiB", "Address", "Addresses",
    "BootRequest", "BootResult", "FaultView", "NetworkRequest", "ServerQuery", "ServerView",
    "Servers", "check_disk_config", "check_image_fits", "check_lock", "check_state",
    "find_instance", "finish_action", "generate_password", "image_meta", "instance_name",
    "instance_not_found", "invalid_state", "record_action", "request_id",
    "sanitize_hostname", "touch", "validate_user_data",
]


class Servers:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        self._creation = ServerCreation(compute)

    def create(self, ctx: ValidatedToken, req: BootRequest) -> BootResult:
        """Create ``req.min_count`` to ``req.max_count`` servers (as many as the quota
        allows) and schedule them (``server_create``)."""
        return self._creation.create(ctx, req)

    # -- reading ----------------------------------------------------------------------

    def get(self, ctx: ValidatedToken, server_id: str) -> ServerView:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:servers:show", inst.project_id)
            return self.views(session, [inst])[0]

    def list(self, ctx: ValidatedToken, query: ServerQuery) -> builtins.list[ServerView]:
        """One page of servers (see ``ServerQuery``); Nova's 400 for an unknown
        marker."""
        rule = "detail" if query.detail else "index"
        policy.require_reader(ctx, f"os_compute_api:servers:{rule}", ctx.project_id)
        if query.all_tenants:
            policy.require_admin(ctx, f"os_compute_api:servers:{rule}:get_all_tenants")
        for key, _ in query.sorts:
            if key in ("host", "node") and not ctx.is_admin:
                raise Forbidden(f"Only administrators can sort servers by {key}")
        if query.limit == 0:
            return []
        with self.db.session() as session:
            instances = list_page(session, ctx, query)
            if not query.detail:
                # the index renders ids and names only: no other table is read
                return [ServerView.of(i) for i in instances]
            return self.views(session, instances)

    def views(self, session: Session, instances: builtins.list[Instance]
              ) -> builtins.list[ServerView]:
        """The views of a page of instances, with a handful of queries for all."""
        return server_views(session, instances)

    # -- update and delete --------------------------------------------------------------

    def update(self, ctx: ValidatedToken, server_id: str, changes: dict[str, Any]
               ) -> ServerView:
        """Change ``display_name``, ``display_description``, ``hostname``,
        ``access_ip_v4``, ``access_ip_v6`` or ``auto_disk_config`` (AUTO is refused
        when the server's image disabled it)."""
        allowed = {"display_name", "display_description", "hostname", "access_ip_v4",
                   "access_ip_v6", "auto_disk_config"}
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:servers:update", inst.project_id)
            if "auto_disk_config" in changes:
                meta = inst.image_meta or {}
                check_disk_config(changes["auto_disk_config"], meta.get("properties") or {},
                                  meta.get("id") or inst.image_ref)
            for key, value in changes.items():
                if key not in allowed:
                    raise AssertionError(f"not an updatable server attribute: {key}")
                setattr(inst, key, value)
            if changes:
                touch(inst)
            session.flush()
            return self.views(session, [inst])[0]

    def delete(self, ctx: ValidatedToken, server_id: str, action: str = "delete",
               rule: str = "os_compute_api:servers:delete") -> None:
        """Delete a server: its host's agent tears it down (``deleting``); a server on
        no host, or on a host whose agent is down, is deleted at once (Nova's local
        delete; the agent cleans up what is left when it comes back)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, rule, inst.project_id)
            check_lock(ctx, inst)
            record_action(session, ctx, inst, action)
            host = inst.host
            service = session.scalar(select(ComputeService).where(
                ComputeService.host == host, ComputeService.binary == COMPUTE_BINARY)) \
                if host else None
            local = host is None or not service_is_up(service)
            if not local:
                inst.task_state = states.DELETING
                inst.task_args = {}
                touch(inst)
        if local:
            self.compute.hostapi.instance_deleted(server_id)
        else:
            self.compute.notify(host)
