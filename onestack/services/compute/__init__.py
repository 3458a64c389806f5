"""The Compute service (Nova): flavors, keypairs, servers and their actions, the
scheduler, quotas, and the host API agents use."""

from onestack.services.compute.service import Compute

__all__ = ["Compute"]
