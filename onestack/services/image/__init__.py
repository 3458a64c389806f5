"""Image service (Glance v2): images, their data, sharing, and inspection of uploads."""

from onestack.services.image.service import Images

__all__ = ["Images"]
