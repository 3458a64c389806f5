"""The networking service facade: one object the API and the other services use.

``networks``, ``subnets`` and ``ports`` are the L2 resources and address management;
the L3 resources and security groups hang off the same object. Every method that takes
a ``ValidatedToken`` applies Neutron's policy for it; ``*_in`` functions (e.g.
``ports.create_port_in``) run with internal privileges inside a caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.config import Config
from onestack.db import Database
from onestack.db.models import Network, Port
from onestack.services.identity import Identity
from onestack.services.network import ipam
from onestack.services.network.auto_allocate import AutoAllocation
from onestack.services.network.floating_ips import FloatingIPs
from onestack.services.network.hostview import HostView
from onestack.services.network.networks import Networks, Provider
from onestack.services.network.ports import Ports
from onestack.services.network.quotas import Quotas, configured_defaults, register_defaults
from onestack.services.network.routers import Routers
from onestack.services.network.security_groups import SecurityGroups
from onestack.services.network.subnetpools import SubnetPools
from onestack.services.network.subnets import Subnets
from onestack.services.network.tags import Tags

log = logging.getLogger(__name__)


class Networking:
    """Neutron v2.0 for the whole cloud."""

    def __init__(self, db: Database, config: Config, identity: Identity) -> None:
        self.db = db
        self.config = config
        self.identity = identity
        self.networks = Networks(self)
        self.subnets = Subnets(self)
        self.subnetpools = SubnetPools(self)
        self.ports = Ports(self)
        self.tags = Tags(self)
        self.security_groups = SecurityGroups(self)
        self.routers = Routers(self)
        self.floating_ips = FloatingIPs(self)
        self.quotas = Quotas(self)
        self.auto_allocation = AutoAllocation(self)
        #: The network's slice of each host's desired state (``services/hosts``).
        self.hostview = HostView(self)
        #: Called (no arguments) after a change hosts carry out (routers, floating IPs:
        #: ``base.changes_hosts``); the assembly wakes the hosts from here.
        self.listeners: list[Callable[[], None]] = []
        register_defaults(db.engine, configured_defaults(config))

    def changed(self) -> None:
        """Tell the listeners that routers or floating IPs changed; never raises."""
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                log.exception("a network change listener failed")

    def bootstrap(self, admin_project_id: str) -> None:
        """Create what a fresh cloud needs: the admin's external network (``public``, a
        flat network on the public physical network) with its IPv4 subnet and its IPv6
        one (``public_ipv6_cidr``), the default external network unless one is, and the
        shared default IPv6 and IPv4 subnet pools. Idempotent: an existing network of
        that name keeps its subnets; one without an IPv6 subnet gains it (and routers'
        gateway ports on it an address there), as does a cloud without a default pool
        of a version."""
        nc = self.config.network
        with self.db.session() as session:
            network = session.scalar(select(Network).where(
                Network.name == nc.public_network_name, Network.external,
                Network.project_id == admin_project_id))
            if network is None:
                network = self.networks.create_in(
                    session, project_id=admin_project_id, name=nc.public_network_name,
                    external=True, shared=False,
                    provider=Provider("flat", nc.public_physical_network))
                log.info("created the external network %s (%s)", network.name, network.id)
            if not network.subnets:
                pools = None
                if nc.public_pool_start and nc.public_pool_end:
                    pools = [{"start": nc.public_pool_start, "end": nc.public_pool_end}]
                version = 6 if ":" in nc.public_cidr else 4
                kwargs: dict[str, Any] = {}
                if nc.public_gateway:  # absent (not None): the subnet takes its default
                    kwargs["gateway_ip"] = nc.public_gateway
                subnet = self.subnets.create_in(
                    session, network=network, project_id=admin_project_id,
                    name=f"{nc.public_network_name}-subnet", cidr=nc.public_cidr,
                    ip_version=version, allocation_pools=pools, enable_dhcp=False, **kwargs)
                log.info("created the external subnet %s (%s)", subnet.cidr, subnet.id)
                session.flush()
                session.refresh(network)
            if nc.public_ipv6_cidr and not any(s.ip_version == 6 for s in network.subnets):
                self._bootstrap_public_ipv6(session, network, admin_project_id)
            if not session.scalar(select(Network.id).where(Network.is_default,
                                                           Network.external).limit(1)):
                network.is_default = True  # auto-allocated routers' gateways go here
            for prefix, name, prefixlen in (
                    (nc.default_ipv6_subnetpool_prefix, nc.default_ipv6_subnetpool_name,
                     nc.default_ipv6_subnetpool_prefixlen),
                    (nc.default_ipv4_subnetpool_prefix, nc.default_ipv4_subnetpool_name,
                     nc.default_ipv4_subnetpool_prefixlen)):
                pool = self.subnetpools.bootstrap_default(session, admin_project_id, prefix,
                                                          name, prefixlen)
                if pool is not None:
                    log.info("created the default IPv%d subnet pool %s (%s)",
                             pool.ip_version, pool.prefixes[0], pool.id)

    def _bootstrap_public_ipv6(self, session: Session, network: Network,
                               admin_project_id: str) -> None:
        """The external network's IPv6 subnet (no DHCP, no RA: addresses are given out
        statefully, as the IPv4 ones); routers whose gateway is already on the network
        get their address on it now."""
        nc = self.config.network
        kwargs: dict[str, Any] = {}
        if nc.public_ipv6_gateway:
            kwargs["gateway_ip"] = nc.public_ipv6_gateway
        subnet = self.subnets.create_in(
            session, network=network, project_id=admin_project_id,
            name=f"{nc.public_network_name}-ipv6-subnet", cidr=nc.public_ipv6_cidr,
            ip_version=6, enable_dhcp=False, **kwargs)
        log.info("created the external IPv6 subnet %s (%s)", subnet.cidr, subnet.id)
        for port in session.scalars(select(Port).where(
                Port.network_id == network.id,
                Port.device_owner == "network:router_gateway")):
            address = ipam.allocate_ip(session, subnet, port=port)
            log.info("router gateway port %s: gained %s", port.id, address)
