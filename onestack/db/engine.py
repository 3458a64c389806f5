"""Engine and session handling.

SQLite runs in WAL mode with a busy timeout, so readers never block the writer and
concurrent writers wait instead of failing. Migrations run with Alembic at start.

SQLite has no ``SELECT ... FOR UPDATE``, and its driver opens a transaction only at the
first write, so a read-modify-write could lose a concurrent writer's change. A locking
read (``with_for_update``) therefore starts the transaction with ``BEGIN IMMEDIATE``:
it takes SQLite's write lock before reading, as the row lock does on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from onestack.common.statedir import create_private

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _lock_for_update(state: ORMExecuteState) -> None:
    """On SQLite, a locking read takes the write lock first (see the module's doc)."""
    if not state.is_select or getattr(state.statement, "_for_update_arg", None) is None:
        return
    raw = state.session.connection().connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            path = self.engine.url.database
            if path and path != ":memory:" and not path.startswith("file:"):
                # SQLite creates it (and its -wal and -shm, which copy its mode) 0644
                create_private(Path(path))
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if url.startswith("sqlite"):
            event.listen(self._sessions, "do_orm_execute", _lock_for_update)

    def migrate(self) -> None:
        """Bring the schema to the newest revision of every branch (services add their
        tables on branches of their own that start from a shared revision; ``heads``
        applies them all, in dependency order)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection_url"] = self.url
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
