"""Where volume backups keep their data (``onestack.services.volume.backups``).

``load_driver(config)`` gives the configured driver; today the one shipped is
``posix`` (chunked, compressed, checksummed files in a directory), which reads and
writes a volume through its backend's ``open_data`` and so serves every volume backend
(local files, the fake one, RBD through librbd).
"""

from __future__ import annotations

from onestack.common.config import Config
from onestack.services.volume.backup_drivers.base import BackupDriver, BackupError
from onestack.services.volume.backup_drivers.posix import PosixBackupDriver

__all__ = ["BackupDriver", "BackupError", "PosixBackupDriver", "load_driver"]


def load_driver(config: Config) -> BackupDriver:
    return PosixBackupDriver(config)
