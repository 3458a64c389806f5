"""Networking (Neutron v2.0) control plane: networks, subnets, ports, routers,
floating IPs, security groups, quotas."""

from onestack.services.network.service import Networking

__all__ = ["Networking"]
