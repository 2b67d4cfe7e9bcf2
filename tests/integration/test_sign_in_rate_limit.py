"""Sign-in limits with the real Redis (and the database fallback without it):
accounts lock after MAX_FAILURES wrong passwords, addresses after
MAX_ADDRESS_FAILURES, with one message whether the account exists or not,
and unlock by themselves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import text

from app.db import get_engine, session_scope
from app.errors import InvalidCredentials, SignInLocked, ValidationFailed
from app.models.users import Principal, Role, UserPublic
from app.services import audit, ratelimit
from app.services import users as user_store
from app.services.auth import (
    SignIn,
    change_own_password,
    principal_for_session,
    sign_in,
)

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
WRONG = "incorrect horse battery"
LOCKED_MESSAGE = "Too many failed sign-ins. Try again in a minute."
IP = "198.51.100.10"



@pytest.fixture
def ada(taskdeck: Path) -> UserPublic:
    with session_scope() as session:
        return user_store.create_user(
            session=session,
            email=EMAIL,
            display_name="Ada",
            password=PASSWORD,
            role=Role.OPERATOR,
            actor=None,
        )


async def _try(
    redis: aioredis.Redis | None, password: str, email: str = EMAIL, ip: str | None = IP
) -> SignIn:
    return await sign_in(redis=redis, email=email, password=password, ip=ip, user_agent="pytest")


async def _fail(
    redis: aioredis.Redis | None, times: int, email: str = EMAIL, ip: str | None = IP
) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            await _try(redis, WRONG, email=email, ip=ip)


async def test_right_password_signs_in(ada: UserPublic, redis_client: aioredis.Redis) -> None:
    result = await _try(redis_client, PASSWORD, email=" ADA@Example.com ")

    assert result.principal.user_id == ada.id
    assert result.principal.session_id is not None
    assert principal_for_session(result.session_token) == result.principal


async def test_five_failures_lock_the_account_even_for_the_right_password(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    await _fail(redis_client, ratelimit.MAX_FAILURES)

    with pytest.raises(SignInLocked) as raised:
        await _try(redis_client, PASSWORD)

    assert raised.value.message == LOCKED_MESSAGE
    assert raised.value.http_status == 429
    assert 1 <= raised.value.details["retry_after_s"] <= ratelimit.LOCK_S
    # Another address is refused too: the lock is on the account.
    with pytest.raises(SignInLocked):
        await _try(redis_client, PASSWORD, ip="192.0.2.99")
    # Another account from the same address is not.
    with session_scope() as session:
        user_store.create_user(
            session=session,
            email="bob@example.com",
            display_name="Bob",
            password=PASSWORD,
            role=Role.VIEWER,
            actor=None,
        )
    await _try(redis_client, PASSWORD, email="bob@example.com")


async def test_four_failures_do_not_lock(ada: UserPublic, redis_client: aioredis.Redis) -> None:
    await _fail(redis_client, ratelimit.MAX_FAILURES - 1)

    await _try(redis_client, PASSWORD)


async def test_an_unknown_email_locks_with_the_same_message(
    taskdeck: Path, redis_client: aioredis.Redis
) -> None:
    await _fail(redis_client, ratelimit.MAX_FAILURES, email="ghost@example.com")

    with pytest.raises(SignInLocked) as raised:
        await _try(redis_client, PASSWORD, email="ghost@example.com")

    assert raised.value.message == LOCKED_MESSAGE


async def test_the_lock_expires_and_success_resets_the_count(
    ada: UserPublic, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "LOCK_S", 1)
    await _fail(redis_client, ratelimit.MAX_FAILURES)
    with pytest.raises(SignInLocked):
        await _try(redis_client, PASSWORD)

    await asyncio.sleep(1.2)
    await _try(redis_client, PASSWORD)

    # The success reset the account: it takes five new failures to lock it.
    await _fail(redis_client, ratelimit.MAX_FAILURES - 1)
    await _try(redis_client, PASSWORD)


async def test_a_failure_after_the_lock_locks_again(
    ada: UserPublic, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "LOCK_S", 1)
    await _fail(redis_client, ratelimit.MAX_FAILURES)
    await asyncio.sleep(1.2)

    await _fail(redis_client, 1)  # still within the window: locked again at once

    with pytest.raises(SignInLocked):
        await _try(redis_client, PASSWORD)


async def test_the_window_forgets_old_failures(
    ada: UserPublic, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "WINDOW_S", 1)
    await _fail(redis_client, ratelimit.MAX_FAILURES - 1)
    await asyncio.sleep(1.2)

    await _fail(redis_client, 1)
    await _try(redis_client, PASSWORD)


async def test_many_failures_from_one_address_lock_the_address(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    # Spread over many emails, so that no account reaches its own limit.
    for index in range(ratelimit.MAX_ADDRESS_FAILURES):
        await _fail(redis_client, 1, email=f"guess{index % 10}@example.com")

    with pytest.raises(SignInLocked) as raised:
        await _try(redis_client, PASSWORD)
    assert raised.value.message == LOCKED_MESSAGE
    # From another address the account is fine.
    await _try(redis_client, PASSWORD, ip="192.0.2.50")


async def test_redis_keys_never_hold_the_email(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    await _fail(redis_client, ratelimit.MAX_FAILURES)

    keys = [key.decode() for key in await redis_client.keys("*")]
    assert keys
    assert all(key.startswith(ratelimit.KEY_PREFIX) for key in keys)
    assert not any("ada" in key or "example" in key for key in keys)
    ttls = [await redis_client.ttl(key) for key in keys]
    assert all(0 < ttl <= ratelimit.WINDOW_S for ttl in ttls)


# ----- without Redis: the audit log decides -----


async def test_without_redis_the_database_locks_after_five_failures(
    ada: UserPublic, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fail(None, ratelimit.MAX_FAILURES)

    with pytest.raises(SignInLocked) as raised:
        await _try(None, PASSWORD)
    assert raised.value.message == LOCKED_MESSAGE
    with pytest.raises(SignInLocked):
        await _try(None, PASSWORD, ip="192.0.2.99")

    monkeypatch.setattr(ratelimit, "LOCK_S", 1)
    await asyncio.sleep(1.2)
    await _try(None, PASSWORD)
    # Failures before the success no longer count.
    await _fail(None, ratelimit.MAX_FAILURES - 1)
    await _try(None, PASSWORD)


async def test_without_redis_an_unknown_email_locks_the_same_way(taskdeck: Path) -> None:
    await _fail(None, ratelimit.MAX_FAILURES, email="ghost@example.com")

    with pytest.raises(SignInLocked) as raised:
        await _try(None, PASSWORD, email="ghost@example.com")
    assert raised.value.message == LOCKED_MESSAGE


async def test_a_failing_redis_falls_back_to_the_database(ada: UserPublic) -> None:
    # Nothing listens on port 1: every Redis call fails at once (no retries).
    broken = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        await _fail(broken, ratelimit.MAX_FAILURES)
        with pytest.raises(SignInLocked):
            await _try(broken, PASSWORD)
    finally:
        await broken.aclose()


async def test_a_redis_that_hangs_is_given_up_on(
    ada: UserPublic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: each call gives up after
    REDIS_TIMEOUT_S and the database decides."""
    monkeypatch.setattr(ratelimit, "REDIS_TIMEOUT_S", 0.2)
    held: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(
        _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _fail(silent, ratelimit.MAX_FAILURES)
        with pytest.raises(SignInLocked):
            await _try(silent, PASSWORD)
        assert loop.time() - started < 10
    finally:
        await silent.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("use_redis", [True, False], ids=["redis", "database"])
async def test_wrong_current_passwords_lock_like_failed_sign_ins(
    ada: UserPublic, redis_client: aioredis.Redis, use_redis: bool
) -> None:
    """A stolen session cookie must not allow unlimited password guesses."""
    redis = redis_client if use_redis else None
    principal = Principal(
        user_id=ada.id, email=ada.email, display_name="Ada", role=ada.role, session_id=None
    )
    for _ in range(ratelimit.MAX_FAILURES):
        with pytest.raises(ValidationFailed):
            await change_own_password(
                redis=redis, principal=principal, current=WRONG, new="a brand new password", ip=IP
            )
    with pytest.raises(SignInLocked):
        await change_own_password(
            redis=redis, principal=principal, current=PASSWORD, new="a brand new password", ip=IP
        )
    # Locked out of sign-in too, and the password did not change.
    with pytest.raises(SignInLocked):
        await _try(redis, PASSWORD)
    with session_scope() as session:
        assert user_store.authenticate(session=session, email=EMAIL, password=PASSWORD)


async def test_tries_in_parallel_get_no_more_guesses(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    """Many sockets guessing at once: the password is checked MAX_FAILURES
    times in all, not once per request in flight."""
    results = await asyncio.gather(
        *(_try(redis_client, WRONG) for _ in range(40)), return_exceptions=True
    )
    wrong = [r for r in results if isinstance(r, InvalidCredentials)]
    locked = [r for r in results if isinstance(r, SignInLocked)]
    assert len(wrong) == ratelimit.MAX_FAILURES
    assert len(locked) == 40 - ratelimit.MAX_FAILURES
    with pytest.raises(SignInLocked):
        await _try(redis_client, PASSWORD)


async def test_the_window_slides_over_its_own_start(
    ada: UserPublic, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failures late in one window and early in the next still add up (a
    counter reset at a fixed time would forget the first ones)."""
    monkeypatch.setattr(ratelimit, "WINDOW_S", 3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await _fail(redis_client, 1)
    await asyncio.sleep(max(0.0, start + 2.4 - loop.time()))
    await _fail(redis_client, ratelimit.MAX_FAILURES - 2)  # 4 in the first 3 s
    await asyncio.sleep(max(0.0, start + 3.2 - loop.time()))
    await _fail(redis_client, 2)  # 2 after them: 5 within the last 3 s

    with pytest.raises(SignInLocked):
        await _try(redis_client, PASSWORD)


async def test_a_success_does_not_count_against_the_address(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    for _ in range(ratelimit.MAX_ADDRESS_FAILURES + 5):
        await _try(redis_client, PASSWORD)
    await _fail(redis_client, 1)
    await _try(redis_client, PASSWORD)


async def test_without_redis_many_failures_from_one_address_lock_it(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    for index in range(ratelimit.MAX_ADDRESS_FAILURES):
        await _fail(None, 1, email=f"guess{index % 10}@example.com")

    with pytest.raises(SignInLocked):
        await _try(None, PASSWORD)
    await _try(None, PASSWORD, ip="192.0.2.50")


async def test_a_refused_new_password_is_not_a_guess(
    ada: UserPublic, redis_client: aioredis.Redis
) -> None:
    principal = Principal(user_id=ada.id, email=ada.email, display_name="Ada", role=ada.role)
    for _ in range(ratelimit.MAX_FAILURES + 2):
        with pytest.raises(ValidationFailed) as raised:
            await change_own_password(
                redis=redis_client, principal=principal, current=PASSWORD, new="short", ip=IP
            )
        assert "current_password" not in raised.value.details["fields"]
    await _try(redis_client, PASSWORD)


@pytest.mark.parametrize("redis_up", [True, False])
async def test_a_password_typed_as_the_email_is_counted_but_never_stored(
    taskdeck: Path, redis_client: aioredis.Redis, redis_up: bool
) -> None:
    """People paste their password into the email field. Those tries count
    towards the limits like any other (with or without Redis), but the log
    keeps a digest, not the text."""
    typed = "My Secret Pass Phrase 9"
    redis = redis_client if redis_up else None
    await _fail(redis, ratelimit.MAX_FAILURES, email=typed)

    with pytest.raises(SignInLocked):
        await _try(redis, WRONG, email=typed)
    with get_engine().connect() as connection:
        dump = json.dumps(
            [dict(row) for row in connection.execute(text("SELECT * FROM audit_events")).mappings()],
            default=str,
        )
    assert typed.lower() not in dump.lower()
    assert audit.NOT_AN_EMAIL_PREFIX in dump
