"""Browser sign-in sessions. The cookie carries a random token; the database
keeps only its SHA-256, so a copy of the database signs nobody in.

A session is good until it expires (SESSION_TTL_S after sign-in), is ended
(sign-out, sign-out everywhere, password change, deactivation) or its user is
deactivated.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.models.common import utc_now
from app.models.users import (
    MAX_IP_CHARS,
    MAX_USER_AGENT_CHARS,
    Principal,
    Role,
    User,
    UserSession,
)

SESSION_TTL_S = 14 * 24 * 3600
# last_seen_at is written at most this often per session: a busy tab costs
# no write per request.
LAST_SEEN_RESOLUTION_S = 60
# Real tokens are 43 characters; anything much longer is not worth hashing.
MAX_TOKEN_CHARS = 200


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_session(
    *,
    session: Session,
    user_id: int,
    ip: str | None,
    user_agent: str | None,
    ttl_s: int = SESSION_TTL_S,
) -> tuple[str, int]:
    """Open a session for the user; returns (plaintext token, session id)."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    row = UserSession(
        token_hash=hash_token(token),
        user_id=user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        last_seen_at=now,
        ip=ip[:MAX_IP_CHARS] if ip else None,
        user_agent=user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return token, row.id


def resolve_session(*, session: Session, token: str | None) -> Principal | None:
    """The principal behind a session token, or None when the token is
    missing, unknown, ended, expired or its user is deactivated."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    found = session.exec(
        select(UserSession, User)
        .join(User, col(User.id) == col(UserSession.user_id))
        .where(UserSession.token_hash == hash_token(token))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utc_now()
    if row.revoked_at is not None or row.expires_at <= now or not user.is_active:
        return None
    if (now - row.last_seen_at).total_seconds() >= LAST_SEEN_RESOLUTION_S:
        session.execute(
            update(UserSession).where(col(UserSession.id) == row.id).values(last_seen_at=now)
        )
    assert user.id is not None
    return Principal(
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=Role(user.role),
        session_id=row.id,
    )


def end_session(*, session: Session, token: str | None) -> int | None:
    """End the session of `token`; its id, or None if there was no live one
    (so replaying a sign-out cookie changes nothing)."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    now = utc_now()
    session_id = session.exec(
        select(UserSession.id).where(
            UserSession.token_hash == hash_token(token),
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > now,
        )
    ).first()
    if session_id is None:
        return None
    ended = session.execute(
        update(UserSession)
        .where(col(UserSession.id) == session_id, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return session_id if ended.rowcount == 1 else None  # type: ignore[attr-defined]


def end_user_sessions(
    *, session: Session, user_id: int, except_session_id: int | None = None
) -> list[int]:
    """End every live session of the user but `except_session_id`; their ids."""
    now = utc_now()
    query = select(UserSession.id).where(
        UserSession.user_id == user_id,
        col(UserSession.revoked_at).is_(None),
        col(UserSession.expires_at) > now,
    )
    if except_session_id is not None:
        query = query.where(col(UserSession.id) != except_session_id)
    ids = [session_id for session_id in session.exec(query).all() if session_id is not None]
    if ids:
        session.execute(
            update(UserSession)
            .where(col(UserSession.id).in_(ids), col(UserSession.revoked_at).is_(None))
            .values(revoked_at=now)
        )
    return sorted(ids)

