"""The database engine and sessions, shared by the web process and the worker.

SQLite runs in WAL mode with a busy timeout so the web process and the worker
can write the same file; PostgreSQL is used as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from app.errors import DatabaseUnavailable, SettingsError
from app.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 10_000

T = TypeVar("T")


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _make_sqlite_folder(folder: Path, setting: str) -> None:
    """Create the folder of a SQLite file, or raise SettingsError naming `setting`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # mkdir reports a file in the way as "File exists" or "Not a
        # directory" about some ancestor: name the file itself.
        blocker = next(
            (p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None
        )
        why = f"{blocker} is a file, not a folder" if blocker else f"{folder}: {error.strerror}"
        raise SettingsError(f"{setting}: cannot create the database's folder ({why})") from None


def make_engine(database_url: str, *, setting: str = "TASKDECK_DATABASE_URL") -> Engine:
    """Create an engine for `database_url`, preparing SQLite files and pragmas.

    `setting` is the variable named when the SQLite folder cannot be created.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _make_sqlite_folder(Path(url.database).parent, setting)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    # The default SQLite file lives in the data folder: blame the setting given.
    setting = "TASKDECK_DATABASE_URL" if settings.database_url else "TASKDECK_DATA_DIR"
    return make_engine(settings.resolved_database_url, setting=setting)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    Objects stay readable after the commit (expire_on_commit=False) so that
    services can turn them into public models after the block.
    """
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except OperationalError as error:
            session.rollback()
            raise DatabaseUnavailable(
                "The database is unavailable", details={"reason": type(error.orig).__name__}
            ) from error
        except BaseException:
            session.rollback()
            raise


def call_in_session(function: Callable[..., T], /, **kwargs: Any) -> T:
    """`function(session=..., **kwargs)` in its own committed transaction."""
    with session_scope() as session:
        return function(session=session, **kwargs)


async def in_session(function: Callable[..., T], /, **kwargs: Any) -> T:
    """`call_in_session` in a worker thread: for async callers (handlers,
    routes) of the synchronous services."""
    return await asyncio.to_thread(call_in_session, function, **kwargs)
