"""OneStack: an OpenStack-compatible IaaS cloud in one Python program."""

__version__ = "0.1.0"
