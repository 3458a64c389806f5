"""The Fernet key repository, laid out as Keystone's so operators know it.

Files in the repository are named by integers: ``0`` is the staged key (the next
primary, already accepted so that every process knows it before it is used), the highest
number is the primary (used to encrypt), and the others are secondaries kept only to
decrypt tokens issued before a rotation. Rotation promotes the staged key, stages a new
one and drops the oldest secondaries beyond ``max_active_keys``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3) -> None:
        if max_active_keys < 2:
            raise ValueError("max_active_keys must be at least 2 (staged and primary)")
        self.path = path
        self.max_active_keys = max_active_keys

    def _write_key(self, name: int) -> None:
        tmp = self.path / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
        os.replace(tmp, self.path / str(name))

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def ensure(self) -> None:
        """Create the repository with a staged and a primary key if it has none."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        indexes = self._indexes()
        if 0 not in indexes:
            self._write_key(0)
        if not [i for i in indexes if i > 0]:
            self.rotate()

    def rotate(self) -> int:
        """Promote the staged key to primary, stage a new key, prune old ones.

        Returns the index of the new primary key.
        """
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        indexes = self._indexes()
        if 0 not in indexes:
            self._write_key(0)
        new_primary = max(indexes + [0]) + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        self._write_key(0)
        secondaries = [i for i in self._indexes() if 0 < i < new_primary]
        excess = len(secondaries) + 2 - self.max_active_keys
        for index in secondaries[:max(excess, 0)]:
            (self.path / str(index)).unlink()
        return new_primary

    def load(self) -> MultiFernet:
        """Keys in the order MultiFernet wants: the primary first."""
        indexes = self._indexes()
        if not indexes or max(indexes) == 0:
            raise RuntimeError(f"no Fernet keys in {self.path}; run `onestack up` once")
        order = sorted((i for i in indexes if i > 0), reverse=True) + [0]
        return MultiFernet([Fernet((self.path / str(i)).read_bytes().strip()) for i in order])

    def signature(self) -> tuple[tuple[int, float], ...]:
        """Changes whenever a key file changes; used to reload after a rotation."""
        out = []
        for i in self._indexes():
            try:
                out.append((i, (self.path / str(i)).stat().st_mtime))
            except FileNotFoundError:
                continue
        return tuple(out)
