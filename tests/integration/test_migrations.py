"""`upgrade_to_head()` on real databases: a fresh SQLite file, several real
processes migrating the same file at once (web + worker + `taskdeck migrate`
all call it on start), WAL mode, and the same on the machine's PostgreSQL
when one is reachable (in a throwaway database)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DatabaseError
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from app.db import get_engine, make_engine
from app.migrate import current_revision, head_revision, upgrade_to_head
from app.settings import get_settings

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {"runs", "attempts", "run_logs", "alembic_version"}
MIGRATE_SNIPPET = "from app.migrate import upgrade_to_head; print(upgrade_to_head())"
PROCESS_TIMEOUT_S = 60
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _schema_state(engine: Engine) -> tuple[set[str], str | None]:
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        return tables, current_revision(connection)


def _child_env(**overrides: str) -> dict[str, str]:
    """The parent's environment minus TASKDECK_* (then `overrides`), with the
    project importable whatever the cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKDECK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def _migrate_in_processes(count: int, env: dict[str, str], cwd: Path) -> None:
    """Start `count` migrating processes before waiting on any; all must succeed."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_SNIPPET],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outcomes = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
            outcomes.append((process.returncode, out.strip(), err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    head = head_revision()
    for returncode, out, err in outcomes:
        assert returncode == 0, err
        assert "Traceback" not in err
        assert out.splitlines()[-1] == head


# ----- SQLite -----


def test_fresh_sqlite_is_migrated_to_head(isolated_settings: Path) -> None:
    revision = upgrade_to_head()

    assert revision is not None
    assert revision == head_revision()
    tables, current = _schema_state(get_engine())
    assert TABLES <= tables
    assert current == revision
    assert (isolated_settings / "taskdeck.db").is_file()


def test_second_upgrade_is_a_no_op(isolated_settings: Path) -> None:
    """Every start calls it: it must neither touch the schema nor the data."""
    upgrade_to_head()
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (kind, params, status, trigger, progress_percent, "
                "progress_message, attempt_count, max_attempts, created_at) "
                "VALUES ('demo', '{}', 'queued', 'manual', 0, '', 0, 1, '2026-01-01')"
            )
        )
        schema_version = connection.execute(text("PRAGMA schema_version")).scalar_one()

    assert upgrade_to_head() == head_revision()

    with get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA schema_version")).scalar_one() == schema_version
        assert connection.execute(text("SELECT count(*) FROM runs")).scalar_one() == 1
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [row[0] for row in versions] == [head_revision()]


def test_sqlite_database_is_in_wal_mode(isolated_settings: Path) -> None:
    """WAL lets the web process read while the worker writes; it must be
    persistent in the file, not only set on our own connections."""
    upgrade_to_head()
    get_engine().dispose()

    with sqlite3.connect(isolated_settings / "taskdeck.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_migrating_at_once_all_succeed(
    isolated_settings: Path, processes: int
) -> None:
    """`taskdeck run` starts the web process and the worker together on a fresh
    data folder; both migrate. The lock must make one wait for the other."""
    env = _child_env(TASKDECK_DATA_DIR=str(isolated_settings))

    _migrate_in_processes(processes, env, cwd=isolated_settings.parent)

    tables, current = _schema_state(get_engine())
    assert TABLES <= tables
    assert current == head_revision()
    with get_engine().connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1


# ----- PostgreSQL -----


def _postgres_admin_engine() -> Engine:
    url = make_url(POSTGRES_URL).set(database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture
def postgres_database(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway PostgreSQL database, made the configured one; dropped after."""
    admin = _postgres_admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(error).__name__}")
    name = f"taskdeck_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("TASKDECK_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        yield url
    finally:
        get_engine().dispose()
        get_engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgres_is_migrated_to_head_and_again_is_a_no_op(postgres_database: str) -> None:
    engine = get_engine()
    assert engine.dialect.name == "postgresql"

    assert upgrade_to_head() == head_revision()
    tables, current = _schema_state(engine)
    assert TABLES <= tables
    assert current == head_revision()

    assert upgrade_to_head() == head_revision()
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [row[0] for row in versions] == [head_revision()]

    with engine.begin() as connection:
        connection.execute(text("INSERT INTO audit_events (action, details, at) "
                                "VALUES ('test.event', '{}', now())"))
    for statement in (
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


@pytest.mark.parametrize("processes", [2, 4])
def test_postgres_processes_migrating_at_once_all_succeed(
    postgres_database: str, isolated_settings: Path, processes: int
) -> None:
    """The advisory lock serialises web processes and workers on other hosts."""
    env = _child_env(
        TASKDECK_DATA_DIR=str(isolated_settings), TASKDECK_DATABASE_URL=postgres_database
    )

    _migrate_in_processes(processes, env, cwd=isolated_settings.parent)

    engine = make_engine(postgres_database)
    try:
        tables, current = _schema_state(engine)
    finally:
        engine.dispose()
    assert TABLES <= tables
    assert current == head_revision()
