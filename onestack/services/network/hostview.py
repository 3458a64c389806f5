"""The network's slice of a host's desired state, and what hosts report about ports.

The host service (``onestack.services.hosts``) asks here for the NICs of a host's
instances and for the networks they are on (each with this host's DHCP port, made when
missing, and its DHCP host entries), and hands port status and released ports back.
Everything answered is a ``onestack.hostlink`` wire type: hosts never see our rows.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid as uuidlib
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.db.models import (
    ComputeNode,
    FloatingIP,
    Instance,
    IPAllocation,
    Network,
    Port,
    Router,
    RouterPort,
    RouterRoute,
    SecurityGroupPortBinding,
    SecurityGroupRule,
    Subnet,
)
from onestack.hostlink import types as wire
from onestack.hostlink.types import DhcpHost, NetworkSpec, PortInfo, SubnetSpec
from onestack.services.network.base import retrying
from onestack.services.network.ports import create_port_in, delete_port_in
from onestack.services.network.routers import record_host_report, schedule_stale

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

log = logging.getLogger(__name__)


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's DHCP port device_id: ``dhcp<host id>-<network id>``."""
    host_id = uuidlib.uuid5(uuidlib.NAMESPACE_DNS, host)
    return f"dhcp{host_id}-{network_id}"


class HostView:
    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db
        self.config = net.config

    # -- desired state ------------------------------------------------------------------

    def nics(self, port_ids: list[str]) -> dict[str, PortInfo]:
        """The ports ``port_ids`` (those that exist) as NICs, by port id."""
        if not port_ids:
            return {}
        with self.db.session() as session:
            ports = session.scalars(select(Port).where(Port.id.in_(port_ids))).all()
            mtus: dict[str, int] = {
                network_id: mtu for network_id, mtu in session.execute(
                    select(Network.id, Network.mtu).where(
                        Network.id.in_({p.network_id for p in ports})))}
            groups: dict[str, list[str]] = {}
            for port_id, group_id in session.execute(
                    select(SecurityGroupPortBinding.port_id,
                           SecurityGroupPortBinding.security_group_id)
                    .where(SecurityGroupPortBinding.port_id.in_(port_ids))):
                groups.setdefault(port_id, []).append(group_id)
            return {p.id: PortInfo(id=p.id, network_id=p.network_id, mac=p.mac_address,
                                   mtu=mtus.get(p.network_id, 1500),
                                   ips=[a.ip_address for a in p.fixed_ips],
                                   security_group_ids=sorted(groups.get(p.id, [])),
                                   port_security_enabled=p.port_security_enabled,
                                   allowed_address_pairs=[
                                       wire.AllowedAddressPair(
                                           ip_address=a.ip_address,
                                           mac_address=a.mac_address or None)
                                       for a in p.allowed_address_pairs])
                    for p in ports}

    def security_groups(self, group_ids: list[str]) -> list[wire.SecurityGroupRuleSet]:
        """The security groups ``group_ids`` and the groups their rules name as remote
        groups: each with its rules and its members' fixed addresses (what a host's
        firewall needs for the ports it has)."""
        if not group_ids:
            return []
        with self.db.session() as session:
            wanted = set(group_ids)
            rules: dict[str, list[SecurityGroupRule]] = {}
            for rule in session.scalars(select(SecurityGroupRule).where(
                    SecurityGroupRule.security_group_id.in_(wanted))):
                rules.setdefault(rule.security_group_id, []).append(rule)
            wanted |= {r.remote_group_id for rs in rules.values() for r in rs
                       if r.remote_group_id}
            members: dict[str, list[str]] = {}
            for group_id, ip in session.execute(
                    select(SecurityGroupPortBinding.security_group_id,
                           IPAllocation.ip_address)
                    .join(IPAllocation,
                          IPAllocation.port_id == SecurityGroupPortBinding.port_id)
                    .where(SecurityGroupPortBinding.security_group_id.in_(wanted))):
                members.setdefault(group_id, []).append(ip)
            return [wire.SecurityGroupRuleSet(
                id=group_id,
                rules=[wire.SecurityGroupRule(
                    direction=r.direction, ethertype=r.ethertype, protocol=r.protocol,
                    port_range_min=r.port_range_min, port_range_max=r.port_range_max,
                    remote_ip_prefix=r.remote_ip_prefix, remote_group_id=r.remote_group_id)
                    for r in sorted(rules.get(group_id, []), key=lambda r: r.id)],
                member_ips=sorted(members.get(group_id, [])))
                for group_id in sorted(wanted)]

    def networks(self, host: str, hostnames: dict[str, str]) -> list[NetworkSpec]:
        """Every network with one of the ports ``hostnames`` names (port id -> the DNS
        name of its instance), with its DHCP port on ``host`` (made now if DHCP is on
        and it has none) and a DHCP host entry per port."""
        if not hostnames:
            return []

        def work(session: Session) -> list[NetworkSpec]:
            ports = session.scalars(select(Port).where(Port.id.in_(list(hostnames)))).all()
            by_network: dict[str, list[Port]] = {}
            for port in ports:
                by_network.setdefault(port.network_id, []).append(port)
            specs = []
            peers = network_peers(session, host, list(by_network))
            for network_id, net_ports in sorted(by_network.items()):
                network = session.get(Network, network_id)
                if network is None:
                    continue
                dhcp = self._dhcp_port(session, network, host)
                specs.append(NetworkSpec(
                    id=network.id, mtu=network.mtu, external=network.external,
                    network_type=network.network_type,
                    segmentation_id=network.segmentation_id,
                    peers=peers[network.id].addresses if network.id in peers else [],
                    remote_macs=peers[network.id].macs if network.id in peers else {},
                    subnets=[_subnet_spec(s) for s in network.subnets],
                    dhcp_mac=dhcp.mac_address if dhcp else None,
                    dhcp_ips=[a.ip_address for a in dhcp.fixed_ips] if dhcp else [],
                    hosts=[DhcpHost(port_id=p.id, mac=p.mac_address,
                                    ips=[a.ip_address for a in p.fixed_ips],
                                    hostname=_dns_label(hostnames.get(p.id, "")))
                           for p in sorted(net_ports, key=lambda p: p.id)]))
            return specs

        return retrying(self.db, work)

    def router_networks(self, network_ids: list[str], host: str | None = None
                        ) -> list[NetworkSpec]:
        """The networks ``network_ids`` as a host's routers need them (their bridges,
        subnets and MTU), without DHCP: networks no instance of the host is on, but one
        of its routers is (the external network of a gateway, a router's other subnets).
        With ``host``, each with its VXLAN peers (the other hosts on it)."""
        if not network_ids:
            return []
        with self.db.session() as session:
            peers = network_peers(session, host, network_ids) if host else {}
            return [NetworkSpec(id=n.id, mtu=n.mtu, external=n.external,
                                network_type=n.network_type,
                                segmentation_id=n.segmentation_id,
                                peers=peers[n.id].addresses if n.id in peers else [],
                                remote_macs=peers[n.id].macs if n.id in peers else {},
                                subnets=[_subnet_spec(s) for s in n.subnets])
                    for n in session.scalars(select(Network).where(
                        Network.id.in_(network_ids)).order_by(Network.id))]

    def routers(self, network_ids: list[str], host: str | None = None
                ) -> list[wire.RouterSpec]:
        """The routers ``host`` runs: those bound to it (a router runs on exactly one
        host; one with no live host is bound now, ``routers.schedule_stale``); without
        ``host``, every router with an interface on one of ``network_ids``. Each with
        its interfaces, its gateway, its static routes and floating IPs."""
        if not network_ids and host is None:
            return []
        with self.db.session() as session:
            if host is not None:
                schedule_stale(session, host)
                session.flush()
                router_ids = set(session.scalars(
                    select(Router.id).join(RouterPort, RouterPort.router_id == Router.id)
                    .where(Router.host == host)))
            else:
                router_ids = set(session.scalars(
                    select(RouterPort.router_id).join(Port, Port.id == RouterPort.port_id)
                    .where(RouterPort.port_type == "network:router_interface",
                           Port.network_id.in_(network_ids))))
            specs = []
            for router in session.scalars(select(Router).where(
                    Router.id.in_(router_ids)).order_by(Router.id)):
                legs = session.execute(
                    select(RouterPort.port_type, Port).join(
                        Port, Port.id == RouterPort.port_id)
                    .where(RouterPort.router_id == router.id)).all()
                interfaces = [_router_port(port) for kind, port in legs
                              if kind == "network:router_interface"]
                gateway = next((_router_port(port) for kind, port in legs
                                if kind == "network:router_gateway"), None)
                routes = [{"destination": r.destination, "nexthop": r.nexthop}
                          for r in session.scalars(select(RouterRoute).where(
                              RouterRoute.router_id == router.id))]
                floating = [wire.FloatingIPSpec(floating_ip=f.floating_ip_address,
                                                fixed_ip=f.fixed_ip_address or "",
                                                port_id=f.fixed_port_id or "")
                            for f in session.scalars(select(FloatingIP).where(
                                FloatingIP.router_id == router.id,
                                FloatingIP.fixed_port_id.is_not(None)))]
                specs.append(wire.RouterSpec(
                    id=router.id, interfaces=sorted(interfaces, key=lambda p: p.port_id),
                    gateway=gateway, enable_snat=router.enable_snat,
                    routes=sorted(routes, key=lambda r: (r["destination"], r["nexthop"])),
                    floating_ips=sorted(floating, key=lambda f: f.floating_ip)))
            return specs

    def existing_networks(self, network_ids: list[str]) -> list[str]:
        if not network_ids:
            return []
        with self.db.session() as session:
            return sorted(session.scalars(select(Network.id).where(
                Network.id.in_(network_ids))).all())

    def _dhcp_port(self, session: Session, network: Network, host: str) -> Port | None:
        """The network's DHCP port on this host, made now if DHCP is on and it has none."""
        if not any(s.enable_dhcp for s in network.subnets):
            return None
        device_id = dhcp_device_id(host, network.id)
        port = session.scalar(select(Port).where(
            Port.network_id == network.id, Port.device_owner == "network:dhcp",
            Port.device_id == device_id))
        if port is not None:
            return port
        fixed_ips = [{"subnet_id": s.id} for s in network.subnets
                     if s.enable_dhcp or s.ip_version == 6]
        port = create_port_in(
            session, network_id=network.id, project_id=network.project_id,
            fixed_ips=fixed_ips, device_id=device_id, device_owner="network:dhcp",
            binding={"host_id": host}, base_mac=self.config.network.base_mac,
            is_admin=True)
        port.status = "ACTIVE"
        log.info("made DHCP port %s on network %s for host %s", port.id, network.id, host)
        return port

    # -- observed state ---------------------------------------------------------------------

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        """ACTIVE once plugged, DOWN once unplugged."""
        if not port_ids:
            return
        with self.db.session() as session:
            for port in session.scalars(select(Port).where(Port.id.in_(port_ids))):
                if port.status != status:
                    port.status = status

    def report_routers(self, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
        """The routers ``host`` set up (with the floating IPs in place) or could not
        (``routers.record_host_report``)."""
        retrying(self.db, lambda session: record_host_report(session, host, applied,
                                                             failed))

    def release_ports(self, ports: list[dict[str, object]]) -> None:
        """An instance is gone: delete the ports it created, unbind the ones it was
        given (``preserve_on_delete``). ``ports`` are the instance's port entries."""
        if not ports:
            return

        def work(session: Session) -> None:
            for entry in ports:
                port = session.get(Port, str(entry["port_id"]))
                if port is None:
                    continue
                if entry.get("preserve_on_delete"):
                    port.device_id = ""
                    port.device_owner = ""
                    port.binding_host_id = ""
                    port.status = "DOWN"
                else:
                    delete_port_in(session, port.id)

        retrying(self.db, work)


class NetworkPeers(NamedTuple):
    """The other hosts of a VXLAN network: their tunnel addresses (the flooding list)
    and its ports' MACs on them (MAC -> tunnel address)."""

    addresses: list[str]
    macs: dict[str, str]


def network_peers(session: Session, host: str, network_ids: list[str]
                  ) -> dict[str, NetworkPeers]:
    """For each VXLAN network of ``network_ids``: the other hosts that have a port on it
    (l2population's flooding list and unicast entries): ports bound to a host (DHCP
    ports, bound instance ports), the host of each live instance with a port on it (it
    wins over the binding), the host each router with a leg on it runs on. A host
    without a usable address (loopback: the all-in-one default) is left out."""
    vxlan = set(session.scalars(select(Network.id).where(
        Network.id.in_(network_ids), Network.network_type == "vxlan")))
    if not vxlan:
        return {}
    where: dict[tuple[str, str], str] = {}  # (network, MAC) -> host
    for network_id, mac, other in [
            *session.execute(select(Port.network_id, Port.mac_address, Port.binding_host_id)
                             .where(Port.network_id.in_(vxlan), Port.binding_host_id != "")),
            *session.execute(select(Port.network_id, Port.mac_address, Instance.host)
                             .join(Instance, Instance.uuid == Port.device_id)
                             .where(Port.network_id.in_(vxlan),
                                    Port.device_owner.like("compute:%"),
                                    Instance.deleted.is_(False),
                                    Instance.host.is_not(None))),
            *session.execute(select(Port.network_id, Port.mac_address, Router.host)
                             .join(RouterPort, RouterPort.port_id == Port.id)
                             .join(Router, Router.id == RouterPort.router_id)
                             .where(Port.network_id.in_(vxlan), Router.host.is_not(None)))]:
        if other:
            where[(network_id, mac.lower())] = other
    addresses = {name: ip for name, ip in session.execute(
        select(ComputeNode.host, ComputeNode.host_ip).where(
            ComputeNode.host.in_(set(where.values()) - {host})))
        if _tunnel_address(ip)}
    peers: dict[str, NetworkPeers] = {}
    for (network_id, mac), other in sorted(where.items()):
        if other != host and other in addresses:
            entry = peers.setdefault(network_id, NetworkPeers([], {}))
            entry.macs[mac] = addresses[other]
            if addresses[other] not in entry.addresses:
                entry.addresses.append(addresses[other])
    for entry in peers.values():
        entry.addresses.sort(key=ipaddress.ip_address)
    return peers


def _tunnel_address(value: str | None) -> bool:
    """Whether another host can send VXLAN to ``value``."""
    try:
        ip = ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def _router_port(port: Port) -> wire.RouterPort:
    return wire.RouterPort(port_id=port.id, network_id=port.network_id,
                           mac=port.mac_address, ips=[a.ip_address for a in port.fixed_ips],
                           subnet_ids=sorted({a.subnet_id for a in port.fixed_ips}))


def _subnet_spec(subnet: Subnet) -> SubnetSpec:
    return SubnetSpec(
        id=subnet.id, cidr=subnet.cidr, ip_version=subnet.ip_version,
        gateway_ip=subnet.gateway_ip, enable_dhcp=subnet.enable_dhcp,
        ipv6_ra_mode=subnet.ipv6_ra_mode, ipv6_address_mode=subnet.ipv6_address_mode,
        dns_nameservers=[d.address for d in subnet.dns_nameservers],
        host_routes=[{"destination": r.destination, "nexthop": r.nexthop}
                     for r in subnet.host_routes])


def _dns_label(name: str) -> str:
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower())
    return label.strip("-")[:63]
