"""Networks: L2 segments with their provider attributes and visibility.

A project sees its own networks, shared ones and external ones; admins see all. Only
admins set ``shared``, ``router:external``, ``is_default`` and the provider attributes;
at most one external network is the default (auto-allocated topologies' gateway). Tenant
networks are VXLAN networks with the lowest free VNI of the configured range; the
unique ``segment_key`` column makes two networks with one segment impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import BadRequest, Conflict, ServiceUnavailable
from onestack.db.models import FloatingIP, IPAllocation, Network, Port, Subnet
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import base
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    caller_project,
    invalid_input,
    new_id,
    owns,
    policy_error,
    register,
    retrying,
)
from onestack.services.network.quotas import check_quota

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

NETWORK_TYPES = ("local", "flat", "vlan", "vxlan")
#: Port owners whose ports go away with their network (Neutron's auto-delete owners).
AUTO_DELETE_OWNERS = ("network:dhcp",)
#: Ports that make an external network one that routers or floating IPs use.
EXTERNAL_USERS = ("network:router_gateway", "network:floatingip")
MIN_MTU = 68
MAX_VLAN = 4094
MAX_VNI = 2**24 - 1


def visible_networks(ctx: ValidatedToken) -> ColumnElement[bool] | None:
    if ctx.is_admin:
        return None
    mine = Network.project_id == ctx.project_id if ctx.project_id else false()
    return or_(mine, Network.shared, Network.external)


def _subnet_filter(values: list[str]) -> ColumnElement[bool]:
    return Network.id.in_(select(Subnet.network_id).where(Subnet.id.in_(values)))


NETWORK = register(Kind(
    member="network", collection="networks", model=Network, visible=visible_networks,
    columns={"tenant_id": Network.project_id, "router:external": Network.external,
             "provider:network_type": Network.network_type,
             "provider:physical_network": Network.physical_network,
             "provider:segmentation_id": Network.segmentation_id},
    filters={"subnets": _subnet_filter},
    hidden=frozenset({"external", "network_type", "physical_network", "segmentation_id",
                      "segment_key"}),
    admin_only=frozenset({"provider:network_type", "provider:physical_network",
                          "provider:segmentation_id"}),
))


@dataclass
class Provider:
    """Requested provider attributes (any may be None: chosen by the cloud)."""

    network_type: str | None = None
    physical_network: str | None = None
    segmentation_id: int | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.network_type, self.physical_network,
                                           self.segmentation_id))


def segment_key(network_type: str, physical_network: str | None,
                segmentation_id: int | None) -> str | None:
    """What must be unique about a segment: a VNI, a VLAN on a physnet, a flat physnet."""
    if network_type == "local":
        return None
    return f"{network_type}:{physical_network or ''}:{segmentation_id or ''}"


def _in_use(session: Session, network_type: str, physnet: str | None, seg: int | None
            ) -> bool:
    return session.scalar(select(Network.id).where(
        Network.segment_key == segment_key(network_type, physnet, seg))) is not None


def _segment_taken(network_type: str, physnet: str | None, seg: int | None) -> Conflict:
    if network_type == "flat":
        return Conflict(f"Unable to create the flat network. Physical network {physnet} is "
                        "in use.", fault="FlatNetworkInUse")
    if network_type == "vlan":
        return Conflict(f"Unable to create the network. The VLAN {seg} on physical network "
                        f"{physnet} is in use.", fault="VlanIdInUse")
    return Conflict(f"Unable to create the network. The tunnel ID {seg} is in use.",
                    fault="TunnelIdInUse")


def _check_default_unique(session: Session, network_id: str) -> None:
    other = session.scalar(select(Network.id).where(
        Network.is_default, Network.external, Network.id != network_id).limit(1))
    if other is not None:
        raise Conflict(f"A default external network already exists: {other}.",
                       fault="DefaultExternalNetworkExists")


class Networks:
    """Network lifecycle: create, list, show, update, delete."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db
        self.config = net.config.network

    # -- provider attributes ---------------------------------------------------------

    def physical_networks(self) -> set[str]:
        names = {n.strip() for n in self.config.physical_networks.split(",") if n.strip()}
        return names | {self.config.public_physical_network}

    def _lowest_free_vni(self, session: Session) -> int:
        used = set(session.scalars(select(Network.segmentation_id)
                                   .where(Network.network_type == "vxlan")))
        vni = self.config.vni_min
        while vni in used:
            vni += 1
        if vni > self.config.vni_max:
            raise ServiceUnavailable("Unable to create the network. No tenant network is "
                                     "available for allocation.", fault="NoNetworkAvailable")
        return vni

    def _segment(self, session: Session, provider: Provider) -> tuple[str, str | None,
                                                                       int | None]:
        """The (type, physnet, segmentation id) of a new network, checked and chosen."""
        kind = provider.network_type or self.config.tenant_network_type
        physnet, seg = provider.physical_network, provider.segmentation_id
        if kind not in NETWORK_TYPES:
            raise invalid_input(f"network_type value '{kind}' not supported")
        if kind in ("local", "vxlan") and physnet:
            raise invalid_input(f"{kind} networks have no physical_network")
        if kind in ("flat", "vlan"):
            if not physnet:
                raise invalid_input(f"physical_network required for {kind} provider "
                                    "network")
            if physnet not in self.physical_networks():
                raise invalid_input(f"physical_network '{physnet}' unknown for {kind} "
                                    "provider network")
        if kind in ("local", "flat") and seg is not None:
            raise invalid_input(f"segmentation_id specified for {kind} provider network")
        if kind == "vlan":
            if seg is None:
                raise ServiceUnavailable("Unable to create the network. No tenant network "
                                         "is available for allocation.",
                                         fault="NoNetworkAvailable")
            if not 1 <= seg <= MAX_VLAN:
                raise invalid_input(f"segmentation_id out of range (1 through {MAX_VLAN})")
        if kind == "vxlan":
            if seg is None:
                # a VNI chosen here may be taken by a concurrent request before this one
                # commits: the unique segment_key makes that an IntegrityError (retried)
                return kind, None, self._lowest_free_vni(session)
            if not 1 <= seg <= MAX_VNI:
                raise invalid_input(f"segmentation_id out of range (1 through {MAX_VNI})")
        if kind != "local" and _in_use(session, kind, physnet, seg):
            raise _segment_taken(kind, physnet, seg)
        return kind, physnet, seg

    def max_mtu(self, network_type: str) -> int:
        return self.config.tenant_mtu if network_type == "vxlan" else self.config.physical_mtu

    def _check_mtu(self, mtu: int, network_type: str) -> int:
        limit = self.max_mtu(network_type)
        if mtu > limit:
            raise invalid_input(f"Requested MTU is too big, maximum is {limit}")
        if mtu < MIN_MTU:
            raise invalid_input(f"Requested MTU is too small, minimum is {MIN_MTU}")
        return mtu

    # -- lifecycle -----------------------------------------------------------------

    def create(self, ctx: ValidatedToken, *, name: str = "", description: str = "",
               admin_state_up: bool = True, shared: bool = False, external: bool = False,
               mtu: int | None = None, port_security_enabled: bool = True,
               provider: Provider | None = None, project_id: str | None = None,
               tags: list[str] | None = None, is_default: bool = False) -> Page:
        project = caller_project(ctx, project_id, "create_network")
        provider = provider or Provider()
        if not ctx.is_admin:
            if shared:
                raise policy_error("create_network:shared")
            if external:
                raise policy_error("create_network:router:external")
            if is_default:
                raise policy_error("create_network:is_default")
            if provider.given():
                raise policy_error("create_network:provider:network_type")

        def work(session: Session) -> Page:
            check_quota(session, project, "network")
            network = self.create_in(
                session, project_id=project, name=name, description=description,
                admin_state_up=admin_state_up, shared=shared, external=external, mtu=mtu,
                port_security_enabled=port_security_enabled, provider=provider,
                tags=tags)
            if is_default and external:
                _check_default_unique(session, network.id)
                network.is_default = True
            return base.page_of(session, NETWORK, [network])
        return retrying(self.db, work, "Unable to create the network: a concurrent request "
                        "took its segment; try again.")

    def create_in(self, session: Session, *, project_id: str, name: str = "",
                  description: str = "", admin_state_up: bool = True, shared: bool = False,
                  external: bool = False, mtu: int | None = None,
                  port_security_enabled: bool = True, provider: Provider | None = None,
                  tags: list[str] | None = None, id: str | None = None) -> Network:
        """Create a network with internal privileges (no policy, no quota)."""
        kind, physnet, seg = self._segment(session, provider or Provider())
        network = Network(
            id=id or new_id(), project_id=project_id, name=name, description=description,
            admin_state_up=admin_state_up, shared=shared, external=external,
            mtu=self._check_mtu(mtu, kind) if mtu is not None else self.max_mtu(kind),
            port_security_enabled=port_security_enabled, network_type=kind,
            physical_network=physnet, segmentation_id=seg,
            segment_key=segment_key(kind, physnet, seg), subnets=[])
        session.add(network)
        session.flush()
        if tags:
            base.set_tags(session, NETWORK.collection, network.id, tags)
        return network

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            return base.list_visible(session, NETWORK, query, ctx)

    def get(self, ctx: ValidatedToken, network_id: str) -> Page:
        with self.db.session() as session:
            network = NETWORK.get_visible(session, ctx, network_id)
            return base.page_of(session, NETWORK, [network])

    def update(self, ctx: ValidatedToken, network_id: str, changes: dict[str, Any]) -> Page:
        """Apply ``changes`` (model attribute names: name, description, admin_state_up,
        shared, external, mtu, port_security_enabled)."""
        with self.db.session() as session:
            network = NETWORK.get_visible(session, ctx, network_id)
            if not owns(ctx, network.project_id):
                raise policy_error("update_network")
            for attr in ("shared", "external", "is_default"):
                if attr in changes and not ctx.is_admin:
                    raise policy_error("update_network:" + ("router:external"
                                                            if attr == "external" else attr))
            if changes.get("shared") is False and network.shared:
                self._check_unshare(session, network)
            if changes.get("external") is False and network.external:
                self._check_unexternal(session, network)
            if changes.get("mtu") is not None:
                changes["mtu"] = self._check_mtu(changes["mtu"], network.network_type)
            for attr, value in changes.items():
                if value is None:
                    raise BadRequest(f"Invalid input for {attr}. Reason: None is not "
                                     "allowed.")
                if attr != "is_default":
                    setattr(network, attr, value)
            # as Neutron: only an external network holds is_default (it goes with it)
            if changes.get("is_default") and network.external:
                _check_default_unique(session, network.id)
            if network.external and "is_default" in changes:
                network.is_default = changes["is_default"]
            if not network.external:
                network.is_default = False
            session.flush()
            return base.page_of(session, NETWORK, [network])

    def _check_unshare(self, session: Session, network: Network) -> None:
        others = session.scalar(select(Port.id).where(
            Port.network_id == network.id, Port.project_id != network.project_id,
            Port.project_id != "").limit(1))
        if others is not None:
            raise Conflict(f"Unable to reconfigure sharing settings for network "
                           f"{network.id}. Multiple tenants are using it.",
                           fault="InvalidSharedSetting")

    def _check_unexternal(self, session: Session, network: Network) -> None:
        users = session.scalar(select(Port.id).where(
            Port.network_id == network.id, Port.device_owner.in_(EXTERNAL_USERS)).limit(1))
        if users is not None:
            raise Conflict(f"External network {network.id} cannot be updated to be made "
                           "non-external, since it has existing gateway ports.",
                           fault="ExternalNetworkInUse")

    def delete(self, ctx: ValidatedToken, network_id: str) -> None:
        with self.db.session() as session:
            network = NETWORK.get_visible(session, ctx, network_id)
            if not owns(ctx, network.project_id):
                raise policy_error("delete_network")
            self.delete_in(session, network)

    def delete_in(self, session: Session, network: Network) -> None:
        """Delete a network, its DHCP ports and subnets, and (an external network) its
        floating IPs that are not associated; 409 ``NetworkInUse`` while any other port
        is on it (an associated floating IP's, a router gateway's, ...)."""
        idle = list(session.scalars(select(FloatingIP).where(
            FloatingIP.floating_network_id == network.id,
            FloatingIP.fixed_port_id.is_(None), FloatingIP.router_id.is_(None))))
        idle_ports = [fip.floating_port_id for fip in idle]
        busy = session.scalar(select(Port.id).where(
            Port.network_id == network.id, Port.id.not_in(idle_ports),
            Port.device_owner.not_in(AUTO_DELETE_OWNERS)).limit(1))
        if busy is not None:
            raise Conflict(f"Unable to complete operation on network {network.id}. There "
                           "are one or more ports still in use on the network.",
                           fault="NetworkInUse")
        from onestack.services.network.ports import delete_port_in

        for fip in idle:
            base.forget_tags(session, "floatingips", fip.id)
            session.delete(fip)
        session.flush()
        for port_id in list(session.scalars(select(Port.id)
                                          .where(Port.network_id == network.id))):
            delete_port_in(session, port_id)
        session.execute(delete(IPAllocation).where(IPAllocation.network_id == network.id))
        for subnet in list(network.subnets):
            base.forget_tags(session, "subnets", subnet.id)
            session.delete(subnet)
        base.forget_tags(session, NETWORK.collection, network.id)
        session.delete(network)
        session.flush()
