"""Alembic environment: runs migrations on the connection app.migrate hands in,
or on the configured database when called from the alembic command."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import app.models.tables  # noqa: F401  (registers every table on the metadata)
from app.db import make_engine
from app.settings import get_settings

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        with make_engine(get_settings().resolved_database_url).connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
