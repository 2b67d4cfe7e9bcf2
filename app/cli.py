"""The `taskdeck` command: run everything, or one part each for scale-out."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import NoReturn

import click

from app.errors import TaskdeckError
from app.settings import Settings, get_settings

WEB_READY_TIMEOUT_S = 600.0
# How long a worker or `taskdeck run` waits for the configured Redis at start
# (it may be starting alongside); the web server only glances, it copes without.
REDIS_START_TIMEOUT_S = 5.0
WEB_REDIS_PROBE_S = 1.0


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"taskdeck: error: {message}", err=True)
    sys.exit(code)


def _warn(message: str) -> None:
    click.echo(f"taskdeck: warning: {message}", err=True)


def _redis_problem(url: str, timeout_s: float) -> str | None:
    """Why the Redis at `url` cannot be used, in one line naming the setting, or None."""
    from app.embedded_redis import RedisUnreachable, probe_redis

    try:
        probe_redis(url, timeout_s=timeout_s)
    except RedisUnreachable as error:
        return f"TASKDECK_REDIS_URL: {error}"
    return None


def _require_redis(url: str) -> None:
    """Exit 1 with one line unless the configured Redis answers."""
    if problem := _redis_problem(url, REDIS_START_TIMEOUT_S):
        _fail(problem, code=1)


def _settings() -> Settings:
    try:
        settings = get_settings()
    except TaskdeckError as error:
        _fail(error.message)
    from app.logging import configure_logging

    configure_logging(level=settings.log_level, log_format=settings.log_format)
    return settings


def _migrate() -> str | None:
    from app.migrate import upgrade_to_head

    try:
        return upgrade_to_head()
    except TaskdeckError as error:
        _fail(error.message, code=1)
    except Exception as error:  # An unreadable file, a refused connection, ...
        _fail(f"cannot open the database: {type(error).__name__}: {error}", code=1)


def _prepare_server(*, redis_required: bool) -> Settings:
    """Settings, a free port, a Redis that answers (if one is configured) and
    a migrated database, or one clear line and exit.

    Without `redis_required` an unreachable Redis is only a warning: the web
    server serves everything from the database and catches up when Redis is
    back (ARCHITECTURE.md, "Degradation").
    """
    from app.runtime import ensure_port_free

    settings = _settings()
    try:
        ensure_port_free(settings.host, settings.port)
    except TaskdeckError as error:
        _fail(error.message, code=1)
    if settings.redis_url:
        if redis_required:
            _require_redis(settings.redis_url)
        elif problem := _redis_problem(settings.redis_url, WEB_REDIS_PROBE_S):
            _warn(f"{problem}; starting anyway: live updates wait and runs stay "
                  "queued until it answers")
    _migrate()
    return settings


@click.group()
def main() -> None:
    """Taskdeck: a control room for API jobs."""


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    _settings()
    click.echo(f"database at revision {_migrate()}")


@main.command()
def worker() -> None:
    """Run one arq worker (needs TASKDECK_REDIS_URL)."""
    settings = _settings()
    if not settings.redis_url:
        _fail("TASKDECK_REDIS_URL is not set: a worker needs the shared Redis", code=2)
    _require_redis(settings.redis_url)
    from jobs.worker import run_worker

    run_worker()


@main.command()
def web() -> None:
    """Run the web server (UI, websocket and /api/v1) on TASKDECK_HOST:TASKDECK_PORT."""
    from app.logging import resolve_format
    from app.runtime import PROJECT_ROOT, reflex_environment, settings_environment

    settings = _prepare_server(redis_required=False)
    os.environ.update(settings_environment(settings))
    os.environ.update(reflex_environment())
    if resolve_format(settings.log_format) == "json":
        # Banners and progress bars are for a terminal, not a JSON stream.
        os.environ.setdefault("REFLEX_LOGLEVEL", "warning")
    os.chdir(PROJECT_ROOT)
    # Reflex runs in this process (and its forked server workers), so `ps`
    # shows `taskdeck web` for all of them.
    from reflex.reflex import cli as reflex_cli
    from reflex.utils import exec as reflex_exec

    from app.logging import logging_dictconfig

    # Granian (Reflex's server) configures its loggers itself; hand it ours so
    # its lines are structlog lines too. Reflex 0.10.1 reads this hook.
    reflex_exec._granian_log_dictconfig = lambda: logging_dictconfig(
        level=settings.log_level, log_format=settings.log_format
    )

    reflex_cli.main(
        args=[
            "run",
            "--env",
            "prod",
            "--single-port",
            "--backend-host",
            settings.host,
            "--frontend-port",
            str(settings.port),
        ],
        prog_name="taskdeck web",
    )


@main.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.option("--email", required=True, help="The new user's email (their sign-in name).")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the password from standard input (never from the command line).")
@click.option("--role", required=True, help="admin, operator or viewer.")
@click.option("--name", "display_name", default=None, help="Display name (default: the email).")
def users_create(email: str, password_stdin: bool, role: str, display_name: str | None) -> None:
    """Create a user; the first one may be the admin of a fresh install."""
    from app.db import session_scope
    from app.services import users as user_store

    _settings()
    _migrate()
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        with session_scope() as session:
            if user_store.count_users(session=session) == 0 and role.strip().lower() != "admin":
                # Nobody could manage users, and the set-up page only shows
                # while there are none.
                _fail("The first user must be an admin (--role admin)", code=1)
            user = user_store.create_user(
                session=session,
                email=email,
                display_name=display_name or email.split("@")[0],
                password=password,
                role=role,
                actor=None,
            )
    except TaskdeckError as error:
        fields = error.details.get("fields") or {}
        detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
        _fail(f"{error.message}{': ' + detail if detail else ''}", code=1)
    click.echo(f"created {user.role.value} {user.email} (id {user.id})")


@main.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.option("--email", required=True, help="The owner; the token acts with their role.")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--expires-days", type=click.IntRange(min=1), default=None,
              help="Expire after this many days (default: never).")
def tokens_create(email: str, name: str, expires_days: int | None) -> None:
    """Create an API token and print it once (it is stored only hashed)."""
    from datetime import timedelta

    from app.db import session_scope
    from app.models.common import utc_now
    from app.services import api_tokens
    from app.services import users as user_store

    _settings()
    _migrate()
    expires_at = utc_now() + timedelta(days=expires_days) if expires_days else None
    try:
        with session_scope() as session:
            owner = user_store.find_user_by_email(
                session=session, email=user_store.normalize_email(email)
            )
            if owner is None or not owner.is_active:
                _fail(f"no active user with the email {email}", code=1)
            created = api_tokens.create_token(
                session=session, owner_id=owner.id, name=name, expires_at=expires_at, actor=None
            )
    except TaskdeckError as error:
        _fail(error.message, code=1)
    click.echo(created.token)


@main.group()
def keys() -> None:
    """Manage the secret key that encrypts stored credentials."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored credential under the current TASKDECK_SECRET_KEY.

    Set the new key in TASKDECK_SECRET_KEY and the previous one(s) in
    TASKDECK_OLD_SECRET_KEYS (comma-separated), run this, then drop the old ones.
    """
    from app.db import session_scope
    from app.services.profiles import rotate_credentials

    _settings()
    _migrate()
    try:
        with session_scope() as session:
            count = rotate_credentials(session=session)
    except TaskdeckError as error:
        _fail(error.message, code=1)
    click.echo(f"re-encrypted the credentials of {count} profile(s) under the current key")


def _wait_for_web(url: str) -> Callable[[], None]:
    def ready() -> None:
        deadline = time.monotonic() + WEB_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        click.echo(f"Taskdeck is running at {url}  (Ctrl-C stops it)")
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"the web server did not answer at {url} in time")

    return ready


@main.command()
def run() -> None:
    """Run everything: embedded Redis (unless TASKDECK_REDIS_URL is set), a
    worker and the web server, supervised; Ctrl-C stops them all."""
    from app.embedded_redis import EmbeddedRedisError, plan_embedded_redis, wait_for_redis
    from app.runtime import settings_environment, taskdeck_command
    from app.supervisor import ChildSpec, Supervisor

    # A given Redis must answer before anything starts: the worker cannot
    # run without it (the embedded one is waited for as the first child).
    settings = _prepare_server(redis_required=True)

    children: list[ChildSpec] = []
    child_env = {**os.environ, **settings_environment(settings)}
    if not settings.redis_url:
        try:
            plan = plan_embedded_redis(settings.data_dir / "redis")
        except EmbeddedRedisError as error:
            _fail(str(error), code=1)
        child_env["TASKDECK_REDIS_URL"] = plan.url
        children.append(
            ChildSpec(name="redis", argv=plan.argv, ready=lambda: wait_for_redis(plan.url))
        )
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host
    children += [
        ChildSpec(name="worker", argv=taskdeck_command("worker"), env=child_env),
        ChildSpec(
            name="web",
            argv=taskdeck_command("web"),
            env=child_env,
            ready=_wait_for_web(f"http://{host}:{settings.port}"),
        ),
    ]
    sys.exit(Supervisor(children, on_event=lambda line: click.echo(line, err=True)).run())


if __name__ == "__main__":
    main()
