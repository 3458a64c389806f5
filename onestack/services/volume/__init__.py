"""The Block Storage service (Cinder v3); ``Volumes`` is its entry point, and
``attachments.py`` states the contract compute relies on."""

from onestack.services.volume.service import Volumes

__all__ = ["Volumes"]
