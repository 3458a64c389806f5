"""Identity (Keystone v3): users, projects, roles, tokens and the service catalog."""

from onestack.services.identity.service import Identity

__all__ = ["Identity"]
