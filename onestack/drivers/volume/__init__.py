"""Volume backends (Cinder's drivers): where a volume's bytes live.

``base.py`` is the interface every backend implements; ``local.py`` keeps volumes as
files under the state directory, ``fake.py`` only remembers them (API tests), and the
``rbd`` backend keeps them in a Ceph pool. ``BACKENDS`` names them for
``[volume] backend`` (``ONESTACK_VOLUME_BACKEND``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.drivers.registry import load_driver

if TYPE_CHECKING:
    from onestack.common.config import Config
    from onestack.drivers.volume.base import VolumeBackend

#: ``[volume] backend`` name -> "module:Class". Every class is built as ``Class(config)``.
BACKENDS: dict[str, str] = {
    "local": "onestack.drivers.volume.local:LocalVolumeBackend",
    "fake": "onestack.drivers.volume.fake:FakeVolumeBackend",
    "rbd": "onestack.drivers.volume.rbd:RbdVolumeBackend",
}


def load_backend(name: str, config: Config) -> VolumeBackend:
    """The backend called ``name``, built for ``config``."""
    backend: VolumeBackend = load_driver("volume", BACKENDS, name, config=config)
    return backend
