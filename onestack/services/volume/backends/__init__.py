"""Volume backends (Cinder's drivers): where a volume's bytes live. They are the Block
Storage service's own storage layer, as the image store is the Image service's: the
server uses them, the hosts never do (they get a ``connection_info`` through compute).

``base.py`` is the interface every backend implements; ``local.py`` keeps volumes as
files under the state directory, ``fake.py`` only remembers them (API tests), and the
``rbd`` backend keeps them in a Ceph pool. ``BACKENDS`` names them for
``[volume] backend`` (``ONESTACK_VOLUME_BACKEND``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.config import Config
    from onestack.services.volume.backends.base import VolumeBackend

#: ``[volume] backend`` name -> "module:Class". Every class is built as ``Class(config)``;
#: a module is imported only when its backend is chosen (``rbd`` needs Ceph's bindings).
BACKENDS: dict[str, str] = {
    "local": "onestack.services.volume.backends.local:LocalVolumeBackend",
    "fake": "onestack.services.volume.backends.fake:FakeVolumeBackend",
    "rbd": "onestack.services.volume.backends.rbd:RbdVolumeBackend",
}


def load_backend(name: str, config: Config) -> VolumeBackend:
    """The backend called ``name``, built for ``config``."""
    try:
        module, _, cls = BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown volume backend {name!r} "
                         f"(known: {', '.join(sorted(BACKENDS))})") from None
    backend: VolumeBackend = getattr(importlib.import_module(module), cls)(config=config)
    return backend
