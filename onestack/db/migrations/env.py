"""Alembic environment: runs on the connection ``Database.migrate`` hands over."""

from alembic import context
from sqlalchemy import create_engine

from onestack.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = str(config.attributes.get("connection_url")
                  or config.get_main_option("sqlalchemy.url"))
        engine = create_engine(url)
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata,
                              render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    context.run_migrations()


run()
