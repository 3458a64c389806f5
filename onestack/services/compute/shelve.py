"""Shelve, shelveOffload and unshelve: put a server away (its disk kept as an image, its
host's resources freed) and bring it back, as Nova does.

``shelve`` (from ``active``, ``stopped``, ``paused``, ``suspended``; no task pending)
makes a queued snapshot image ``<server name>-shelved`` (the properties a ``createImage``
snapshot gets: ``image_type=snapshot``, ``instance_uuid``, ``base_image_ref``...) and
sets task ``shelving``. The host's agent stops the guest (cleanly, then forced), moves
the task to ``shelving_image_pending_upload`` while it copies the disk and to
``shelving_image_uploading`` while it uploads it; the server is then ``shelved``
(status ``SHELVED``), its guest stopped but still on its host. With
``[compute] shelved_offload_time`` 0 (Nova's default) the agent goes on at once
(``shelving_offloading``): the guest, its disk and taps go, the ports stay but are
unbound from the host (``binding:host_id`` empty), ``host`` and ``node`` are cleared and
the server is ``shelved_offloaded``. With N > 0 a shelved server is offloaded once it has
been shelved N seconds (looked at whenever its host's agent asks for its desired state);
with -1 never, unless an admin asks (``shelveOffload``, only from ``shelved``). A server
booted from a volume gets no image: it is stopped and offloaded at once, its volumes
staying attached.

``unshelve`` (from ``shelved`` or ``shelved_offloaded``) sets task ``unshelving``. A
``shelved`` server just starts again on its host. An offloaded one is scheduled as a
boot is (its flavor, its zone - the one the user asks for from 2.77, ``null`` from 2.91
unpins it - and, for admins from 2.91, a host), its ports are bound to the chosen host,
and the agent builds its disk from the shelve image and boots it; once it runs, the
image is deleted. An offloaded server keeps counting against the project's instances,
cores and ram (usage counts every server not deleted), not against any host's.

What is kept between shelve and unshelve (``shelved_at``, ``shelved_image_id``,
``shelved_host``) is the instance's ``system_metadata`` (Nova's names). Deleting a
shelved server deletes its shelve image too.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.revert import Reverter
from onestack.db.models import (
    ComputeService,
    Image,
    Instance,
    Port,
    ServerGroupMember,
    utcnow,
)
from onestack.services.compute import policy, states
from onestack.services.compute.actions import NOT_INHERITED
from onestack.services.compute.hostapi import service_context
from onestack.services.compute.instances import (
    check_lock,
    check_state,
    find_instance,
    finish_action,
    record_action,
    touch,
)
from onestack.services.compute.scheduler import (
    COMPUTE_BINARY,
    Demand,
    NoValidHost,
    flavor_disk_gb,
)
from onestack.services.compute.volume_attachments import boots_from_volume
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.ports import BOUND_VIF_DETAILS, BOUND_VIF_TYPE

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

#: Where a server may be shelved from (Nova's ``shelve``).
SHELVE_VM_STATES = (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED)
#: Where it may be unshelved from.
UNSHELVE_VM_STATES = (states.SHELVED, states.SHELVED_OFFLOADED)
#: The tasks of a shelve (the agent moves from one to the next).
SHELVE_TASKS = (states.SHELVING, states.SHELVING_IMAGE_PENDING_UPLOAD,
                states.SHELVING_IMAGE_UPLOADING, states.SHELVING_OFFLOADING)
#: ``unshelve``'s ``availability_zone`` left out (``None`` unpins the server).
UNSET: Any = object()


def shelve(compute: Compute, ctx: ValidatedToken, server_id: str) -> None:
    """Start shelving the server (see the module docstring)."""
    with compute.db.session() as session:
        inst = find_instance(session, ctx, server_id)
        policy.require_member(ctx, "os_compute_api:os-shelve:shelve", inst.project_id)
        check_lock(ctx, inst)
        check_state("shelve", inst, SHELVE_VM_STATES)
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        volume_backed = boots_from_volume(inst)
        body = None if volume_backed else _image_body(ctx, inst)
    offload = volume_backed or compute.config.compute.shelved_offload_time == 0
    with Reverter() as revert:
        image_id = None
        if body is not None:
            image_id = compute.images.create(ctx, body).id
            revert.add(_drop_image, compute, image_id)
        with compute.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            check_lock(ctx, inst)
            check_state("shelve", inst, SHELVE_VM_STATES)
            host = inst.host
            inst.task_state = states.SHELVING
            inst.task_args = {"image_id": image_id, "offload": offload}
            meta = {k: v for k, v in (inst.system_metadata or {}).items()
                    if not k.startswith("shelved_")}
            meta.update({"shelved_at": utcnow().isoformat(), "shelved_host": host or ""})
            if image_id:
                meta["shelved_image_id"] = image_id
            inst.system_metadata = meta
            touch(inst)
            record_action(session, ctx, inst, "shelve")
        revert.success()
    compute.notify(host)


def shelve_offload(compute: Compute, ctx: ValidatedToken, server_id: str) -> None:
    """``shelveOffload`` (admins): free a shelved server's host now."""
    with compute.db.session() as session:
        inst = find_instance(session, ctx, server_id, lock=True)
        policy.require_admin(ctx, "os_compute_api:os-shelve:shelve_offload")
        check_lock(ctx, inst)
        check_state("shelveOffload", inst, (states.SHELVED,))
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        inst.task_state = states.SHELVING_OFFLOADING
        inst.task_args = {}
        touch(inst)
        record_action(session, ctx, inst, "shelveOffload")
        host = inst.host
    compute.notify(host)


def unshelve(compute: Compute, ctx: ValidatedToken, server_id: str,
             availability_zone: Any = UNSET, host: str | None = None) -> None:
    """Start unshelving: on its host if only shelved; scheduled (``availability_zone``,
    ``host``) if offloaded. NoValidHost leaves it offloaded with the action failed."""
    failed: str | None = None
    with compute.db.session() as session:
        inst = find_instance(session, ctx, server_id, lock=True)
        policy.require_member(ctx, "os_compute_api:os-shelve:unshelve", inst.project_id)
        if host is not None:
            policy.require_admin(ctx, "os_compute_api:os-shelve:unshelve_to_host")
        check_lock(ctx, inst)
        check_state("unshelve", inst, UNSHELVE_VM_STATES)
        if inst.vm_state == states.SHELVED and (availability_zone is not UNSET
                                                or host is not None):
            raise Conflict(f"Specifying an availability zone when unshelving server "
                           f"{inst.uuid} with status \"SHELVED\" is not supported. The "
                           "server status must be SHELVED_OFFLOADED.")
        action = record_action(session, ctx, inst, "unshelve")
        args: dict[str, Any] = {"image_id": (inst.system_metadata or {}).get(
            "shelved_image_id")}
        if inst.vm_state == states.SHELVED_OFFLOADED:
            zone = inst.pinned_availability_zone
            if availability_zone is not UNSET:
                zone = availability_zone
                if zone is not None and zone not in _zones(session):
                    raise BadRequest("The requested availability zone is not available")
            if host is not None:
                node = session.scalar(select(ComputeService).where(
                    ComputeService.host == host, ComputeService.binary == COMPUTE_BINARY))
                if node is None:
                    raise BadRequest(f"Compute host {host} could not be found.")
                if zone is not None and node.availability_zone is not None \
                        and node.availability_zone != zone:  # asked for, or pinned
                    raise Conflict(f"Host \"{host}\" is not in the availability zone "
                                   f"\"{zone}\".")
            if not boots_from_volume(inst) and not args["image_id"]:
                raise Conflict(f"Instance {inst.uuid} has no shelve image to unshelve "
                               "from.")
            member = session.scalar(select(ServerGroupMember).where(
                ServerGroupMember.instance_uuid == inst.uuid))
            demand = Demand(vcpus=inst.vcpus, memory_mb=inst.memory_mb,
                            disk_gb=0 if boots_from_volume(inst)
                            else flavor_disk_gb(inst.flavor or {}),
                            availability_zone=zone if host is None else None,
                            force_host=host, group_id=member.group_id if member else None,
                            instance_uuid=inst.uuid)
            try:
                placement = compute.scheduler.select(session, demand)
            except NoValidHost as exc:
                failed = str(exc)
                finish_action(action, "conductor_unshelve_instance", "Error", failed)
            else:
                inst.host, inst.node = placement.host, placement.node
                inst.availability_zone = placement.availability_zone
                if availability_zone is not UNSET:
                    inst.pinned_availability_zone = availability_zone
                for port in _ports(session, inst):
                    _bind(port, placement.host)
        if failed is None:
            inst.task_state = states.UNSHELVING
            inst.task_args = args
            touch(inst)
        target = inst.host
    if failed is not None:  # Nova's conductor: the server stays offloaded
        log.warning("instance %s: unshelve found no host: %s", server_id, failed)
        return
    compute.notify(target)


# -- what the host side calls (services/compute/hostapi.py) -----------------------------


def task_done(session: Session, inst: Instance, task: str | None,
              changes: dict[str, Any]) -> str | None:
    """A host finished a task of ``inst`` (in the host's transaction, changes applied):
    an offloaded server's ports are unbound; an unshelved one forgets its shelve. The
    id of an image to delete once committed, if any."""
    if changes.get("vm_state") == states.SHELVED_OFFLOADED:
        for port in _ports(session, inst):
            _bind(port, None)
        inst.host = inst.node = None
    if task == states.UNSHELVING:
        meta = dict(inst.system_metadata or {})
        image_id = meta.pop("shelved_image_id", None)
        inst.system_metadata = {k: v for k, v in meta.items()
                                if not k.startswith("shelved_")}
        return image_id
    return None


def unshelve_ending(compute: Compute, uuid: str) -> None:
    """The host booted an unshelved server: its shelve image goes now, before the
    server is seen ACTIVE (a client that sees it running sees the image gone, as in
    Nova). ``task_done`` then forgets the id; deleting it again is a no-op."""
    with compute.db.session() as session:
        inst = session.get(Instance, uuid)
        image_id = None
        if inst is not None and not inst.deleted and inst.task_state == states.UNSHELVING:
            image_id = (inst.system_metadata or {}).get("shelved_image_id") or None
    drop_image(compute, image_id)


def forget_image(compute: Compute, inst: Instance) -> str | None:
    """A shelved server is deleted: its shelve image, to delete too."""
    if inst.vm_state not in UNSHELVE_VM_STATES:
        return None
    return (inst.system_metadata or {}).get("shelved_image_id") or None


def drop_image(compute: Compute, image_id: str | None) -> None:
    """Delete the shelve image (unshelved, or the server deleted), as its owner."""
    if image_id:
        _drop_image(compute, image_id)


def offload_due(compute: Compute, host: str) -> None:
    """Offload ``host``'s servers shelved longer than ``shelved_offload_time`` (> 0;
    Nova's periodic ``_poll_shelved_instances``, run when the host's agent asks for
    its desired state)."""
    wait = compute.config.compute.shelved_offload_time
    if wait <= 0:
        return
    now = utcnow()
    with compute.db.session() as session:
        for inst in session.scalars(select(Instance).where(
                Instance.host == host, Instance.deleted.is_(False),
                Instance.vm_state == states.SHELVED, Instance.task_state.is_(None))):
            shelved_at = (inst.system_metadata or {}).get("shelved_at")
            try:
                since = dt.datetime.fromisoformat(shelved_at) if shelved_at else None
            except ValueError:
                since = None
            if since is not None and (now - since).total_seconds() < wait:
                continue
            log.info("instance %s: shelved for %s s or more; offloading it", inst.uuid,
                     wait)
            inst.task_state = states.SHELVING_OFFLOADING
            inst.task_args = {}
            touch(inst)


# -- helpers -------------------------------------------------------------------------------


def _image_body(ctx: ValidatedToken, inst: Instance) -> dict[str, Any]:
    """The shelve snapshot image, as a ``createImage`` snapshot of the server."""
    base = inst.image_meta or {}
    properties = {k: str(v) for k, v in (base.get("properties") or {}).items()
                  if k not in NOT_INHERITED}
    properties.update({"image_type": "snapshot", "instance_uuid": inst.uuid,
                       "base_image_ref": inst.image_ref or "", "user_id": ctx.user_id})
    body: dict[str, Any] = {
        "name": f"{inst.display_name}-shelved", "disk_format": "qcow2",
        "container_format": "bare", "visibility": "private",
        "min_disk": max(int(inst.root_gb or 0), int(base.get("min_disk") or 0)),
        "min_ram": int(base.get("min_ram") or 0), **properties}
    if inst.project_id != ctx.project_id:
        body["owner"] = inst.project_id
    return body


def _drop_image(compute: Compute, image_id: str) -> None:
    with compute.db.session() as session:
        image = session.get(Image, image_id)
        owner = image.owner if image is not None else None
    if image is None:
        return
    try:
        compute.images.delete(service_context(owner), image_id)
    except NotFound:
        pass
    except Exception:
        log.exception("could not delete the shelve image %s", image_id)


def _zones(session: Session) -> set[str]:
    return set(session.scalars(select(ComputeService.availability_zone).where(
        ComputeService.binary == COMPUTE_BINARY, ~ComputeService.disabled)))


def _ports(session: Session, inst: Instance) -> list[Port]:
    ids = [e["port_id"] for e in inst.ports or [] if e.get("port_id")]
    if not ids:
        return []
    return list(session.scalars(select(Port).where(Port.id.in_(ids))))


def _bind(port: Port, host: str | None) -> None:
    """Bind the port to ``host`` (None: unbind it), as a boot binds its ports."""
    port.binding_host_id = host or ""
    port.binding_vif_type = BOUND_VIF_TYPE if host else "unbound"
    port.binding_vif_details = dict(BOUND_VIF_DETAILS) if host else {}
    port.updated_at = utcnow()
