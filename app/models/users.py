"""Users, their sign-in sessions, their API tokens and the audit log: the
tables, the public shapes and the `Principal` every permission check takes.

Secrets are never stored: passwords as argon2id hashes, session and API
tokens as SHA-256 hex digests. No public shape has a field for any of them;
`CreatedToken` is the one place a plaintext token appears, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, String
from sqlmodel import Field, SQLModel

from app.models.common import PublicModel, UTCDateTime, utc_now

MAX_EMAIL_CHARS = 254
MAX_DISPLAY_NAME_CHARS = 100
MAX_TOKEN_NAME_CHARS = 100
MAX_IP_CHARS = 64
MAX_USER_AGENT_CHARS = 300


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    # Always stored normalized (stripped, lowercase), so the unique index is
    # case-insensitive in effect on every database.
    email: str = Field(max_length=MAX_EMAIL_CHARS, unique=True, index=True)
    display_name: str = Field(max_length=MAX_DISPLAY_NAME_CHARS)
    # A plain string, not a database enum, like RunStatus.
    role: Role = Field(default=Role.VIEWER, sa_type=String(20))
    is_active: bool = True
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    password_changed_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class UserSession(SQLModel, table=True):
    """A browser sign-in; the cookie holds the token, the row its hash."""

    __tablename__ = "user_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ip: str | None = Field(default=None, max_length=MAX_IP_CHARS)
    user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT_CHARS)


class ApiToken(SQLModel, table=True):
    """A bearer token for the REST API; the row keeps its hash and a prefix
    to recognise it by."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=MAX_TOKEN_NAME_CHARS)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    token_prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """One line of the append-only audit log. No foreign key to users: the
    log outlives the accounts it mentions."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    actor_id: int | None = Field(default=None)
    actor_email: str | None = Field(default=None, max_length=MAX_EMAIL_CHARS)
    action: str = Field(max_length=60, index=True)
    object_type: str | None = Field(default=None, max_length=40)
    object_id: str | None = Field(default=None, max_length=MAX_EMAIL_CHARS)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ip: str | None = Field(default=None, max_length=MAX_IP_CHARS)


# ----- public shapes (API responses, state data) -----


class UserPublic(PublicModel):
    id: int
    email: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class ApiTokenPublic(PublicModel):
    id: int
    name: str
    owner_id: int
    owner_email: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class CreatedToken(PublicModel):
    """A token just made: the only time its plaintext is shown."""

    token: str
    info: ApiTokenPublic


class AuditEventPublic(PublicModel):
    id: int
    at: datetime
    actor_id: int | None
    actor_email: str | None
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    ip: str | None


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user (session_id set) or an API token
    (token_id set); None of either for the CLI acting as a user."""

    user_id: int
    email: str
    display_name: str
    role: Role
    session_id: int | None = None
    token_id: int | None = None
