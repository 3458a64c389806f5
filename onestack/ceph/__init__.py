"""A Ceph cluster on one machine (``onestack ceph up``), and what clients need to reach
any cluster (``ceph.conf``, a keyring, a user)."""

from onestack.ceph.cluster import CLIENT, POOLS, CephError, Cluster

__all__ = ["CLIENT", "POOLS", "CephError", "Cluster"]
