"""Creating servers, in one transaction: validate everything (flavor, image, key pair,
networks, ports, security groups, server group, quotas), write the instances
(``building``, ``scheduling``), let the scheduler pick a host for each, then create
their ports on it (``device_id`` the server, ``device_owner`` ``compute:<zone>``, bound
to the host) and hand them to the host (``spawning``). Any error rolls all of it back;
only "no valid host" is not an error of the request: as in Nova the servers are created
in ``error`` with a fault that says why, and no port is taken.

Rebuild shares the image checks (``check_image_fits``, ``image_meta``) and the
password generator."""

from __future__ import annotations

import logging
import re
import secrets
import string
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound, OneStackError
from onestack.db.models import (
    ComputeNode,
    ComputeService,
    Instance,
    InstanceAction,
    InstanceFault,
    InstanceMetadata,
    InstanceTag,
    IPAllocation,
    KeyPair,
    Network,
    Port,
    SecurityGroup,
    ServerGroup,
    ServerGroupMember,
    utcnow,
)
from onestack.services.compute import policy, states
from onestack.services.compute.instances import finish_action, record_action
from onestack.services.compute.scheduler import (
    COMPUTE_BINARY,
    Demand,
    NoValidHost,
    flavor_disk_gb,
)
from onestack.services.compute.server_requests import (
    BootRequest,
    BootResult,
    NetworkRequest,
    personality_deltas,
    stored_personality,
    validate_user_data,
)
from onestack.services.compute.volume_attachments import BootVolume
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import policy as image_policy
from onestack.services.network.base import retrying
from onestack.services.network.ports import BOUND_VIF_DETAILS, BOUND_VIF_TYPE, create_port_in
from onestack.services.network.quotas import check_quota as check_network_quota
from onestack.services.network.security_groups import ensure_default_security_group

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

#: Length of generated admin passwords (Nova's ``password_length``).
PASSWORD_LENGTH = 12
#: Events of API-side work in os-instance-actions (Nova's names).
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
GiB = 1 << 30


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


def image_meta(image: Any) -> dict[str, Any]:
    """What a server keeps of its image (``Instance.image_meta``)."""
    return {"id": image.id, "name": image.name, "status": image.status,
            "disk_format": image.disk_format, "container_format": image.container_format,
            "size": image.size, "virtual_size": image.virtual_size,
            "min_disk": image.min_disk, "min_ram": image.min_ram,
            "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value, "owner": image.owner,
            "properties": {p.name: p.value for p in image.properties}}


_TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")


def check_disk_config(requested: bool | None, properties: dict[str, Any], image_id: str
                      ) -> None:
    """``OS-DCF:diskConfig`` against the image's ``auto_disk_config`` property, as Nova:
    AUTO asked of an image whose property says ``disabled`` is a 400."""
    value = str(properties.get("auto_disk_config") or "").strip().lower()
    if requested and value == "disabled":
        raise BadRequest(f"Requested image {image_id} has automatic disk resize disabled.")


def default_disk_config(properties: dict[str, Any]) -> bool:
    """AUTO when the image's ``auto_disk_config`` property is a true word."""
    return str(properties.get("auto_disk_config") or "").strip().lower() in _TRUE_WORDS


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


def available_networks(session: Session, project_id: str) -> list[Network]:
    """The networks a server of the project gets without naming one (Nova's "available
    networks"): the project's own and shared ones, never external ones."""
    return list(session.scalars(select(Network).where(
        or_(Network.project_id == project_id, Network.shared),
        ~Network.external).order_by(Network.created_at, Network.id)))


class ServerCreation:
    """``Servers.create``: the checks, the rows, the scheduling and the ports."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        self.config = compute.config

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
        image_id, volumes = self._boot_source(req)
        if image_id and not any(v.boot_index == 0 for v in volumes):
            # the snapshot of a server booted from a volume: its volumes, made afresh
            mapped = self._image_volumes(ctx, image_id)
            if mapped is not None:
                image_id, volumes = "", [*mapped, *volumes]
        if volumes and req.max_count > 1:
            raise BadRequest("Block Device Mapping is Invalid: servers with volumes are "
                             "created one at a time (max_count 1).")
        boot_volume = next((v for v in volumes if v.boot_index == 0), None)
        if req.user_data is not None:
            validate_user_data(req.user_data)
        admin_pass = req.admin_pass if req.admin_pass is not None else generate_password()
        if req.networks == "auto":
            self._auto_allocate(ctx, ctx.project_id)
        reservation_id = "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                        for _ in range(8))
        hosts: set[str] = set()

        def work(session: Session) -> list[str]:
            hosts.clear()
            plan = self._plan(session, ctx, req, image_id, zone, force_host, force_node,
                              boot_volume)
            plan.uuid, plan.volumes = server_uuid, entries
            return self._build(session, ctx, req, plan, reservation_id, hosts)

        server_uuid = str(uuidlib.uuid4()) if volumes else None
        entries: list[dict[str, Any]] = []
        if volumes:
            assert server_uuid is not None
            self._check_volume_images(ctx, volumes)
            entries = self.compute.volume_attachments.prepare_boot(
                ctx, server_uuid, volumes, local_root=bool(image_id))
        try:
            uuids = retrying(self.db, work)
        except Exception:
            if volumes:
                self.compute.volume_attachments.undo_boot(ctx, volumes)
            raise
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
    def _boot_source(req: BootRequest) -> tuple[str, list[BootVolume]]:
        """The image to boot to a local disk (``imageRef``, or a mapping of source
        ``image`` and destination ``local``), and the volumes of mappings with
        destination ``volume``: made from an image (``volume_size``), blank, or an
        existing volume; the one with ``boot_index`` 0 is booted from (then there is
        no image to boot, ""). Nova's 400s for mappings that do not fit together."""
        image_id = req.image_ref
        local_image = ""
        volumes: list[BootVolume] = []
        for index, bdm in enumerate(req.block_device_mapping):
            source = bdm.get("source_type") or ("volume" if bdm.get("volume_id") else "")
            destination = bdm.get("destination_type") or ("volume" if source == "volume"
                                                          else "local")
            raw_index = bdm.get("boot_index")
            boot_index = int(raw_index) if raw_index is not None and \
                str(raw_index).lstrip("-").isdigit() else None
            if boot_index is not None and boot_index < 0:
                boot_index = None
            uuid = bdm.get("uuid") or bdm.get("image_id") or bdm.get("volume_id")
            if destination == "local":
                if source != "image":
                    raise BadRequest(f"Block Device Mapping is Invalid: source_type "
                                     f"{source!r} of entry {index} cannot have destination "
                                     "local; only an image can.")
                if boot_index != 0:
                    raise BadRequest("Block Device Mapping is Invalid: an image to a local "
                                     "disk must be the boot device (boot_index 0).")
                if not uuid:
                    raise BadRequest("Block Device Mapping is Invalid: an image mapping "
                                     "needs the image's uuid.")
                if image_id and uuid != image_id:
                    raise BadRequest("Block Device Mapping is Invalid: the image of the "
                                     "mapping differs from imageRef.")
                local_image = image_id = str(uuid)
                continue
            size = bdm.get("volume_size")
            try:
                size_gb = int(size) if size is not None else 0
            except (TypeError, ValueError):
                raise BadRequest(f"Block Device Mapping is Invalid: volume_size {size!r} "
                                 "is not an integer.") from None
            if source in ("image", "blank") and size_gb <= 0:
                raise BadRequest("Block Device Mapping is Invalid: Images with "
                                 "destination_type 'volume' need to have a non-zero size "
                                 "specified" if source == "image" else
                                 "Block Device Mapping is Invalid: a blank volume needs a "
                                 "volume_size.")
            if source in ("image", "volume", "snapshot") and not uuid:
                raise BadRequest(f"Block Device Mapping is Invalid: entry {index} (source "
                                 f"{source}) needs a uuid.")
            if source == "blank" and boot_index == 0:
                raise BadRequest("Block Device Mapping is Invalid: Boot sequence for the "
                                 "instance and image/block device mapping combination is "
                                 "not valid.")
            delete = bdm.get("delete_on_termination", False)
            if isinstance(delete, str):
                delete = delete.strip().lower() in ("1", "t", "true", "on", "y", "yes")
            volumes.append(BootVolume(
                source_type=source, boot_index=boot_index,
                volume_id=str(uuid) if source == "volume" else "",
                image_id=str(uuid) if source == "image" else "",
                snapshot_id=str(uuid) if source == "snapshot" else "", size_gb=size_gb,
                delete_on_termination=bool(delete),
                device_name=str(bdm.get("device_name") or ""), tag=bdm.get("tag")))
        booting = [v for v in volumes if v.boot_index == 0]
        if len(booting) + (1 if local_image else 0) > 1:
            raise BadRequest("Block Device Mapping is Invalid: Boot sequence for the "
                             "instance and image/block device mapping combination is not "
                             "valid.")
        if booting:
            if booting[0].source_type == "image" and image_id and \
                    image_id != booting[0].image_id and not local_image:
                image_id = ""  # imageRef names the image the boot volume is made from
            return "", volumes
        if not image_id:
            raise BadRequest("Missing imageRef attribute")
        return image_id, volumes

    def _image_volumes(self, ctx: ValidatedToken, image_id: str) -> list[BootVolume] | None:
        """The volumes an image made by ``createImage`` of a server booted from a
        volume maps (None for other images, and for one the caller cannot see: the
        image checks say so later)."""
        with self.db.session() as session:
            try:
                image = image_policy.find_image(session, ctx, image_id)
            except NotFound:
                return None
            return self.compute.volume_attachments.image_mappings(ctx, image)

    # the checks, in one transaction -------------------------------------------------

    def _check_volume_images(self, ctx: ValidatedToken, volumes: list[BootVolume]) -> None:
        """The images volumes are made from: visible and active (before any volume is
        made)."""
        with self.db.session() as session:
            for item in volumes:
                if item.source_type != "image":
                    continue
                try:
                    image = image_policy.find_image(session, ctx, item.image_id)
                except NotFound:
                    raise BadRequest(f"Image {item.image_id} could not be found.") from None
                if image.status != "active":
                    raise BadRequest(f"Image {image.id} is not active.")
                if (image.min_disk or 0) > item.size_gb:
                    raise BadRequest(f"Volume is smaller than the minimum size specified in "
                                     f"image metadata. Volume size is "
                                     f"{item.size_gb * GiB} bytes, minimum size is "
                                     f"{image.min_disk * GiB} bytes.")

    def _plan(self, session: Session, ctx: ValidatedToken, req: BootRequest, image_id: str,
              zone: str | None, force_host: str | None, force_node: str | None,
              boot_volume: BootVolume | None = None) -> _Plan:
        project_id = ctx.project_id
        assert project_id is not None
        if zone and not force_host:
            if zone not in self._available_zones(session):
                raise BadRequest("The requested availability zone is not available")
        if req.requested_host or req.requested_node:
            self._check_destination(session, req.requested_host, req.requested_node)
        flavor = self.compute.flavors.get_for_boot(session, req.flavor_ref, ctx)
        flavor_dict = self.compute.flavors.snapshot(flavor)
        if boot_volume is None:
            image = self._boot_image(session, ctx, image_id, flavor_dict)
        else:  # the volume is the disk: the flavor's disk size does not apply
            image = self._volume_image(session, ctx, boot_volume, flavor_dict)
        key_data = None
        if req.key_name is not None:
            keypair = session.get(KeyPair, (ctx.user_id, req.key_name))
            if keypair is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = keypair.public_key
        self.compute.quotas.check(session, project_id, {"metadata_items": len(req.metadata)},
                                  user_id=ctx.user_id)
        if req.personality:
            self.compute.quotas.check(session, project_id,
                                      personality_deltas(req.personality))
        count = self.compute.quotas.check_instances(
            session, project_id, flavor.vcpus, flavor.ram, req.min_count, req.max_count,
            user_id=ctx.user_id)
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
        check_disk_config(req.auto_disk_config, image.properties_dict,
                          image.id or image.meta.get("id", ""))
        demand = Demand(
            vcpus=flavor.vcpus, memory_mb=flavor.ram,
            disk_gb=0 if boot_volume else flavor_disk_gb(flavor_dict),
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

    @staticmethod
    def _volume_image(session: Session, ctx: ValidatedToken, volume: BootVolume,
                      flavor: dict[str, Any]) -> _BootImage:
        """What a server booted from a volume keeps of the image the volume was made
        from (nothing for an existing volume); ``image_ref`` stays empty, as in Nova."""
        if volume.source_type != "image":
            return _BootImage("", {}, {})
        try:
            image = image_policy.find_image(session, ctx, volume.image_id)
        except NotFound:
            raise BadRequest(f"Image {volume.image_id} could not be found.") from None
        if int(flavor.get("ram") or 0) < (image.min_ram or 0):
            raise BadRequest("Flavor's memory is too small for requested image.")
        meta = image_meta(image)
        return _BootImage("", meta, meta["properties"])

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
                         names: list[str] | None) -> list[tuple[str, str]] | None:
        """(id, name) of each requested group, by id or by name in the project; None
        when none was asked for (ports then get the project's default group)."""
        if names is None:
            return None
        out: list[tuple[str, str]] = []
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
              requested: list[NetworkRequest] | str | None, groups_given: bool
              ) -> list[_Nic]:
        """The NICs to give each server, checked: networks visible, with subnets,
        external ones only for admins; ports the caller's, unused, with addresses;
        fixed IPs free. ``auto`` (and, before 2.37, no ``networks``) takes the project's
        only network."""
        if requested == "none":
            return []
        if requested is None or requested == "auto" or requested == []:
            available = available_networks(session, project_id)
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
        nics: list[_Nic] = []
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

    def _auto_allocate(self, ctx: ValidatedToken, project_id: str) -> None:
        """``networks: "auto"`` for a project with no network of its own or shared:
        Neutron's auto-allocated topology (made, or found, in its own transaction, as
        Nova asks Neutron), which ``_nics`` then finds. Nova's 400 when it cannot be."""
        with self.db.session() as session:
            if available_networks(session, project_id):
                return
        try:
            self.compute.network.auto_allocation.network_for(ctx, project_id)
        except OneStackError as exc:
            log.warning("auto-allocating a network for project %s: %s", project_id, exc)
            raise BadRequest("Unable to automatically allocate a network for project "
                             f"{project_id}") from None

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
               reservation_id: str, hosts: set[str]) -> list[str]:
        now = utcnow()
        instances: list[Instance] = []
        for index in range(plan.count):
            uuid = plan.uuid or str(uuidlib.uuid4())
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
                injected_files=stored_personality(req.personality),
                config_drive=plan.config_drive, availability_zone=plan.zone,
                pinned_availability_zone=plan.zone, vm_state=states.BUILDING,
                task_state=states.SCHEDULING, task_args={}, power_state=states.NOSTATE,
                progress=0, launch_index=index, reservation_id=reservation_id,
                locked=False, access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6,
                auto_disk_config=req.auto_disk_config
                if req.auto_disk_config is not None
                else default_disk_config(plan.image.properties_dict),
                ports=[], security_groups=[g[1] for g in plan.security_groups or []]
                or ["default"],
                block_device_mapping=[
                    b for b in req.block_device_mapping
                    if (b.get("destination_type") or "local") == "local"] + plan.volumes
                if plan.volumes else list(req.block_device_mapping),
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
              ) -> list[dict[str, Any]]:
        """Create (or take over) the server's ports, bound to its host."""
        owner = f"compute:{inst.availability_zone}"
        entries: list[dict[str, Any]] = []
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
    #: A server with volumes: its uuid (the volumes are attached to it before its row
    #: is written) and their block device mappings.
    uuid: str | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)


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
