"""One instance, as every server route and action sees it: found for the caller (Nova's
404 for another project's), its lock and state checked with Nova's messages, its
os-instance-actions records started and finished on the API side."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable

from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, NotFound
from onestack.common.logging import request_id_var
from onestack.db.models import Instance, InstanceAction, InstanceActionEvent, utcnow
from onestack.services.identity.context import ValidatedToken


def instance_not_found(server_id: str) -> NotFound:
    return NotFound(f"Instance {server_id} could not be found.")


def find_instance(session: Session, ctx: ValidatedToken, server_id: str, *,
                  read_deleted: bool = False, lock: bool = False) -> Instance:
    """The instance if the caller may see it (its project, or any for admins); Nova's
    404 otherwise, deleted ones included unless ``read_deleted``. ``lock`` reads it for
    update (the caller rewrites a field from its current value)."""
    inst = session.get(Instance, server_id, with_for_update=lock or None) \
        if len(server_id) <= 36 else None
    if inst is None or (inst.deleted and not read_deleted):
        raise instance_not_found(server_id)
    if not ctx.is_admin and (ctx.project_id is None or inst.project_id != ctx.project_id):
        raise instance_not_found(server_id)
    return inst


def instance_name(uuid: str) -> str:
    """``OS-EXT-SRV-ATTR:instance_name``: Nova's ``instance-%08x`` has an integer id we
    do not have, so the uuid stands in for it."""
    return f"instance-{uuid}"


def check_lock(ctx: ValidatedToken, inst: Instance) -> None:
    """Nova's ``check_instance_lock``: a locked server changes only for admins."""
    if inst.locked and not ctx.is_admin:
        raise Conflict(f"Instance {inst.uuid} is locked")


def invalid_state(action: str, inst: Instance, attr: str = "vm_state") -> Conflict:
    """Nova's 409 for an action the instance's state does not allow."""
    value = getattr(inst, attr)
    return Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in {attr} {value}")


def check_state(action: str, inst: Instance, vm_states: Iterable[str] | None,
                task_states: Iterable[str | None] | None = (None,),
                must_have_launched: bool = True) -> None:
    """Nova's ``check_instance_state``: vm_state, then task_state, then whether the
    server ever ran."""
    if vm_states is not None and inst.vm_state not in set(vm_states):
        raise invalid_state(action, inst, "vm_state")
    if task_states is not None and inst.task_state not in set(task_states):
        raise invalid_state(action, inst, "task_state")
    if must_have_launched and inst.launched_at is None:
        raise invalid_state(action, inst, "launched_at")


def request_id() -> str:
    """The request id of the request being served (a new one outside requests)."""
    return request_id_var.get() or f"req-{uuidlib.uuid4()}"


def record_action(session: Session, ctx: ValidatedToken | None, inst: Instance,
                  action: str) -> InstanceAction:
    """Start an os-instance-actions record; the host side adds its events."""
    now = utcnow()
    row = InstanceAction(instance_uuid=inst.uuid, action=action, request_id=request_id(),
                         user_id=ctx.user_id if ctx else None,
                         project_id=ctx.project_id if ctx else inst.project_id,
                         start_time=now, updated_at=now, events=[])
    session.add(row)
    return row


def finish_action(action: InstanceAction, event: str, result: str = "Success",
                  details: str | None = None, host: str | None = None) -> None:
    """Record an event done on the API side and finish the action with it (Nova
    leaves ``message`` null on success and sets it to "Error" on failure)."""
    now = utcnow()
    action.events.append(InstanceActionEvent(
        event=event, start_time=now, finish_time=now, result=result, host=host,
        traceback=details if result == "Error" else None))
    action.finish_time = now
    action.updated_at = now
    if result == "Error":
        action.message = "Error"


def touch(inst: Instance) -> None:
    inst.updated_at = utcnow()

