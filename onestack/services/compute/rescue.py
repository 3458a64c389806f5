"""Rescue and unrescue: boot a server from a rescue image with its own disk attached
second, so its owner can repair it; then back to its own disk.

``rescue`` (Nova's ``os-rescue``) is allowed from ``active``, ``stopped`` and ``error``
with no task pending; it sets task ``rescuing`` with the rescue image (default: the
server's own image) in ``task_args``, and the host's agent stops the guest, makes a
fresh copy-on-write disk of that image (the storage driver's disk ``<uuid>-rescue``)
and starts the guest booting from it, the server's disk second: the server is then
``rescued`` (status ``RESCUE``). ``unrescue`` (only from ``rescued``) sets task
``unrescuing``: the agent stops the guest, starts it from its own disk and deletes the
rescue disk; the server is ``active`` again. A rescued server that is deleted loses
its rescue disk with its own.

While rescued, the other actions refuse (their allowed states leave ``rescued`` out,
as Nova's ``check_instance_state`` decorators do), except delete, the lock, and the
network changes (security groups, floating IPs) Nova allows too.

A server booted from a volume is refused (400): Nova allows that only with stable
device rescue (2.87 and images with ``hw_rescue_*`` properties), which this cloud
does not carry out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.hostlink import capabilities as caps
from onestack.services.compute import policy, states
from onestack.services.compute.instances import (
    check_lock,
    check_state,
    find_instance,
    record_action,
    touch,
)
from onestack.services.compute.server_create import generate_password
from onestack.services.compute.volume_attachments import boots_from_volume
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import policy as image_policy

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: Where a server may be rescued from (Nova's ``rescue``).
RESCUE_VM_STATES = (states.ACTIVE, states.STOPPED, states.ERROR)

def rescue(compute: Compute, ctx: ValidatedToken, server_id: str,
           admin_pass: str | None = None, rescue_image_ref: str | None = None) -> str:
    """Start rescuing the server; returns the admin password (given or generated)."""
    password = admin_pass if admin_pass is not None else generate_password()
    with compute.db.session() as session:
        inst = find_instance(session, ctx, server_id, lock=True)
        policy.require_member(ctx, "os_compute_api:os-rescue", inst.project_id)
        # A host whose drivers cannot rescue is Nova's 501 whatever the server's state.
        compute.hosts.require_capability(session, inst.host, caps.RESCUE, "rescue")
        check_lock(ctx, inst)
        check_state("rescue", inst, RESCUE_VM_STATES)
        if boots_from_volume(inst):
            raise BadRequest(f"Instance {inst.uuid} cannot be rescued: Cannot rescue a "
                             "volume-backed instance")
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        image_id = rescue_image_ref or inst.image_ref or (inst.image_meta or {}).get("id")
        if not image_id:
            raise BadRequest(f"Instance {inst.uuid} cannot be rescued: it has no image "
                             "to rescue it with; give rescue_image_ref")
        try:
            image = image_policy.find_image(session, ctx, image_id)
        except NotFound:
            raise NotFound(f"Image {image_id} could not be found.") from None
        if image.status != "active":
            raise BadRequest(f"Image {image.id} is unacceptable: rescue images must be "
                             f"active (it is {image.status})")
        if image.disk_format not in ("qcow2", "raw"):
            raise BadRequest(f"Image {image.id} is unacceptable: a rescue image must be "
                             f"qcow2 or raw, not {image.disk_format}")
        inst.task_state = states.RESCUING
        inst.task_args = {"rescue_image": {
            "id": image.id, "disk_format": image.disk_format or "raw",
            "size": image.size or 0, "hash_algo": image.os_hash_algo or "sha512",
            "hash_value": image.os_hash_value or ""}}
        touch(inst)
        record_action(session, ctx, inst, "rescue")
        host = inst.host
    compute.notify(host)
    return password


def unrescue(compute: Compute, ctx: ValidatedToken, server_id: str) -> None:
    """Start booting a rescued server from its own disk again."""
    with compute.db.session() as session:
        inst = find_instance(session, ctx, server_id, lock=True)
        policy.require_member(ctx, "os_compute_api:os-unrescue", inst.project_id)
        check_lock(ctx, inst)
        check_state("unrescue", inst, (states.RESCUED,))
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        inst.task_state = states.UNRESCUING
        inst.task_args = {}
        touch(inst)
        record_action(session, ctx, inst, "unrescue")
        host = inst.host
    compute.notify(host)
