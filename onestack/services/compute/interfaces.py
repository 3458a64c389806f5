"""A server's interfaces (``os-interface``): list, show, attach and detach ports of a
server that exists, hot-plugged into its running guest.

A server's NICs are ``Instance.ports``, in order: one entry per port, ::

    {"port_id", "preserve_on_delete", "tag"?, "status"?: "attaching" | "detaching",
     "action_id"?}

Attaching takes the caller's unused port (``port_id``), or makes one on ``net_id``
(with ``fixed_ips``' address), or, with neither, on the one network the project may use
(its own or a shared one, not external; two or more is Nova's 400 "Multiple possible
networks found"). The port is bound to the server's host in the request (``device_id``
the server, ``device_owner`` ``compute:<zone>``, ``binding:host_id``), the entry added
and the host woken: its agent plugs the port (tap on the network's bridge, with the
port's security groups) and hot-plugs the NIC (``onestack.agent.nics``), then reports
the port ``ACTIVE``, which completes the entry and the action's
``compute_attach_interface`` event. A server whose guest does not run (stopped, or
never started) has nothing to plug: its entry is complete at once and the NIC is on
its QEMU command line at its next start.

Detaching marks the entry ``detaching``, which takes the port out of the host's desired
state; the agent unplugs the NIC and the tap and reports the port ``DOWN``; then the
port is unbound (a port the user gave) or deleted (one compute made for ``net_id``),
the entry dropped and ``compute_detach_interface`` finished. A server whose guest does
not run is detached at once.

States as Nova's ``check_instance_state`` for both: ``ACTIVE``, ``PAUSED`` and
``STOPPED`` with no task running; a locked server is a 409 for non-admins.
"""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound, OneStackError
from onestack.db.models import (
    Instance,
    InstanceAction,
    InstanceActionEvent,
    IPAllocation,
    Network,
    Port,
    SecurityGroup,
    utcnow,
)
from onestack.hostlink import capabilities as caps
from onestack.services.compute import policy, states
from onestack.services.compute.instances import (
    check_lock,
    check_state,
    find_instance,
    record_action,
    touch,
)
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import ipam
from onestack.services.network.ports import (
    BOUND_VIF_DETAILS,
    BOUND_VIF_TYPE,
    create_port_in,
    delete_port_in,
)
from onestack.services.network.quotas import check_quota as check_network_quota
from onestack.services.network.security_groups import ensure_default_security_group

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

ATTACHING, DETACHING = "attaching", "detaching"
#: Nova's states an interface may be attached in or detached from.
INTERFACE_VM_STATES = (states.ACTIVE, states.PAUSED, states.STOPPED)
#: States whose guest runs (or is held paused): its host hot-plugs.
GUEST_RUNS = (states.ACTIVE, states.PAUSED)
ATTACH_EVENT = "compute_attach_interface"
DETACH_EVENT = "compute_detach_interface"


def port_entries(inst: Instance) -> list[dict[str, Any]]:
    return [dict(e) for e in inst.ports or [] if isinstance(e, dict) and e.get("port_id")]


def desired_port_ids(inst: Instance) -> list[str]:
    """The ports the server's host should have plugged (not those being detached)."""
    return [e["port_id"] for e in port_entries(inst) if e.get("status") != DETACHING]


class Interfaces:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        self.config = compute.config

    # -- reading ------------------------------------------------------------------------

    def list(self, ctx: ValidatedToken, server_id: str) -> list[dict[str, Any]]:
        """Every port of the server (being attached or detached too: the network still
        has it bound to the server), in NIC order."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-attach-interfaces:list",
                                  inst.project_id)
            entries = port_entries(inst)
            ports = {p.id: p for p in session.scalars(select(Port).where(
                Port.id.in_([e["port_id"] for e in entries])))} if entries else {}
            return [_view(ports[e["port_id"]], e) for e in entries if e["port_id"] in ports]

    def show(self, ctx: ValidatedToken, server_id: str, port_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-attach-interfaces:show",
                                  inst.project_id)
            port = session.get(Port, port_id) if len(port_id) <= 36 else None
            if port is None or not (ctx.is_admin or port.project_id == inst.project_id
                                    or port.device_id == inst.uuid):
                raise NotFound(f"Port {port_id} could not be found.")
            entry = next((e for e in port_entries(inst) if e["port_id"] == port_id), None)
            if entry is None or port.device_id != inst.uuid:
                raise NotFound(f"Instance {inst.uuid} does not have a port with id "
                               f"{port_id}")
            return _view(port, entry)

    # -- attach -------------------------------------------------------------------------

    def attach(self, ctx: ValidatedToken, server_id: str, *, network_id: str | None = None,
               port_id: str | None = None, fixed_ip: str | None = None,
               tag: str | None = None) -> dict[str, Any]:
        """Attach a port (see the module docstring); the view of the new interface."""
        if network_id and port_id:
            raise BadRequest("Must not input both network_id and port_id")
        if fixed_ip and not network_id:
            raise BadRequest("Must input network_id when request IP address")
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_member(ctx, "os_compute_api:os-attach-interfaces:create",
                                  inst.project_id)
            # what the host cannot do is said first, as for volumes
            self.compute.hosts.require_capability(session, inst.host, caps.ATTACH_INTERFACE,
                                                  "attach interface")
            check_lock(ctx, inst)
            check_state("attach_interface", inst, INTERFACE_VM_STATES,
                        must_have_launched=False)
            if port_id:
                port, preserve = self._take_port(session, ctx, inst, port_id), True
            else:
                network = self._network(session, ctx, inst, network_id)
                port, preserve = self._make_port(session, ctx, inst, network, fixed_ip), False
            runs = inst.host is not None and inst.launched_at is not None \
                and inst.vm_state in GUEST_RUNS
            action = record_action(session, ctx, inst, "attach_interface")
            now = utcnow()
            event = InstanceActionEvent(event=ATTACH_EVENT, start_time=now, host=inst.host)
            action.events.append(event)
            session.flush()
            entry: dict[str, Any] = {"port_id": port.id, "preserve_on_delete": preserve}
            if tag:
                entry["tag"] = tag
            if runs:
                entry.update(status=ATTACHING, action_id=action.id)
            else:
                _finish(action, event, "Success")
            inst.ports = [*port_entries(inst), entry]
            touch(inst)
            view = _view(port, entry)
            host = inst.host
        log.info("instance %s: port %s attached%s", server_id, view["port_id"],
                 " (the host plugs it)" if runs else "")
        self.compute.notify(host)
        return view

    def _take_port(self, session: Session, ctx: ValidatedToken, inst: Instance,
                   port_id: str) -> Port:
        """The caller's port, unused, bound to the server now."""
        port = session.get(Port, port_id) if len(port_id) <= 36 else None
        if port is None or not (ctx.is_admin or port.project_id == inst.project_id):
            raise NotFound(f"Port {port_id} could not be found.")
        if port.device_id or port.device_owner:
            raise Conflict(f"Port {port_id} is still in use.")
        if not port.fixed_ips:
            raise BadRequest(f"Port {port_id} is not usable for instance {inst.uuid}: it "
                             "has no fixed IP.")
        network = session.get(Network, port.network_id)
        if network is not None:
            _check_external(ctx, network)
        port.device_id = inst.uuid
        port.device_owner = f"compute:{inst.availability_zone}"
        _bind(port, inst.host)
        port.updated_at = utcnow()
        return port

    def _network(self, session: Session, ctx: ValidatedToken, inst: Instance,
                 network_id: str | None) -> Network:
        """The network named, or the project's only one."""
        project_id = inst.project_id
        if network_id:
            network = session.get(Network, network_id) if len(network_id) <= 36 else None
            if network is None or not (ctx.is_admin or network.project_id == project_id
                                       or network.shared or network.external):
                raise NotFound(f"Network {network_id} could not be found.")
            _check_external(ctx, network)
            return network
        available = session.scalars(select(Network).where(
            or_(Network.project_id == project_id, Network.shared),
            ~Network.external).order_by(Network.created_at, Network.id)).all()
        if len(available) > 1:
            raise BadRequest("Multiple possible networks found, use a Network ID to be more "
                             "specific.")
        if not available:
            raise BadRequest("No specific network was requested and none are available "
                             f"for project '{project_id}'.")
        return available[0]

    def _make_port(self, session: Session, ctx: ValidatedToken, inst: Instance,
                   network: Network, fixed_ip: str | None) -> Port:
        """A new port on ``network`` for the server, with the server's security groups
        (where the network has port security), bound to its host."""
        if not network.subnets:
            raise BadRequest(f"Network {network.id} requires a subnet in order to attach "
                             "an interface to it.")
        if fixed_ip:
            owner = session.scalar(
                select(Port.device_id).join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(IPAllocation.ip_address == fixed_ip,
                       IPAllocation.subnet_id.in_([s.id for s in network.subnets])))
            if owner is not None:
                raise Conflict(f"Fixed IP address {fixed_ip} is already in use on instance "
                               f"{owner}.")
        try:
            check_network_quota(session, inst.project_id, "port", 1)
        except OneStackError:
            raise Forbidden("Maximum number of ports exceeded") from None
        groups = self._security_group_ids(session, inst) \
            if network.port_security_enabled else None
        try:
            return create_port_in(
                session, network_id=network.id, project_id=inst.project_id,
                fixed_ips=[{"ip_address": fixed_ip}] if fixed_ip else None,
                device_id=inst.uuid, device_owner=f"compute:{inst.availability_zone}",
                security_group_ids=groups, binding={"host_id": inst.host or ""},
                base_mac=self.config.network.base_mac,
                max_address_pairs=self.config.network.max_allowed_address_pairs,
                is_admin=ctx.is_admin)
        except OneStackError as exc:
            if exc.fault == "IpAddressGenerationFailure":
                raise BadRequest("No fixed IP addresses available for network: "
                                 f"{network.id}") from None
            if exc.fault == "IpAddressAlreadyAllocated":
                raise Conflict(f"Fixed IP address {fixed_ip} is already in use.") from None
            if exc.status == 404:
                raise BadRequest(exc.message) from None
            raise

    @staticmethod
    def _security_group_ids(session: Session, inst: Instance) -> builtins.list[str]:
        """The server's security groups (names, as it was created with) in its
        project."""
        ids: builtins.list[str] = []
        for name in dict.fromkeys(inst.security_groups or ["default"]):
            if name == "default":
                ids.append(ensure_default_security_group(session, inst.project_id).id)
                continue
            group = session.scalar(select(SecurityGroup).where(
                SecurityGroup.project_id == inst.project_id,
                or_(SecurityGroup.name == name, SecurityGroup.id == name)).limit(1))
            if group is not None:
                ids.append(group.id)
        return ids

    # -- detach -------------------------------------------------------------------------

    def detach(self, ctx: ValidatedToken, server_id: str, port_id: str) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_member(ctx, "os_compute_api:os-attach-interfaces:delete",
                                  inst.project_id)
            entries = port_entries(inst)
            entry = next((e for e in entries if e["port_id"] == port_id), None)
            if entry is None:
                raise NotFound(f"Port {port_id} is not attached")
            self.compute.hosts.require_capability(session, inst.host, caps.ATTACH_INTERFACE,
                                                  "detach interface")
            check_lock(ctx, inst)
            check_state("detach_interface", inst, INTERFACE_VM_STATES,
                        must_have_launched=False)
            if entry.get("status") == DETACHING:
                raise Conflict(f"Port {port_id} is already being detached from server "
                               f"{inst.uuid}.")
            action = record_action(session, ctx, inst, "detach_interface")
            event = InstanceActionEvent(event=DETACH_EVENT, start_time=utcnow(),
                                        host=inst.host)
            action.events.append(event)
            session.flush()
            runs = inst.host is not None and inst.launched_at is not None \
                and inst.vm_state in GUEST_RUNS
            if runs:
                inst.ports = [dict(e, status=DETACHING, action_id=action.id)
                              if e["port_id"] == port_id else e for e in entries]
            else:
                self._release(session, entry)
                inst.ports = [e for e in entries if e["port_id"] != port_id]
                _finish(action, event, "Success")
            touch(inst)
            host = inst.host
        self.compute.notify(host)

    # -- addFixedIp / removeFixedIp (2.1-2.43) ------------------------------------------

    def add_fixed_ip(self, ctx: ValidatedToken, server_id: str, network_id: str) -> None:
        """Nova's ``addFixedIp``: one more address for the server's first port on the
        network, from the first of its subnets with one free (not the automatic IPv6
        ones: the port has its address there). The guest is not told (as in Nova): the
        address is the port's, its host's DHCP and filters follow."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_member(ctx, "os_compute_api:os-multinic:add", inst.project_id)
            check_lock(ctx, inst)
            port = self._port_on(session, inst, network_id)
            network = session.get(Network, port.network_id)
            assert network is not None
            port.updated_at = utcnow()
            session.flush()  # the write lock first (SQLite), before an address is chosen
            for subnet in sorted(network.subnets, key=lambda s: s.ip_version):
                if ipam.is_auto_address(subnet):
                    continue
                try:
                    ipam.allocate_ip(session, subnet, port=port)
                except Conflict:
                    continue
                break
            else:
                raise BadRequest(f"No fixed IP addresses available for network: "
                                 f"{network_id}")
            record_action(session, ctx, inst, "addFixedIp")
            touch(inst)
            host = inst.host
        self.compute.notify(host)

    def remove_fixed_ip(self, ctx: ValidatedToken, server_id: str, address: str) -> None:
        """Nova's ``removeFixedIp``: the address leaves the server's port holding it."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_member(ctx, "os_compute_api:os-multinic:remove", inst.project_id)
            check_lock(ctx, inst)
            ids = desired_port_ids(inst)
            found = None
            for port in session.scalars(select(Port).where(Port.id.in_(ids))) if ids else []:
                found = next((a for a in port.fixed_ips if a.ip_address == address), None)
                if found is not None:
                    port.fixed_ips.remove(found)
                    port.updated_at = utcnow()
                    break
            if found is None:
                raise BadRequest(f"Instance {inst.uuid} does not have fixed IP '{address}'.")
            session.flush()
            record_action(session, ctx, inst, "removeFixedIp")
            touch(inst)
            host = inst.host
        self.compute.notify(host)

    @staticmethod
    def _port_on(session: Session, inst: Instance, network_id: str) -> Port:
        ids = desired_port_ids(inst)
        ports = {p.id: p for p in session.scalars(select(Port).where(Port.id.in_(ids)))} \
            if ids else {}
        for port_id in ids:
            port = ports.get(port_id)
            if port is not None and port.network_id == network_id:
                return port
        raise BadRequest(f"Network {network_id} could not be found for instance "
                         f"{inst.uuid}.")

    # -- what hosts report --------------------------------------------------------------

    def ports_reported(self, port_ids: builtins.list[str], status: str) -> None:
        """A host plugged (``ACTIVE``) or unplugged (``DOWN``) these ports: complete
        the attaches and finish the detaches waiting for it."""
        if not port_ids:
            return
        with self.db.session() as session:
            owners = {d for d in session.scalars(select(Port.device_id).where(
                Port.id.in_(port_ids))) if d}
            uuids: builtins.list[str] = []
            for uuid in sorted(owners):
                inst = session.get(Instance, uuid)
                if inst is not None and any(e["port_id"] in port_ids and e.get("status")
                                            for e in port_entries(inst)):
                    uuids.append(uuid)
        for uuid in uuids:
            with self.db.session() as session:
                inst = session.get(Instance, uuid, with_for_update=True)
                if inst is None or inst.deleted:
                    continue
                changed = False
                entries: builtins.list[dict[str, Any]] = []
                for entry in port_entries(inst):
                    pending = entry.get("status")
                    if entry["port_id"] not in port_ids or not pending:
                        entries.append(entry)
                        continue
                    if pending == ATTACHING:
                        self._finish_event(session, entry.get("action_id"), ATTACH_EVENT)
                        entry.pop("status")
                        entry.pop("action_id", None)
                        entries.append(entry)
                        changed = True
                    elif pending == DETACHING and status == "DOWN":
                        self._release(session, entry)
                        self._finish_event(session, entry.get("action_id"), DETACH_EVENT)
                        changed = True  # dropped
                        log.info("instance %s: port %s detached", uuid, entry["port_id"])
                    else:
                        entries.append(entry)
                if changed:
                    inst.ports = entries
                    touch(inst)

    @staticmethod
    def _finish_event(session: Session, action_id: Any, event_name: str) -> None:
        if not isinstance(action_id, int):
            return
        action = session.get(InstanceAction, action_id)
        if action is None:
            return
        event = next((e for e in action.events
                      if e.event == event_name and e.finish_time is None), None)
        if event is not None:
            _finish(action, event, "Success")

    @staticmethod
    def _release(session: Session, entry: dict[str, Any]) -> None:
        """Unbind the port the user gave; delete the one compute made."""
        port = session.get(Port, entry["port_id"])
        if port is None:
            return
        if entry.get("preserve_on_delete"):
            port.device_id = ""
            port.device_owner = ""
            _bind(port, None)
            port.status = "DOWN"
            port.updated_at = utcnow()
        else:
            delete_port_in(session, port.id)


def _view(port: Port, entry: dict[str, Any]) -> dict[str, Any]:
    """Every field; the API drops ``tag`` before 2.70."""
    return {"port_id": port.id, "net_id": port.network_id, "mac_addr": port.mac_address,
            "port_state": port.status,
            "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                          for a in port.fixed_ips],
            "tag": entry.get("tag")}


def _check_external(ctx: ValidatedToken, network: Network) -> None:
    if network.external and not network.shared and not ctx.is_admin:
        raise Forbidden(f"It is not allowed to create an interface on external network "
                        f"{network.id}")


def _bind(port: Port, host: str | None) -> None:
    port.binding_host_id = host or ""
    port.binding_vif_type = BOUND_VIF_TYPE if host else "unbound"
    port.binding_vif_details = dict(BOUND_VIF_DETAILS) if host else {}


def _finish(action: InstanceAction, event: InstanceActionEvent, result: str) -> None:
    now = utcnow()
    event.finish_time = now
    event.result = result
    action.finish_time = now
    action.updated_at = now
