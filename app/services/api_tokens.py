"""API tokens for `Authorization: Bearer td_...`.

A token is "td_" + 43 random URL-safe characters. The database keeps its
SHA-256 and the first 8 characters after "td_" (to tell tokens apart in a
list); the plaintext is shown once, in `CreatedToken`. A token acts as its
owner with the owner's current role, and stops working when it is revoked,
expires or its owner is deactivated.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.errors import Forbidden, TokenNotFound, UserNotFound, ValidationFailed
from app.models.common import utc_now
from app.models.users import (
    MAX_TOKEN_NAME_CHARS,
    ApiToken,
    ApiTokenPublic,
    CreatedToken,
    Principal,
    Role,
    User,
)
from app.services import audit
from app.services.permissions import Permission, can, require
from app.services.sessions import LAST_SEEN_RESOLUTION_S, MAX_TOKEN_CHARS, hash_token

TOKEN_PREFIX = "td_"
TOKEN_PREFIX_CHARS = 8

log = structlog.get_logger(__name__)


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(problem, details={"fields": {field: problem}})


def _check_name(name: str) -> str:
    value = name.strip() if isinstance(name, str) else ""
    if not value:
        raise _invalid("name", "Give the token a name")
    if len(value) > MAX_TOKEN_NAME_CHARS:
        raise _invalid("name", f"Use at most {MAX_TOKEN_NAME_CHARS} characters")
    return value


def _to_public(token: ApiToken, owner_email: str) -> ApiTokenPublic:
    assert token.id is not None
    return ApiTokenPublic(
        id=token.id,
        name=token.name,
        owner_id=token.user_id,
        owner_email=owner_email,
        token_prefix=token.token_prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


def create_token(
    *,
    session: Session,
    owner_id: int,
    name: str,
    expires_at: datetime | None,
    actor: Principal | None,
    ip: str | None = None,
) -> CreatedToken:
    """A new token for `owner_id`. `actor` None is the CLI (trusted); a
    principal may make tokens for itself, and for others with MANAGE_TOKENS."""
    if actor is not None and actor.user_id != owner_id and not can(actor, Permission.MANAGE_TOKENS):
        raise Forbidden(
            f"Your role ({Role(actor.role).value}) may not create tokens for other users",
            details={"role": Role(actor.role).value, "permission": Permission.MANAGE_TOKENS.value},
        )
    name = _check_name(name)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise _invalid("expires_at", "Give the expiry with a time zone (UTC)")
        if expires_at <= utc_now():
            raise _invalid("expires_at", "Choose a time in the future")
    owner = session.get(User, owner_id)
    if owner is None:
        raise UserNotFound(f"User {owner_id} does not exist", details={"user_id": owner_id})
    if not owner.is_active:
        raise _invalid("owner_id", "This user is deactivated")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        user_id=owner_id,
        token_hash=hash_token(plaintext),
        token_prefix=plaintext[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + TOKEN_PREFIX_CHARS],
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(
        session=session,
        action=audit.TOKEN_CREATE,
        actor=actor,
        object_type="api_token",
        object_id=token.id,
        details={"name": name, "owner_id": owner_id},
        ip=ip,
    )
    log.info("api_token_created", token_id=token.id, owner_id=owner_id)
    return CreatedToken(token=plaintext, info=_to_public(token, owner.email))


def verify_token(*, session: Session, token: str | None) -> Principal | None:
    """The owner behind a bearer token, or None when it is missing,
    malformed, unknown, revoked, expired or its owner is deactivated."""
    if (
        not token
        or not isinstance(token, str)
        or not token.startswith(TOKEN_PREFIX)
        or len(token) > MAX_TOKEN_CHARS
    ):
        return None
    found = session.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if found is None:
        return None
    row, owner = found
    now = utc_now()
    if (
        row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
        or not owner.is_active
    ):
        return None
    if (
        row.last_used_at is None
        or (now - row.last_used_at).total_seconds() >= LAST_SEEN_RESOLUTION_S
    ):
        session.execute(update(ApiToken).where(col(ApiToken.id) == row.id).values(last_used_at=now))
    assert owner.id is not None
    return Principal(
        user_id=owner.id,
        email=owner.email,
        display_name=owner.display_name,
        role=Role(owner.role),
        token_id=row.id,
    )


def _get_with_owner(session: Session, token_id: int) -> tuple[ApiToken, str]:
    found = session.exec(
        select(ApiToken, User.email)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(ApiToken.id == token_id)
        .execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise TokenNotFound(f"API token {token_id} does not exist", details={"token_id": token_id})
    return found[0], found[1]


def get_token(*, session: Session, token_id: int) -> ApiTokenPublic:
    return _to_public(*_get_with_owner(session, token_id))


def revoke_token(
    *, session: Session, token_id: int, actor: Principal, ip: str | None = None
) -> ApiTokenPublic:
    """Revoke a token: its owner may, and anyone with MANAGE_TOKENS.
    Revoking a revoked token changes nothing and returns it as it is."""
    token, owner_email = _get_with_owner(session, token_id)
    if actor.user_id != token.user_id and not can(actor, Permission.MANAGE_TOKENS):
        raise Forbidden(
            f"Your role ({Role(actor.role).value}) may not revoke other users' tokens",
            details={"role": Role(actor.role).value, "permission": Permission.MANAGE_TOKENS.value},
        )
    if token.revoked_at is not None:
        return _to_public(token, owner_email)
    now = utc_now()
    revoked = session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == token_id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    token, owner_email = _get_with_owner(session, token_id)
    if revoked.rowcount == 1:  # type: ignore[attr-defined]
        audit.record(
            session=session,
            action=audit.TOKEN_REVOKE,
            actor=actor,
            object_type="api_token",
            object_id=token_id,
            details={"name": token.name, "owner_id": token.user_id},
            ip=ip,
        )
        log.info("api_token_revoked", token_id=token_id, by=actor.user_id)
    return _to_public(token, owner_email)


def list_tokens(
    *, session: Session, actor: Principal | None, owner_id: int | None
) -> list[ApiTokenPublic]:
    """Tokens of `owner_id` (None: everyone's), newest first, revoked ones
    too. Anyone sees their own; other people's need MANAGE_TOKENS."""
    principal = require(actor, Permission.READ)
    if owner_id != principal.user_id:
        require(principal, Permission.MANAGE_TOKENS)
    query = select(ApiToken, User.email).join(User, col(User.id) == col(ApiToken.user_id))
    if owner_id is not None:
        query = query.where(ApiToken.user_id == owner_id)
    rows = session.exec(query.order_by(col(ApiToken.id).desc())).all()
    return [_to_public(token, email) for token, email in rows]
