"""The host service: the server's side of ``onestack.hostlink.HostToServer``."""

from onestack.services.hosts.service import HostService

__all__ = ["HostService"]
