"""The audit log: who did what, when, from where. Append-only: this module
writes and reads events and has no way to change or remove one.

Details never hold a secret; as a second line of defence, values under keys
that name one (password, token, secret, ...) are masked before they are
stored, as in log lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.crypto import keyed_digest
from app.models.users import (
    MAX_EMAIL_CHARS,
    MAX_IP_CHARS,
    AuditEvent,
    AuditEventPublic,
    Principal,
)
from app.redaction import redact_event
from app.services.emails import email_problem
from app.services.permissions import Permission, require

SIGN_IN = "auth.sign_in"
SIGN_IN_FAILED = "auth.sign_in_failed"
SIGN_OUT = "auth.sign_out"
SIGN_OUT_EVERYWHERE = "auth.sign_out_everywhere"
USER_CREATE = "user.create"
USER_ROLE_CHANGE = "user.role_change"
USER_DEACTIVATE = "user.deactivate"
USER_ACTIVATE = "user.activate"
USER_PASSWORD_CHANGE = "user.password_change"
TOKEN_CREATE = "token.create"
TOKEN_REVOKE = "token.revoke"
SETUP_ADMIN_CREATED = "setup.admin_created"
# Every action above, for filters.
ACTIONS = (
    SIGN_IN, SIGN_IN_FAILED, SIGN_OUT, SIGN_OUT_EVERYWHERE, SETUP_ADMIN_CREATED, USER_CREATE,
    USER_ROLE_CHANGE, USER_DEACTIVATE, USER_ACTIVATE, USER_PASSWORD_CHANGE, TOKEN_CREATE,
    TOKEN_REVOKE,
)

MAX_LIST_LIMIT = 500
# What events are about (their object_type), for the log's filter.
OBJECT_TYPES = ("user", "session", "api_token", "profile", "run")
# What a failed sign-in records instead of a typed text that is no email.
NOT_AN_EMAIL_PREFIX = "not-an-email:"
TYPED_TEXT_PURPOSE = "audit-typed-text"


def email_key(email: str) -> str:
    """How a typed email is kept in the log and counted by the sign-in
    limits: stripped and lowercase (what users.normalize_email stores) when
    it is an address; otherwise a digest, because what people type there is
    sometimes their password."""
    key = email.strip().lower()
    if email_problem(key) is None or key.startswith(NOT_AN_EMAIL_PREFIX):  # a key already
        return key
    # Keyed: a plain hash of a typed password is undone by a dictionary.
    return NOT_AN_EMAIL_PREFIX + keyed_digest(TYPED_TEXT_PURPOSE, key)[:32]


def record(
    *,
    session: Session,
    action: str,
    actor: Principal | None = None,
    actor_email: str | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Add one event to the log (committed with the caller's transaction)."""
    session.add(
        AuditEvent(
            actor_id=actor.user_id if actor else None,
            actor_email=(actor.email if actor else actor_email),
            action=action,
            object_type=object_type,
            object_id=str(object_id)[:MAX_EMAIL_CHARS] if object_id is not None else None,
            details=redact_event(None, "", dict(details or {})),
            ip=ip[:MAX_IP_CHARS] if ip else None,
        )
    )


def list_events(
    *,
    session: Session,
    actor: Principal | None,
    action: str | None = None,
    actor_id: int | None = None,
    actor_email: str | None = None,
    object_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEventPublic]:
    """Events newest first. `before_id` is the cursor: pass the id of the
    last event of a page to get the next one. `since` is inclusive, `until`
    exclusive. Admins only."""
    require(actor, Permission.MANAGE_USERS)
    query = select(AuditEvent)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if actor_email is not None:
        query = query.where(AuditEvent.actor_email == email_key(actor_email))
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    events = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit)).all()
    return [AuditEventPublic.model_validate(event, from_attributes=True) for event in events]


def count_recent_failures(
    *, session: Session, email: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many failed sign-ins named `email` since `since`, and when the
    latest was (the database fallback of the sign-in limiter)."""
    count, latest = session.exec(
        select(func.count(), func.max(AuditEvent.at)).where(
            AuditEvent.action == SIGN_IN_FAILED,
            AuditEvent.object_id == email_key(email),
            col(AuditEvent.at) >= since,
        )
    ).one()
    return int(count), _as_utc(latest)


def count_recent_failures_from(
    *, session: Session, ip: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many failed sign-ins came from `ip` since `since`, whatever the
    emails, and when the latest was (the limiter's fallback address rule)."""
    count, latest = session.exec(
        select(func.count(), func.max(AuditEvent.at)).where(
            AuditEvent.action == SIGN_IN_FAILED,
            AuditEvent.ip == ip[:MAX_IP_CHARS],
            col(AuditEvent.at) >= since,
        )
    ).one()
    return int(count), _as_utc(latest)


def last_sign_in_at(*, session: Session, email: str) -> datetime | None:
    """When the account with `email` last signed in successfully, if ever."""
    latest = session.exec(
        select(func.max(AuditEvent.at)).where(
            AuditEvent.action == SIGN_IN, AuditEvent.actor_email == email_key(email)
        )
    ).one()
    return _as_utc(latest)


def _as_utc(value: Any) -> datetime | None:
    """Aggregates bypass the column type: put the zone back (SQLite loses it,
    and may hand back text)."""
    if value is None:
        return None
    return AuditEvent.__table__.c.at.type.process_result_value(  # type: ignore[attr-defined]
        datetime.fromisoformat(value) if isinstance(value, str) else value, None
    )
