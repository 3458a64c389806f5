"""A locking read (``with_for_update``) on SQLite takes the write lock before it reads,
so concurrent read-modify-writes do not lose each other's changes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from onestack.db.engine import Database


class Base(DeclarativeBase):
    pass


class Counter(Base):
    __tablename__ = "counter"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


def _bump(db: Database, times: int, lock: bool) -> None:
    for _ in range(times):
        with db.session() as session:
            row = session.get(Counter, "c", with_for_update=lock or None)
            assert row is not None
            seen = row.value
            time.sleep(0.001)  # widen the window between the read and the write
            row.value = seen + 1


def _run(tmp_path: Path, lock: bool) -> int:
    db = Database(f"sqlite:///{tmp_path / ('locked' if lock else 'plain')}.db")
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        session.add(Counter(id="c", value=0))
    threads = [threading.Thread(target=_bump, args=(db, 40, lock)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as session:
        value = session.get(Counter, "c").value  # type: ignore[union-attr]
    db.dispose()
    return value


def test_locked_read_modify_writes_keep_every_change(tmp_path: Path) -> None:
    assert _run(tmp_path, lock=True) == 120


def test_unlocked_read_modify_writes_can_lose_changes(tmp_path: Path) -> None:
    """The control: without the lock the same work loses updates, so the test above
    would notice if locking stopped working."""
    assert _run(tmp_path, lock=False) < 120
