"""Applies pending Alembic migrations; safe when several processes start at once.

The web process, the worker and `taskdeck migrate` all call
`upgrade_to_head()`. A lock makes the others wait while one migrates: a file
lock beside a SQLite database, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from app.db import get_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# An arbitrary constant that names Taskdeck's migration lock on PostgreSQL.
PG_ADVISORY_LOCK_ID = 0x7A5D_EC4

log = structlog.get_logger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_ADVISORY_LOCK_ID})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": PG_ADVISORY_LOCK_ID}
                )
                connection.commit()
        return
    database = engine.url.database or ""
    lock_path = Path(f"{database}.migrate.lock") if database not in ("", ":memory:") else None
    if lock_path is None:
        with engine.connect() as connection:
            yield connection
        return
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_to_head(engine: Engine | None = None) -> str | None:
    """Bring the database to the newest schema; returns the revision it is at."""
    engine = engine or get_engine()
    with _migration_lock(engine) as connection:
        before = current_revision(connection)
        head = head_revision()
        if before != head:
            log.info("migrating", from_revision=before, to_revision=head)
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        return head
