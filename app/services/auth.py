"""Sign-in, sign-out and "who is this?", as the web UI, the API and the CLI
use them. The async functions run the database work in a thread; the sync
helpers open their own session (the web calls them with `to_thread`).

A sign-in is refused with InvalidCredentials, always "Wrong email or
password", for an unknown or malformed email, a wrong password and a
deactivated user alike; every failure is counted by the limiter and written
to the audit log, and SignInLocked answers while the account or the address
is locked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from app.db import session_scope
from app.errors import InvalidCredentials, ValidationFailed
from app.models.users import MAX_USER_AGENT_CHARS, Principal
from app.services import audit
from app.services.api_tokens import verify_token
from app.services.ratelimit import RedisLike, SignInLimiter
from app.services.sessions import (
    create_session,
    end_session,
    end_user_sessions,
    resolve_session,
)
from app.services.users import authenticate, change_password

log = structlog.get_logger(__name__)


@dataclass
class SignIn:
    principal: Principal
    session_token: str


def _open_session(
    email: str, password: str, ip: str | None, user_agent: str | None
) -> SignIn:
    with session_scope() as session:
        user = authenticate(session=session, email=email, password=password)
        token, session_id = create_session(
            session=session, user_id=user.id, ip=ip, user_agent=user_agent
        )
        principal = Principal(
            user_id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            session_id=session_id,
        )
        audit.record(
            session=session,
            action=audit.SIGN_IN,
            actor=principal,
            object_type="session",
            object_id=session_id,
            details={"user_agent": user_agent[:MAX_USER_AGENT_CHARS]} if user_agent else {},
            ip=ip,
        )
    return SignIn(principal=principal, session_token=token)


def _record_failure(email_key: str, ip: str | None) -> None:
    with session_scope() as session:
        audit.record(
            session=session,
            action=audit.SIGN_IN_FAILED,
            object_type="user",
            object_id=email_key,
            ip=ip,
        )


async def sign_in(
    *,
    redis: RedisLike | None,
    email: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
) -> SignIn:
    """Check the email and password and open a session (its token goes in
    the cookie). SignInLocked, InvalidCredentials, or DatabaseUnavailable."""
    email_key = audit.email_key(email if isinstance(email, str) else "")
    limiter = SignInLimiter(redis)
    attempt = await limiter.admit(email=email_key, ip=ip)
    try:
        result = await asyncio.to_thread(_open_session, email, password, ip, user_agent)
    except InvalidCredentials:
        await asyncio.to_thread(_record_failure, email_key, ip)
        await limiter.failed(attempt)
        log.info("sign_in_failed", ip=ip)
        raise
    except BaseException:
        await limiter.withdraw(attempt)  # the database failed, not the guess
        raise
    await limiter.succeeded(attempt)
    log.info("signed_in", user_id=result.principal.user_id, session_id=result.principal.session_id)
    return result


def _sign_out(token: str | None, ip: str | None) -> int | None:
    with session_scope() as session:
        principal = resolve_session(session=session, token=token)
        session_id = end_session(session=session, token=token)
        if session_id is not None:
            audit.record(
                session=session,
                action=audit.SIGN_OUT,
                actor=principal,
                object_type="session",
                object_id=session_id,
                ip=ip,
            )
    return session_id


async def sign_out(*, token: str | None, ip: str | None = None) -> int | None:
    """End the session of `token`; its id, or None when it was not live."""
    session_id = await asyncio.to_thread(_sign_out, token, ip)
    if session_id is not None:
        log.info("signed_out", session_id=session_id)
    return session_id


def _sign_out_everywhere(principal: Principal, ip: str | None) -> list[int]:
    with session_scope() as session:
        ended = end_user_sessions(session=session, user_id=principal.user_id)
        audit.record(
            session=session,
            action=audit.SIGN_OUT_EVERYWHERE,
            actor=principal,
            object_type="user",
            object_id=principal.user_id,
            details={"sessions_ended": len(ended)},
            ip=ip,
        )
    return ended


async def sign_out_everywhere(*, principal: Principal, ip: str | None = None) -> list[int]:
    """End every session of the principal's user (this one too); their ids."""
    ended = await asyncio.to_thread(_sign_out_everywhere, principal, ip)
    log.info("signed_out_everywhere", user_id=principal.user_id, sessions=len(ended))
    return ended


def _change_password(
    principal: Principal, current: str, new: str, ip: str | None
) -> list[int]:
    with session_scope() as session:
        return change_password(
            session=session,
            user_id=principal.user_id,
            current_password=current,
            new_password=new,
            keep_session_id=principal.session_id,
            ip=ip,
        )


async def change_own_password(
    *, redis: RedisLike | None, principal: Principal, current: str, new: str, ip: str | None
) -> list[int]:
    """Change the signed-in user's password; the ids of their other sessions,
    now ended. Wrong current passwords count like failed sign-ins, so a
    stolen session cookie cannot be used to guess the password."""
    email_key = audit.email_key(principal.email)
    limiter = SignInLimiter(redis)
    attempt = await limiter.admit(email=email_key, ip=ip)
    try:
        ended = await asyncio.to_thread(_change_password, principal, current, new, ip)
    except ValidationFailed as error:
        if "current_password" in error.details.get("fields", {}):
            await asyncio.to_thread(_record_failure, email_key, ip)
            await limiter.failed(attempt)
        else:
            await limiter.withdraw(attempt)
        raise
    except BaseException:
        await limiter.withdraw(attempt)
        raise
    await limiter.succeeded(attempt)
    return ended


def principal_for_session(token: str | None) -> Principal | None:
    """Who holds this session cookie, or None."""
    if not token:
        return None
    with session_scope() as session:
        return resolve_session(session=session, token=token)


def principal_for_api_token(token: str | None) -> Principal | None:
    """Who holds this bearer token, or None."""
    if not token:
        return None
    with session_scope() as session:
        return verify_token(session=session, token=token)
