"""Servers: create, list, show, update and delete, their metadata and tags.

Create runs in one transaction: validate everything (flavor, image, key pair, networks,
ports, security groups, server group, quotas), write the instances (``building``,
``scheduling``), let the scheduler pick a host for each, then create their ports on it
(``device_id`` the server, ``device_owner`` ``compute:<zone>``, bound to the host) and
hand them to the host (``spawning``). Any error rolls all of it back; only "no valid
host" is not an error of the request: as in Nova the servers are created in ``error``
with a fault that says why, and no port is taken.

What the API renders is a ``ServerView``: the instance row and what its body needs
from other tables (addresses from its ports, security groups, the host's status and
zone, server groups), fetched for a whole page at once.

Policy is Nova's default: the owner project's members change a server, any role on it
reads it, admins do everything; a server of another project is a 404.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
import ipaddress
import logging
import re
import secrets
import string
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, not_, or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound, OneStackError
from onestack.common.logging import request_id_var
from onestack.db.models import (
    ComputeNode,
    ComputeService,
    FloatingIP,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    InstanceMetadata,
    InstanceTag,
    IPAllocation,
    KeyPair,
    Network,
    Port,
    SecurityGroup,
    SecurityGroupPortBinding,
    ServerGroup,
    ServerGroupMember,
    utcnow,
)
from onestack.services.compute import policy, states
from onestack.services.compute.scheduler import (
    COMPUTE_BINARY,
    Demand,
    NoValidHost,
    flavor_disk_gb,
    host_status,
    service_is_up,
)
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import policy as image_policy
from onestack.services.network.base import retrying
from onestack.services.network.ports import BOUND_VIF_DETAILS, BOUND_VIF_TYPE, create_port_in
from onestack.services.network.quotas import check_quota as check_network_quota
from onestack.services.network.security_groups import ensure_default_security_group

log = logging.getLogger(__name__)

#: Nova's limits on server tags.
MAX_TAGS = 50
MAX_TAG_LENGTH = 60
#: Length of generated admin passwords (Nova's ``password_length``).
PASSWORD_LENGTH = 12
#: Events of API-side work in os-instance-actions (Nova's names).
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
#: vm_states in which metadata and tags may change (Nova's checks).
CHANGEABLE = (states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED)
GiB = 1 << 30


# -- requests and views ------------------------------------------------------------------


@dataclass
class NetworkRequest:
    """One entry of ``networks``: a network (with an optional fixed IP) or a port."""

    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


@dataclass
class BootRequest:
    """A server create request, its shape already checked by the API."""

    name: str
    flavor_ref: str
    image_ref: str = ""
    #: A list of requests, "auto", "none", or None (not given: before 2.37).
    networks: list[NetworkRequest] | str | None = None
    admin_pass: str | None = None
    key_name: str | None = None
    user_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: Names (or ids) of security groups; None: the project's default group.
    security_groups: list[str] | None = None
    min_count: int = 1
    max_count: int = 1
    availability_zone: str | None = None
    config_drive: bool = False
    block_device_mapping: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    hostname: str | None = None
    tags: list[str] = field(default_factory=list)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    #: 2.74 (admins): a host and/or hypervisor node to boot on.
    requested_host: str | None = None
    requested_node: str | None = None


@dataclass
class Address:
    addr: str
    version: int
    type: str   # "fixed" or "floating"
    mac: str


#: network label -> its addresses.
Addresses = dict[str, list[Address]]


@dataclass
class ServerView:
    """An instance and what its API body needs beyond the row."""

    instance: Instance
    #: network label -> addresses (fixed first, then floating), in NIC order.
    addresses: dict[str, list[Address]] = field(default_factory=dict)
    security_groups: list[str] = field(default_factory=list)
    #: UP, DOWN, MAINTENANCE, UNKNOWN or "" (no host).
    host_status: str = ""
    #: The zone the server is in (its host's), else the one asked for, else "".
    availability_zone: str = ""
    server_groups: list[str] = field(default_factory=list)

    @property
    def uuid(self) -> str:
        return self.instance.uuid

    @property
    def status(self) -> str:
        inst = self.instance
        return states.status_of(inst.vm_state, inst.task_state, inst.deleted)

    @property
    def fault(self) -> InstanceFault | None:
        faults = self.instance.faults
        return faults[-1] if faults else None

    @property
    def metadata(self) -> dict[str, str]:
        return {m.key: m.value for m in self.instance.metadata_items}

    @property
    def tags(self) -> list[str]:
        return [t.tag for t in self.instance.tags]


@dataclass
class BootResult:
    reservation_id: str
    admin_pass: str
    uuids: list[str]


@dataclass
class ServerQuery:
    """A server list request, already mapped to columns by the API.

    ``exact``: column -> accepted values; ``regex``: column -> a pattern that must be
    found in the column's text (Nova's REGEXP filters)."""

    exact: dict[str, list[Any]] = field(default_factory=dict)
    regex: dict[str, str] = field(default_factory=dict)
    #: ``?status=``: the vm_states, and the task_states (None: any) it means.
    vm_states: set[str] | None = None
    task_states: set[str | None] | None = None
    ip: str | None = None
    ip6: str | None = None
    tags: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    not_tags: list[str] = field(default_factory=list)
    not_tags_any: list[str] = field(default_factory=list)
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    #: True: deleted ones only; False: live ones only; None: live ones unless a
    #: changes-since/before filter asks for recent deletions too.
    deleted: bool | None = None
    locked: bool | None = None
    #: A flavor id (servers booted with it) and an image id.
    flavor: str | None = None
    image: str | None = None
    all_tenants: bool = False
    #: (column, ascending) pairs; uuid is always added last.
    sorts: list[tuple[str, bool]] = field(default_factory=list)
    limit: int = 1000
    marker: str | None = None
    detail: bool = False


#: Columns a list may be sorted by.
SORT_COLUMNS = {
    "access_ip_v4": Instance.access_ip_v4, "access_ip_v6": Instance.access_ip_v6,
    "availability_zone": Instance.availability_zone,
    "config_drive": Instance.config_drive, "created_at": Instance.created_at,
    "display_description": Instance.display_description,
    "display_name": Instance.display_name, "host": Instance.host,
    "hostname": Instance.hostname, "image_ref": Instance.image_ref,
    "key_name": Instance.key_name, "launch_index": Instance.launch_index,
    "launched_at": Instance.launched_at, "locked": Instance.locked,
    "locked_by": Instance.locked_by, "node": Instance.node,
    "power_state": Instance.power_state, "progress": Instance.progress,
    "project_id": Instance.project_id, "task_state": Instance.task_state,
    "terminated_at": Instance.terminated_at, "updated_at": Instance.updated_at,
    "user_id": Instance.user_id, "uuid": Instance.uuid, "vm_state": Instance.vm_state,
    "reservation_id": Instance.reservation_id, "vcpus": Instance.vcpus,
    "memory_mb": Instance.memory_mb, "root_gb": Instance.root_gb,
    "ephemeral_gb": Instance.ephemeral_gb, "deleted": Instance.deleted,
    "deleted_at": Instance.deleted_at, "key_data": Instance.key_data,
    "user_data": Instance.user_data,
}


# -- helpers other modules share -------------------------------------------------------


def instance_not_found(server_id: str) -> NotFound:
    return NotFound(f"Instance {server_id} could not be found.")


def find_instance(session: Session, ctx: ValidatedToken, server_id: str, *,
                  read_deleted: bool = False) -> Instance:
    """The instance if the caller may see it (its project, or any for admins); Nova's
    404 otherwise, deleted ones included unless ``read_deleted``."""
    inst = session.get(Instance, server_id) if len(server_id) <= 36 else None
    if inst is None or (inst.deleted and not read_deleted):
        raise instance_not_found(server_id)
    if not ctx.is_admin and (ctx.project_id is None or inst.project_id != ctx.project_id):
        raise instance_not_found(server_id)
    return inst


def instance_name(uuid: str) -> str:
    """``OS-EXT-SRV-ATTR:instance_name``: Nova's ``instance-%08x`` has an integer id we
    do not have, so the uuid stands in for it."""
    return f"instance-{uuid}"


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """Nova's ``sanitize_hostname``: a DNS label from a display name."""
    hostname = name.encode("latin-1", "ignore").decode("latin-1")[:63]
    hostname = re.sub(r"[ _.]", "-", hostname)
    hostname = re.sub(r"[^\w.-]+", "", hostname)
    hostname = hostname.lower().strip(".-")
    if not hostname and default is not None:
        return default[:63]
    return hostname


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password with letters and digits (Nova's ``generate_password``)."""
    groups = (string.digits, string.ascii_uppercase, string.ascii_lowercase)
    chars = [secrets.choice(g) for g in groups]
    alphabet = "".join(groups)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


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


def image_meta(image: Any) -> dict[str, Any]:
    """What a server keeps of its image (``Instance.image_meta``)."""
    return {"id": image.id, "name": image.name, "status": image.status,
            "disk_format": image.disk_format, "container_format": image.container_format,
            "size": image.size, "virtual_size": image.virtual_size,
            "min_disk": image.min_disk, "min_ram": image.min_ram,
            "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value, "owner": image.owner,
            "properties": {p.name: p.value for p in image.properties}}


def check_image_fits(image: Any, flavor: dict[str, Any]) -> None:
    """Nova's flavor/image checks: RAM against ``min_ram``; unless the flavor's disk is
    0 (the disk then takes the image's size), the disk against the image's size and
    virtual size and its ``min_disk``."""
    if int(flavor.get("ram") or 0) < (image.min_ram or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    disk = int(flavor.get("disk") or 0) * GiB
    if disk:
        size = max(image.size or 0, image.virtual_size or 0)
        if size > disk:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk "
                             f"is {disk} bytes, image is {size} bytes.")
        if (image.min_disk or 0) * GiB > disk:
            raise BadRequest(f"Flavor's disk is smaller than the minimum size specified in "
                             f"image metadata. Flavor disk is {disk} bytes, minimum size is "
                             f"{image.min_disk * GiB} bytes.")


# -- the service ---------------------------------------------------------------------


class Servers:
    def __init__(self, compute: Any) -> None:
        self.compute = compute
        self.db = compute.db
        self.config = compute.config

    # -- create ---------------------------------------------------------------------

    def create(self, ctx: ValidatedToken, req: BootRequest) -> BootResult:
        """Create ``req.min_count`` to ``req.max_count`` servers (as many as the quota
        allows) and schedule them; see the module docstring."""
        policy.require_member(ctx, "os_compute_api:servers:create", ctx.project_id)
        if ctx.project_id is None:  # an admin's domain-scoped token: servers need a project
            raise policy.forbidden("os_compute_api:servers:create")
        zone, force_host, force_node = self._parse_zone(ctx, req.availability_zone)
        if req.requested_host or req.requested_node:
            policy.require_admin(ctx, "compute:servers:create:requested_destination")
            if force_host or force_node:
                raise BadRequest("One mechanism with host and/or hypervisor_hostname and "
                                 "another mechanism with zone:host:node are mutually "
                                 "exclusive.")
        if req.min_count > req.max_count:
            raise BadRequest("min_count must be <= max_count")
        if req.hostname and req.max_count > 1:
            raise BadRequest("Unable to allocate a single hostname to multiple instances")
        if isinstance(req.networks, list) and req.max_count > 1:
            if any(n.port_id for n in req.networks):
                raise BadRequest("Failed to launch instances: Unable to launch multiple "
                                 "instances with a single configured port ID. Please launch "
                                 "your instance one by one with different ports.")
            if any(n.network_id and n.fixed_ip for n in req.networks):
                raise BadRequest("Failed to launch instances: max_count cannot be greater "
                                 "than 1 if an fixed_ip is specified.")
        image_id = self._image_from_bdm(req)
        if req.user_data is not None:
            validate_user_data(req.user_data)
        admin_pass = req.admin_pass if req.admin_pass is not None else generate_password()
        reservation_id = "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                        for _ in range(8))
        hosts: set[str] = set()

        def work(session: Session) -> builtins.list[str]:
            hosts.clear()
            plan = self._plan(session, ctx, req, image_id, zone, force_host, force_node)
            return self._build(session, ctx, req, plan, reservation_id, hosts)

        uuids = retrying(self.db, work)
        for host in sorted(hosts):
            self.compute.notify(host)
        return BootResult(reservation_id, admin_pass, uuids)

    def _parse_zone(self, ctx: ValidatedToken, value: str | None
                    ) -> tuple[str | None, str | None, str | None]:
        """Nova's ``parse_availability_zone``: ``zone``, ``zone:host``, ``zone:host:node``
        or ``zone::node`` (the forced forms are for admins)."""
        zone, host, node = value, None, None
        if value and ":" in value:
            parts = value.split(":")
            if len(parts) == 2:
                zone, host = parts
            elif len(parts) == 3:
                zone, host, node = parts
            else:
                raise BadRequest("Unable to parse availability_zone")
            host, node = host or None, node or None
        if host or node:
            policy.require_admin(ctx, "os_compute_api:servers:create:forced_host")
        return zone or None, host, node

    @staticmethod
    def _image_from_bdm(req: BootRequest) -> str:
        """The image to boot: ``imageRef``, or the image of a block device mapping of
        source ``image`` and destination ``local`` (volumes are not supported yet)."""
        image_id = req.image_ref
        for index, bdm in enumerate(req.block_device_mapping):
            source = bdm.get("source_type")
            destination = bdm.get("destination_type") or ("volume" if source == "volume"
                                                          else "local")
            if destination == "volume" or source in ("volume", "snapshot"):
                raise BadRequest("Block Device Mapping is Invalid: booting from or attaching "
                                 "volumes is not supported by this cloud yet; boot from an "
                                 "image (source_type image, destination_type local).")
            if source != "image":
                raise BadRequest(f"Block Device Mapping is Invalid: source_type {source!r} "
                                 f"of entry {index} is not supported; only image to local "
                                 "is.")
            boot_index = bdm.get("boot_index")
            if boot_index not in (0, "0"):
                raise BadRequest("Block Device Mapping is Invalid: only one boot device "
                                 "(boot_index 0) is supported.")
            uuid = bdm.get("uuid") or bdm.get("image_id")
            if not uuid:
                raise BadRequest("Block Device Mapping is Invalid: an image mapping needs "
                                 "the image's uuid.")
            if image_id and uuid != image_id:
                raise BadRequest("Block Device Mapping is Invalid: the image of the "
                                 "mapping differs from imageRef.")
            image_id = uuid
        if len(req.block_device_mapping) > 1:
            raise BadRequest("Block Device Mapping is Invalid: only one mapping (the root "
                             "disk from an image) is supported.")
        if not image_id:
            raise BadRequest("Missing imageRef attribute")
        return image_id

    # the checks, in one transaction -------------------------------------------------

    def _plan(self, session: Session, ctx: ValidatedToken, req: BootRequest, image_id: str,
              zone: str | None, force_host: str | None, force_node: str | None) -> _Plan:
        project_id = ctx.project_id
        assert project_id is not None
        if zone and not force_host:
            if zone not in self._available_zones(session):
                raise BadRequest("The requested availability zone is not available")
        if req.requested_host or req.requested_node:
            self._check_destination(session, req.requested_host, req.requested_node)
        flavor = self.compute.flavors.get_for_boot(session, req.flavor_ref, ctx)
        flavor_dict = self.compute.flavors.snapshot(flavor)
        image = self._boot_image(session, ctx, image_id, flavor_dict)
        key_data = None
        if req.key_name is not None:
            keypair = session.get(KeyPair, (ctx.user_id, req.key_name))
            if keypair is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = keypair.public_key
        self.compute.quotas.check(session, project_id, {"metadata_items": len(req.metadata)})
        count = self.compute.quotas.check_instances(
            session, project_id, flavor.vcpus, flavor.ram, req.min_count, req.max_count)
        groups = self._security_groups(session, ctx, project_id, req.security_groups)
        nics = self._nics(session, ctx, project_id, req.networks, groups is not None)
        ports_needed = sum(1 for n in nics if n.port is None) * count
        if ports_needed:
            try:
                check_network_quota(session, project_id, "port", ports_needed)
            except Conflict:
                raise Forbidden("Maximum number of ports exceeded") from None
        group = self._server_group(session, ctx, req.scheduler_hints, count)
        config_drive = req.config_drive or \
            image.properties_dict.get("img_config_drive") == "mandatory"
        demand = Demand(
            vcpus=flavor.vcpus, memory_mb=flavor.ram, disk_gb=flavor_disk_gb(flavor_dict),
            availability_zone=zone, force_host=force_host or req.requested_host,
            force_node=force_node or req.requested_node,
            group_id=group.id if group else None,
            same_host=_uuid_list(req.scheduler_hints.get("same_host")),
            different_host=_uuid_list(req.scheduler_hints.get("different_host")))
        return _Plan(count=count, flavor=flavor_dict, image=image, key_data=key_data,
                     security_groups=groups, nics=nics, group=group, demand=demand,
                     zone=zone, config_drive=config_drive)

    def _available_zones(self, session: Session) -> set[str]:
        return set(session.scalars(select(ComputeService.availability_zone).where(
            ComputeService.binary == COMPUTE_BINARY, ~ComputeService.disabled)))

    @staticmethod
    def _check_destination(session: Session, host: str | None, node: str | None) -> None:
        stmt = select(ComputeNode)
        if host:
            stmt = stmt.where(ComputeNode.host == host)
        if node:
            stmt = stmt.where(ComputeNode.hypervisor_hostname == node)
        if session.scalar(stmt) is None:
            raise BadRequest(f"Compute host {host or node} could not be found.")

    def _boot_image(self, session: Session, ctx: ValidatedToken, image_id: str,
                    flavor: dict[str, Any]) -> _BootImage:
        """The image, if it is visible and active and the flavor can hold it."""
        try:
            image = image_policy.find_image(session, ctx, image_id)
        except NotFound:
            raise BadRequest("Can not find requested image") from None
        if image.status != "active":
            raise BadRequest(f"Image {image.id} is not active.")
        check_image_fits(image, flavor)
        meta = image_meta(image)
        properties = meta["properties"]
        return _BootImage(image.id, meta, properties)

    @staticmethod
    def _security_groups(session: Session, ctx: ValidatedToken, project_id: str,
                         names: builtins.list[str] | None) -> builtins.list[tuple[str, str]] | None:
        """(id, name) of each requested group, by id or by name in the project; None
        when none was asked for (ports then get the project's default group)."""
        if names is None:
            return None
        out: builtins.list[tuple[str, str]] = []
        for name in dict.fromkeys(names):
            if name == "default":
                group = ensure_default_security_group(session, project_id)
                out.append((group.id, group.name))
                continue
            by_id = session.get(SecurityGroup, name)
            if by_id is not None and (ctx.is_admin or by_id.project_id == project_id):
                out.append((by_id.id, by_id.name))
                continue
            found = session.scalars(select(SecurityGroup).where(
                SecurityGroup.name == name, SecurityGroup.project_id == project_id)).all()
            if not found:
                raise BadRequest(f"Security group {name} not found.")
            if len(found) > 1:
                raise Conflict(f"Multiple security_group matches found for name '{name}', "
                               "use an ID to be more specific.")
            out.append((found[0].id, found[0].name))
        return out

    def _nics(self, session: Session, ctx: ValidatedToken, project_id: str,
              requested: builtins.list[NetworkRequest] | str | None, groups_given: bool
              ) -> builtins.list[_Nic]:
        """The NICs to give each server, checked: networks visible, with subnets,
        external ones only for admins; ports the caller's, unused, with addresses;
        fixed IPs free. ``auto`` (and, before 2.37, no ``networks``) takes the project's
        only network."""
        if requested == "none":
            return []
        if requested is None or requested == "auto" or requested == []:
            available = session.scalars(select(Network).where(
                or_(Network.project_id == project_id, Network.shared),
                ~Network.external).order_by(Network.created_at, Network.id)).all()
            if len(available) > 1:
                raise Conflict("Multiple possible networks found, use a Network ID to be "
                               "more specific.")
            if not available:
                if requested == "auto":
                    raise BadRequest("Unable to automatically allocate a network for "
                                     f"project {project_id}")
                return []
            requested = [NetworkRequest(network_id=available[0].id)]
        assert isinstance(requested, list)
        nics: builtins.list[_Nic] = []
        for item in requested:
            if item.port_id:
                port = session.get(Port, item.port_id)
                if port is None or not (ctx.is_admin or port.project_id == project_id):
                    raise BadRequest(f"Port id {item.port_id} could not be found.")
                if port.device_id:
                    raise Conflict(f"Port {port.id} is still in use.")
                if not port.fixed_ips:
                    raise BadRequest(f"Port {port.id} requires a FixedIP in order to be "
                                     "used.")
                network = session.get(Network, port.network_id)
                assert network is not None
                self._check_external(ctx, network)
                nics.append(_Nic(network, port, None, item.tag))
                continue
            network = session.get(Network, item.network_id) if item.network_id else None
            if network is None or not (ctx.is_admin or network.project_id == project_id
                                       or network.shared or network.external):
                raise BadRequest(f"Network {item.network_id} could not be found.")
            self._check_external(ctx, network)
            if not network.subnets:
                raise BadRequest(f"Network {network.id} requires a subnet in order to boot "
                                 "instances on.")
            if groups_given and not network.port_security_enabled:
                raise BadRequest("Network requires port_security_enabled and subnet "
                                 "associated in order to apply security groups.")
            if item.fixed_ip:
                owner = session.scalar(
                    select(Port.device_id).join(IPAllocation, IPAllocation.port_id == Port.id)
                    .where(IPAllocation.ip_address == item.fixed_ip,
                           IPAllocation.subnet_id.in_([s.id for s in network.subnets])))
                if owner is not None:
                    raise BadRequest(f"Fixed IP address {item.fixed_ip} is already in use on "
                                     f"instance {owner}.")
            nics.append(_Nic(network, None, item.fixed_ip, item.tag))
        return nics

    @staticmethod
    def _check_external(ctx: ValidatedToken, network: Network) -> None:
        if network.external and not network.shared and not ctx.is_admin:
            raise Forbidden("It is not allowed to create an interface on external network "
                            f"{network.id}")

    def _server_group(self, session: Session, ctx: ValidatedToken, hints: dict[str, Any],
                      count: int) -> ServerGroup | None:
        value = hints.get("group")
        if isinstance(value, list):
            value = value[0] if value else None
        if not value:
            return None
        group = session.get(ServerGroup, str(value))
        if group is None or not (ctx.is_admin or group.project_id == ctx.project_id):
            raise BadRequest(f"Instance group {value} could not be found.")
        self.compute.quotas.check(session, group.project_id, {"server_group_members": count},
                                  group_id=group.id)
        return group

    # writing the servers --------------------------------------------------------------

    def _build(self, session: Session, ctx: ValidatedToken, req: BootRequest, plan: _Plan,
               reservation_id: str, hosts: set[str]) -> builtins.list[str]:
        now = utcnow()
        instances: builtins.list[Instance] = []
        for index in range(plan.count):
            uuid = str(uuidlib.uuid4())
            name = req.name if plan.count == 1 else f"{req.name}-{index + 1}"
            hostname = req.hostname or sanitize_hostname(req.name) or f"Server-{uuid}"
            if plan.count > 1 and not req.hostname:
                hostname = f"{hostname}-{index + 1}"
            flavor = plan.flavor
            inst = Instance(
                uuid=uuid, project_id=ctx.project_id, user_id=ctx.user_id,
                display_name=name, display_description=req.description, hostname=hostname,
                image_ref=plan.image.id, image_meta=plan.image.meta, flavor=dict(flavor),
                old_flavor=None, new_flavor=None, vcpus=flavor["vcpus"],
                memory_mb=flavor["ram"], root_gb=flavor["disk"],
                ephemeral_gb=flavor["ephemeral"], key_name=req.key_name,
                key_data=plan.key_data, user_data=req.user_data,
                config_drive=plan.config_drive, availability_zone=plan.zone,
                pinned_availability_zone=plan.zone, vm_state=states.BUILDING,
                task_state=states.SCHEDULING, task_args={}, power_state=states.NOSTATE,
                progress=0, launch_index=index, reservation_id=reservation_id,
                locked=False, access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6,
                ports=[], security_groups=[g[1] for g in plan.security_groups or []]
                or ["default"], block_device_mapping=list(req.block_device_mapping),
                created_at=now, updated_at=now, deleted=False,
                metadata_items=[InstanceMetadata(key=k, value=v)
                                for k, v in req.metadata.items()],
                tags=[InstanceTag(tag=t) for t in dict.fromkeys(req.tags)], faults=[])
            session.add(inst)
            instances.append(inst)
        # the rows first: on SQLite this takes the write lock before hosts are chosen
        session.flush()
        actions = {i.uuid: record_action(session, ctx, i, "create") for i in instances}
        if plan.group is not None:
            for inst in instances:
                session.add(ServerGroupMember(group_id=plan.group.id, instance_uuid=inst.uuid))
        session.flush()
        failure: NoValidHost | None = None
        placements = []
        for inst in instances:
            try:
                placements.append(self.compute.scheduler.select(
                    session, _replace_demand(plan.demand, inst.uuid)))
            except NoValidHost as exc:
                failure = exc
                break
            inst.host = placements[-1].host  # later instances count this one
            session.flush()
        if failure is not None:
            for inst in instances:
                self._schedule_failed(inst, actions[inst.uuid], str(failure))
            log.warning("no valid host for %d server(s) of reservation %s: %s",
                        len(instances), reservation_id, failure.reason)
            return [i.uuid for i in instances]
        for inst, placement in zip(instances, placements, strict=True):
            inst.host, inst.node = placement.host, placement.node
            inst.availability_zone = placement.availability_zone
            inst.task_state = states.SPAWNING
            inst.ports = self._plug(session, ctx, inst, plan)
            hosts.add(placement.host)
        return [i.uuid for i in instances]

    @staticmethod
    def _schedule_failed(inst: Instance, action: InstanceAction, message: str) -> None:
        inst.host = None
        inst.node = None
        inst.vm_state = states.ERROR
        inst.task_state = None
        inst.faults.append(InstanceFault(code=500, message=message[:255], details=message,
                                         host=None))
        finish_action(action, SCHEDULE_EVENT, "Error", message)

    def _plug(self, session: Session, ctx: ValidatedToken, inst: Instance, plan: _Plan
              ) -> builtins.list[dict[str, Any]]:
        """Create (or take over) the server's ports, bound to its host."""
        owner = f"compute:{inst.availability_zone}"
        entries: builtins.list[dict[str, Any]] = []
        group_ids = [g[0] for g in plan.security_groups] \
            if plan.security_groups is not None else None
        for nic in plan.nics:
            if nic.port is not None:
                port = nic.port
                port.device_id = inst.uuid
                port.device_owner = owner
                _bind(port, inst.host)
                preserve = True
            else:
                fixed_ips = [{"ip_address": nic.fixed_ip}] if nic.fixed_ip else None
                try:
                    port = create_port_in(
                        session, network_id=nic.network.id, project_id=inst.project_id,
                        fixed_ips=fixed_ips, device_id=inst.uuid, device_owner=owner,
                        security_group_ids=group_ids
                        if nic.network.port_security_enabled else None,
                        binding={"host_id": inst.host},
                        base_mac=self.config.network.base_mac,
                        max_address_pairs=self.config.network.max_allowed_address_pairs,
                        is_admin=ctx.is_admin)
                except OneStackError as exc:
                    if exc.fault == "IpAddressGenerationFailure":
                        raise Conflict("No fixed IP addresses available for network: "
                                       f"{nic.network.id}") from None
                    if exc.fault == "IpAddressAlreadyAllocated":
                        raise BadRequest(f"Fixed IP address {nic.fixed_ip} is already in "
                                         "use.") from None
                    raise
                preserve = False
            entry: dict[str, Any] = {"port_id": port.id, "preserve_on_delete": preserve}
            if nic.tag:
                entry["tag"] = nic.tag
            entries.append(entry)
        return entries

    # -- reading ----------------------------------------------------------------------

    def get(self, ctx: ValidatedToken, server_id: str) -> ServerView:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:servers:show", inst.project_id)
            return self.views(session, [inst])[0]

    def interfaces(self, ctx: ValidatedToken, server_id: str) -> builtins.list[dict[str, Any]]:
        """Nova's ``os-interface`` entries of a server (its ports, in NIC order):
        ``port_id``, ``net_id``, ``mac_addr``, ``port_state``, ``fixed_ips``, ``tag``."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-attach-interfaces:list",
                                  inst.project_id)
            entries = [e for e in inst.ports or [] if isinstance(e, dict) and e.get("port_id")]
            port_ids = [e["port_id"] for e in entries]
            ports = {p.id: p for p in session.scalars(
                select(Port).where(Port.id.in_(port_ids)))} if port_ids else {}
            answer: builtins.list[dict[str, Any]] = []
            for entry in entries:
                port = ports.get(entry["port_id"])
                if port is None:
                    continue
                answer.append({
                    "port_id": port.id, "net_id": port.network_id,
                    "mac_addr": port.mac_address, "port_state": port.status,
                    "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                                  for a in port.fixed_ips],
                    "tag": entry.get("tag")})
            return answer

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
            stmt = self._list_statement(ctx, query)
            candidates = self._post_filter(session, query, session.execute(stmt).all())
            start = 0
            if query.marker is not None:
                position = next((i for i, uuid in enumerate(candidates)
                                 if uuid == query.marker), None)
                if position is None:
                    raise BadRequest(f"marker [{query.marker}] not found")
                start = position + 1
            page = candidates[start:start + query.limit]
            if not page:
                return []
            rows = {i.uuid: i for i in session.scalars(
                select(Instance).where(Instance.uuid.in_(page)))}
            instances = [rows[u] for u in page if u in rows]
            if not query.detail:
                return [ServerView(i) for i in instances]
            return self.views(session, instances)

    def _list_statement(self, ctx: ValidatedToken, query: ServerQuery) -> Select[Any]:
        columns = [Instance.uuid, *(Instance.__table__.c[c] for c in dict.fromkeys(query.regex))]
        stmt = select(*columns)
        if not query.all_tenants:
            if ctx.project_id:
                stmt = stmt.where(Instance.project_id == ctx.project_id)
            else:
                stmt = stmt.where(Instance.user_id == ctx.user_id)
        deleted = query.deleted
        if deleted is None and query.changes_since is None and query.changes_before is None:
            deleted = False
        if deleted is not None:
            stmt = stmt.where(Instance.deleted.is_(deleted))
        if query.changes_since is not None:
            stmt = stmt.where(Instance.updated_at >= query.changes_since)
        if query.changes_before is not None:
            stmt = stmt.where(Instance.updated_at <= query.changes_before)
        for column, values in query.exact.items():
            col = Instance.__table__.c[column]
            if None in values:
                stmt = stmt.where(or_(col.in_([v for v in values if v is not None]),
                                      col.is_(None)))
            else:
                stmt = stmt.where(col.in_(values))
        if query.vm_states is not None:
            stmt = stmt.where(Instance.vm_state.in_(query.vm_states))
        if query.task_states is not None:
            named = [t for t in query.task_states if t is not None]
            stmt = stmt.where(or_(Instance.task_state.in_(named), Instance.task_state.is_(None))
                              if None in query.task_states else Instance.task_state.in_(named))
        if query.locked is not None:
            stmt = stmt.where(Instance.locked.is_(query.locked))
        if query.image is not None:
            stmt = stmt.where(Instance.image_ref == query.image)
        if query.tags:
            for tag in query.tags:
                stmt = stmt.where(Instance.uuid.in_(
                    select(InstanceTag.instance_uuid).where(InstanceTag.tag == tag)))
        if query.tags_any:
            stmt = stmt.where(Instance.uuid.in_(
                select(InstanceTag.instance_uuid).where(InstanceTag.tag.in_(query.tags_any))))
        if query.not_tags:
            having_all = select(InstanceTag.instance_uuid).where(
                InstanceTag.tag.in_(query.not_tags)).group_by(InstanceTag.instance_uuid) \
                .having(func.count(func.distinct(InstanceTag.tag)) == len(set(query.not_tags)))
            stmt = stmt.where(not_(Instance.uuid.in_(having_all)))
        if query.not_tags_any:
            stmt = stmt.where(not_(Instance.uuid.in_(
                select(InstanceTag.instance_uuid).where(
                    InstanceTag.tag.in_(query.not_tags_any)))))
        order: builtins.list[Any] = []
        for key, ascending in [*query.sorts, ("uuid", False)]:
            sort_col: Any = SORT_COLUMNS[key]
            order.append(sort_col.asc().nulls_first() if ascending
                         else sort_col.desc().nulls_last())
        return stmt.order_by(*order)

    def _post_filter(self, session: Session, query: ServerQuery, rows: Sequence[Any]
                     ) -> builtins.list[str]:
        """What SQL cannot do portably: regular expressions (names, addresses) and the
        flavor (kept as a copy in each row)."""
        patterns = {}
        for column, pattern in query.regex.items():
            try:
                patterns[column] = re.compile(pattern)
            except re.error as exc:
                raise BadRequest(f"Invalid regular expression for {column}: {exc}") from None
        ip_patterns: builtins.list[re.Pattern[str] | None] = []
        for ip_pattern in (query.ip, query.ip6):
            try:
                ip_patterns.append(re.compile(ip_pattern) if ip_pattern is not None else None)
            except re.error as exc:
                raise BadRequest(f"Invalid regular expression for ip: {exc}") from None
        uuids = []
        for row in rows:
            ok = True
            for column, regex in patterns.items():
                value = getattr(row, column)
                if value is None or not regex.search(_regex_text(value)):
                    ok = False
                    break
            if ok:
                uuids.append(row.uuid)
        if query.flavor is not None and uuids:
            flavors: dict[str, Any] = dict(session.execute(
                select(Instance.uuid, Instance.flavor).where(Instance.uuid.in_(uuids))).all())
            uuids = [u for u in uuids if str((flavors.get(u) or {}).get("id")) == query.flavor]
        if any(ip_patterns) and uuids:
            addresses = self._fixed_addresses(session, uuids)
            v4, v6 = ip_patterns
            uuids = [u for u in uuids if any(
                (v4 is not None and ":" not in a and v4.match(a))
                or (v6 is not None and ":" in a and v6.match(a))
                for a in addresses.get(u, ()))]
        return uuids

    @staticmethod
    def _fixed_addresses(session: Session, uuids: builtins.list[str]
                         ) -> dict[str, builtins.list[str]]:
        out: dict[str, builtins.list[str]] = {}
        for start in range(0, len(uuids), 500):
            chunk = uuids[start:start + 500]
            rows = session.execute(
                select(Port.device_id, IPAllocation.ip_address)
                .join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(Port.device_id.in_(chunk)))
            for device_id, address in rows:
                out.setdefault(device_id, []).append(address)
        return out

    def views(self, session: Session, instances: builtins.list[Instance]
              ) -> builtins.list[ServerView]:
        """The views of a page of instances, with a handful of queries for all."""
        if not instances:
            return []
        uuids = [i.uuid for i in instances]
        addresses, groups = self._network_info(session, instances)
        services = {s.host: s for s in session.scalars(select(ComputeService).where(
            ComputeService.binary == COMPUTE_BINARY,
            ComputeService.host.in_({i.host for i in instances if i.host})))}
        memberships: dict[str, builtins.list[str]] = {}
        for group_id, uuid in session.execute(
                select(ServerGroupMember.group_id, ServerGroupMember.instance_uuid)
                .where(ServerGroupMember.instance_uuid.in_(uuids))):
            memberships.setdefault(uuid, []).append(group_id)
        views = []
        for inst in instances:
            service = services.get(inst.host) if inst.host else None
            zone = inst.availability_zone or ""
            views.append(ServerView(
                instance=inst,
                addresses={} if inst.vm_state == states.BUILDING else addresses.get(
                    inst.uuid, {}),
                security_groups=groups.get(inst.uuid, []),
                host_status=host_status(service) if inst.host else "",
                availability_zone=zone, server_groups=memberships.get(inst.uuid, [])))
        return views

    @staticmethod
    def _network_info(session: Session, instances: builtins.list[Instance]
                      ) -> tuple[dict[str, Addresses], dict[str, builtins.list[str]]]:
        """Addresses per network label and security group names of each instance,
        from its ports (in NIC order)."""
        port_ids = [p["port_id"] for i in instances for p in i.ports or []
                    if isinstance(p, dict) and p.get("port_id")]
        if not port_ids:
            return {}, {}
        ports = {p.id: p for p in session.execute(
            select(Port.id, Port.network_id, Port.mac_address).where(Port.id.in_(port_ids)))}
        fixed: dict[str, builtins.list[str]] = {}
        for port_id, address in session.execute(
                select(IPAllocation.port_id, IPAllocation.ip_address)
                .where(IPAllocation.port_id.in_(port_ids)).order_by(IPAllocation.id)):
            fixed.setdefault(port_id, []).append(address)
        floating: dict[str, builtins.list[str]] = {}
        for fixed_port_id, floating_address in session.execute(
                select(FloatingIP.fixed_port_id, FloatingIP.floating_ip_address)
                .where(FloatingIP.fixed_port_id.in_(port_ids))
                .order_by(FloatingIP.floating_ip_address)):
            if fixed_port_id:
                floating.setdefault(fixed_port_id, []).append(floating_address)
        names = dict(session.execute(select(Network.id, Network.name).where(
            Network.id.in_({p.network_id for p in ports.values()}))).all())
        group_names: dict[str, builtins.list[str]] = {}
        for port_id, name in session.execute(
                select(SecurityGroupPortBinding.port_id, SecurityGroup.name)
                .join(SecurityGroup,
                      SecurityGroup.id == SecurityGroupPortBinding.security_group_id)
                .where(SecurityGroupPortBinding.port_id.in_(port_ids))
                .order_by(SecurityGroup.name)):
            group_names.setdefault(port_id, []).append(name)
        addresses: dict[str, Addresses] = {}
        groups: dict[str, builtins.list[str]] = {}
        for inst in instances:
            labels: dict[str, dict[str, builtins.list[Address]]] = {}
            seen_groups: builtins.list[str] = []
            for entry in inst.ports or []:
                port = ports.get(entry.get("port_id")) if isinstance(entry, dict) else None
                if port is None:
                    continue
                label = labels.setdefault(names.get(port.network_id) or "",
                                          {"fixed": [], "floating": []})
                for address in fixed.get(port.id, []):
                    label["fixed"].append(Address(address, _version(address), "fixed",
                                                  port.mac_address))
                for address in floating.get(port.id, []):
                    label["floating"].append(Address(address, _version(address), "floating",
                                                     port.mac_address))
                for name in group_names.get(port.id, []):
                    if name not in seen_groups:
                        seen_groups.append(name)
            addresses[inst.uuid] = {k: v["fixed"] + v["floating"] for k, v in labels.items()}
            groups[inst.uuid] = seen_groups
        return addresses, groups

    # -- update and delete --------------------------------------------------------------

    def update(self, ctx: ValidatedToken, server_id: str, changes: dict[str, Any]
               ) -> ServerView:
        """Change ``display_name``, ``display_description``, ``hostname``,
        ``access_ip_v4`` or ``access_ip_v6``."""
        allowed = {"display_name", "display_description", "hostname", "access_ip_v4",
                   "access_ip_v6"}
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:servers:update", inst.project_id)
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

    # -- metadata ---------------------------------------------------------------------

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

    def tags(self, ctx: ValidatedToken, server_id: str) -> builtins.list[str]:
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

    def set_tags(self, ctx: ValidatedToken, server_id: str, tags: builtins.list[str]
                 ) -> builtins.list[str]:
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


# -- private ---------------------------------------------------------------------------


@dataclass
class _BootImage:
    id: str
    meta: dict[str, Any]
    properties_dict: dict[str, str]


@dataclass
class _Nic:
    network: Network
    port: Port | None
    fixed_ip: str | None
    tag: str | None


@dataclass
class _Plan:
    count: int
    flavor: dict[str, Any]
    image: _BootImage
    key_data: str | None
    security_groups: list[tuple[str, str]] | None
    nics: list[_Nic]
    group: ServerGroup | None
    demand: Demand
    zone: str | None
    config_drive: bool


def _replace_demand(demand: Demand, uuid: str) -> Demand:
    return Demand(**{**demand.__dict__, "instance_uuid": uuid})


def _bind(port: Port, host: str | None) -> None:
    port.binding_host_id = host or ""
    port.binding_vif_type = BOUND_VIF_TYPE if host else "unbound"
    port.binding_vif_details = dict(BOUND_VIF_DETAILS) if host else {}


def _uuid_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _regex_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def validate_user_data(value: str) -> None:
    """Base64 as Nova decodes it; at most 65535 characters (Nova's schema)."""
    if len(value) > 65535:
        raise BadRequest("Invalid input for field/attribute user_data. Value: is too long "
                         "(at most 65535 characters of base64).")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("User data needs to be valid base 64.") from None
