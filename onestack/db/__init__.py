"""Database: SQLAlchemy 2 models, sessions and Alembic migrations."""

from onestack.db.engine import Database

__all__ = ["Database"]
