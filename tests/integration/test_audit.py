"""The audit log against the real SQLite file: every action leaves an event,
the filters and the cursor work, and no password or token ever lands in it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.db import get_engine, session_scope
from app.errors import Forbidden, InvalidCredentials, Unauthenticated
from app.models.common import utc_now
from app.models.users import AuditEventPublic, Principal, Role, UserPublic
from app.services import api_tokens, audit
from app.services import users as user_store
from app.services.auth import sign_in, sign_out, sign_out_everywhere
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin passphrase 1"
USER_PASSWORD = "user passphrase 22"
NEW_PASSWORD = "brand new passphrase 333"
WRONG_PASSWORD = "wrong passphrase 4444"
ALL_ACTIONS = {
    "auth.sign_in",
    "auth.sign_in_failed",
    "auth.sign_out",
    "auth.sign_out_everywhere",
    "user.create",
    "user.role_change",
    "user.deactivate",
    "user.activate",
    "user.password_change",
    "token.create",
    "token.revoke",
    "setup.admin_created",
}



def _principal(user: UserPublic) -> Principal:
    return Principal(
        user_id=user.id, email=user.email, display_name=user.display_name, role=user.role
    )


def _events(**filters: object) -> list[AuditEventPublic]:
    with session_scope() as session:
        return audit.list_events(session=session, actor=AUDITOR, **filters)  # type: ignore[arg-type]


async def _everything(redis_client: aioredis.Redis) -> tuple[UserPublic, UserPublic, list[str]]:
    """Every audited action once; returns the admin, the user and every
    secret (passwords, session and API tokens, hashes) that went by."""
    secrets: list[str] = [ADMIN_PASSWORD, USER_PASSWORD, NEW_PASSWORD, WRONG_PASSWORD]
    with session_scope() as session:
        admin = user_store.create_first_admin(
            session=session,
            email="root@example.com",
            display_name="Root",
            password=ADMIN_PASSWORD,
            ip="203.0.113.1",
        )
    actor = _principal(admin)
    with session_scope() as session:
        user = user_store.create_user(
            session=session,
            email="ada@example.com",
            display_name="Ada",
            password=USER_PASSWORD,
            role=Role.VIEWER,
            actor=actor,
            ip="203.0.113.1",
        )
        user_store.set_role(session=session, user_id=user.id, role=Role.OPERATOR, actor=actor)
        user_store.set_active(session=session, user_id=user.id, active=False, actor=actor)
        user_store.set_active(session=session, user_id=user.id, active=True, actor=actor)
        created = api_tokens.create_token(
            session=session, owner_id=user.id, name="ci", expires_at=None, actor=actor
        )
        secrets.append(created.token)
        api_tokens.revoke_token(session=session, token_id=created.info.id, actor=actor)

    with pytest.raises(InvalidCredentials):
        await sign_in(
            redis=redis_client,
            email="ada@example.com",
            password=WRONG_PASSWORD,
            ip="198.51.100.7",
            user_agent="pytest",
        )
    first = await sign_in(
        redis=redis_client,
        email="ada@example.com",
        password=USER_PASSWORD,
        ip="198.51.100.7",
        user_agent="pytest",
    )
    second = await sign_in(
        redis=redis_client,
        email="ADA@example.com",
        password=USER_PASSWORD,
        ip="198.51.100.8",
        user_agent="pytest",
    )
    secrets += [first.session_token, second.session_token]
    with session_scope() as session:
        user_store.change_password(
            session=session,
            user_id=user.id,
            current_password=USER_PASSWORD,
            new_password=NEW_PASSWORD,
            keep_session_id=first.principal.session_id,
        )
    third = await sign_in(
        redis=redis_client,
        email="ada@example.com",
        password=NEW_PASSWORD,
        ip="198.51.100.9",
        user_agent="pytest",
    )
    secrets.append(third.session_token)
    assert await sign_out(token=first.session_token, ip="198.51.100.7") == (
        first.principal.session_id
    )
    assert await sign_out(token=first.session_token) is None  # replayed: no second event
    assert await sign_out_everywhere(principal=third.principal) == [third.principal.session_id]
    with get_engine().connect() as connection:
        secrets += [
            row[0] for row in connection.execute(text("SELECT password_hash FROM users"))
        ]
        secrets += [
            row[0] for row in connection.execute(text("SELECT token_hash FROM user_sessions"))
        ]
        secrets += [row[0] for row in connection.execute(text("SELECT token_hash FROM api_tokens"))]
    return admin, user, secrets


async def test_every_action_is_recorded(taskdeck: Path, redis_client: aioredis.Redis) -> None:
    admin, user, _ = await _everything(redis_client)

    events = _events(limit=500)
    assert {e.action for e in events} == ALL_ACTIONS
    by_action: dict[str, list[AuditEventPublic]] = {}
    for event in events:
        by_action.setdefault(event.action, []).append(event)
    assert len(by_action["auth.sign_out"]) == 1
    assert len(by_action["auth.sign_in"]) == 3

    [created] = by_action["user.create"]
    assert (created.actor_id, created.actor_email) == (admin.id, "root@example.com")
    assert (created.object_type, created.object_id) == ("user", str(user.id))
    assert created.details["role"] == "viewer"
    assert created.ip == "203.0.113.1"
    [role_change] = by_action["user.role_change"]
    assert role_change.details["from"] == "viewer" and role_change.details["to"] == "operator"
    [failed] = by_action["auth.sign_in_failed"]
    assert failed.actor_id is None
    assert (failed.object_type, failed.object_id) == ("user", "ada@example.com")
    assert failed.ip == "198.51.100.7"
    [setup] = by_action["setup.admin_created"]
    assert setup.object_id == str(admin.id)
    [token] = by_action["token.create"]
    assert token.details == {"name": "ci", "owner_id": user.id}
    assert all(e.actor_id == user.id for e in by_action["auth.sign_in"])
    # Newest first.
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)


async def test_no_secret_ever_reaches_the_log(
    taskdeck: Path, redis_client: aioredis.Redis
) -> None:
    _, _, secrets = await _everything(redis_client)

    with get_engine().connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_events")).mappings().all()
    dump = json.dumps([dict(row) for row in rows], default=str)
    assert len(rows) >= len(ALL_ACTIONS)
    assert len(secrets) >= 10
    for secret in secrets:
        assert secret not in dump


async def test_filters_and_cursor(taskdeck: Path, redis_client: aioredis.Redis) -> None:
    admin, user, _ = await _everything(redis_client)
    everything = _events(limit=500)

    assert {e.action for e in _events(action="user.create")} == {"user.create"}
    assert {e.actor_id for e in _events(actor_id=user.id)} == {user.id}
    assert {e.object_type for e in _events(object_type="api_token")} == {"api_token"}
    assert _events(since=utc_now() + timedelta(minutes=1)) == []
    assert _events(until=everything[-1].at) == []
    assert _events(since=everything[-1].at, limit=500) == everything
    middle = everything[len(everything) // 2]
    assert all(e.at < middle.at for e in _events(until=middle.at))

    pages: list[AuditEventPublic] = []
    cursor: int | None = None
    while True:
        page = _events(before_id=cursor, limit=3)
        if not page:
            break
        assert len(page) <= 3
        pages += page
        cursor = page[-1].id
    assert pages == everything

    admin_actions = _events(actor_id=admin.id, action="user.role_change")
    assert [e.object_id for e in admin_actions] == [str(user.id)]
    by_email = _events(actor_email=" ROOT@example.com ", limit=500)
    assert by_email and {e.actor_email for e in by_email} == {"root@example.com"}
    assert by_email == [e for e in everything if e.actor_id == admin.id]


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER, None])
def test_only_admins_may_read_the_log_users_and_everyones_tokens(
    taskdeck: Path, role: Role | None
) -> None:
    """Refused in the service, whatever page or route asks."""
    actor = None if role is None else Principal(
        user_id=7, email="someone@example.com", display_name="Someone", role=role
    )
    expected = Unauthenticated if actor is None else Forbidden
    with session_scope() as session:
        with pytest.raises(expected):
            audit.list_events(session=session, actor=actor)
        with pytest.raises(expected):
            user_store.list_users(session=session, actor=actor)
        with pytest.raises(expected):
            api_tokens.list_tokens(session=session, actor=actor, owner_id=None)
        with pytest.raises(expected):
            api_tokens.list_tokens(session=session, actor=actor, owner_id=8)
        if actor is not None:  # one's own tokens, any role
            assert api_tokens.list_tokens(session=session, actor=actor, owner_id=7) == []


def test_details_under_secret_names_are_masked(taskdeck: Path) -> None:
    with session_scope() as session:
        audit.record(
            session=session,
            action="test.event",
            actor_email="x@example.com",
            details={"password": "hunter2hunter2", "nested": {"api_token": "td_abc"}, "n": 1},
        )

    [event] = _events(action="test.event")
    assert event.details == {
        "password": "[redacted]",
        "nested": {"api_token": "[redacted]"},
        "n": 1,
    }
    assert event.actor_id is None and event.actor_email == "x@example.com"


def test_count_recent_failures(taskdeck: Path) -> None:
    start = utc_now()
    with session_scope() as session:
        for email in ("ada@example.com", " ADA@example.com", "bob@example.com"):
            audit.record(
                session=session,
                action=audit.SIGN_IN_FAILED,
                object_type="user",
                object_id=audit.email_key(email),
            )

    with session_scope() as session:
        count, latest = audit.count_recent_failures(
            session=session, email="Ada@Example.com", since=start
        )
        none, no_latest = audit.count_recent_failures(
            session=session, email="ada@example.com", since=utc_now() + timedelta(seconds=1)
        )
    assert count == 2
    assert latest is not None and latest.tzinfo is not None and latest >= start
    assert (none, no_latest) == (0, None)


def test_the_database_refuses_to_change_or_delete_an_event(taskdeck: Path) -> None:
    with session_scope() as session:
        audit.record(session=session, action="test.event", actor_email="x@example.com")
    for statement in (
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(DatabaseError, match="append-only"), get_engine().begin() as db:
            db.execute(text(statement))
    [event] = _events(action="test.event")
    assert event.actor_email == "x@example.com"


def test_the_log_has_no_way_to_change_an_event() -> None:
    functions = {n for n in dir(audit) if not n.startswith("_") and callable(getattr(audit, n))}
    changers = ("update", "delete", "remove", "edit", "purge")
    assert not {n for n in functions if n.startswith(changers)}
