"""The proactive refresher: each profile's renewal runs as its own task, so
one slow token endpoint delays only its own profile, and a profile whose
renewal still runs gets no second one. Real token servers on loopback, the
private Redis, the worker's loop over profiles in a real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.db import session_scope
from app.models.profiles import AuthKind, ProfileInput, ResolvedProfile
from app.services import profiles as profile_store
from app.services.oauth2 import TokenManager
from app.services.token_states import LiveTokenStateStore
from jobs.profiles import refresh_tokens_forever
from tests.integration.oauth_server import MemoryTokenStore, OAuthServer

pytestmark = pytest.mark.integration

SECRET = "s3cret-client-secret"


@pytest.fixture
def slow() -> Iterator[OAuthServer]:
    running = OAuthServer(client_secret=SECRET).start()
    running.token_delay_s = 6
    yield running
    running.stop()


@pytest.fixture
def fast() -> Iterator[OAuthServer]:
    running = OAuthServer(client_secret=SECRET, expires_in=2).start()
    yield running
    running.stop()


@pytest.fixture
def redis(taskdeck: Path, redis_client: Redis) -> Redis:
    return redis_client


def _auth(server: OAuthServer) -> dict[str, object]:
    return {
        "kind": AuthKind.OAUTH2_CLIENT_CREDENTIALS.value,
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": SECRET,
    }


def _resolved(server: OAuthServer, profile_id: int) -> ResolvedProfile:
    auth = _auth(server) | {"scopes": [], "audience": None, "client_auth": "header"}
    return ResolvedProfile(
        id=profile_id, name=f"p{profile_id}", base_url=server.url, headers={}, timeout_s=10,
        verify_tls=True, auth_kind=AuthKind.OAUTH2_CLIENT_CREDENTIALS, auth=auth,
    )


async def test_a_slow_endpoint_does_not_hold_up_the_others(
    redis: Redis, slow: OAuthServer, fast: OAuthServer
) -> None:
    tokens = TokenManager(redis=redis, store=MemoryTokenStore())
    stuck, quick = _resolved(slow, 1), _resolved(fast, 2)
    try:
        started = time.monotonic()
        assert sorted(await tokens.start_due_refreshes([stuck, quick])) == [1, 2]
        assert time.monotonic() - started < 1  # started, not awaited

        while await tokens.token_info(quick) is None:
            assert time.monotonic() - started < 3
            await asyncio.sleep(0.05)
        assert await tokens.token_info(stuck) is None  # still asking

        # Bounded: the slow profile's renewal still runs, so none is added.
        assert await tokens.start_due_refreshes([stuck, quick]) == []
        assert len(slow.seen("/token")) == 1
    finally:
        await tokens.cancel_background_refreshes(grace_s=0)


async def test_the_worker_loop_keeps_renewing_while_one_endpoint_hangs(
    redis: Redis, slow: OAuthServer, fast: OAuthServer
) -> None:
    """Tokens living 2 s are renewed every ~1.6 s even while the other
    profile's endpoint takes 6 s to answer."""
    with session_scope() as session:
        for name, server in (("slow", slow), ("fast", fast)):
            profile_store.create_profile(
                session=session,
                data=ProfileInput(name=name, base_url=server.url, timeout_s=10, auth=_auth(server)),
                actor=None,
            )
    store = LiveTokenStateStore(redis)
    ctx = {"tokens": TokenManager(redis=redis, store=store), "token_store": store}

    loop = asyncio.create_task(refresh_tokens_forever(ctx))
    started = time.monotonic()
    try:
        # At 0, ~1.6 and ~3.2 s; polled, not slept, for a loaded machine.
        while fast.token_requests < 3:
            assert time.monotonic() - started < 15, f"{fast.token_requests} renewals"
            await asyncio.sleep(0.1)
        # The slow endpoint (6 s to answer, tokens of 30 s) got one request
        # and held up nobody.
        assert len(slow.seen("/token")) == 1
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def _rotating(server: OAuthServer, profile_id: int, refresh_token: str) -> ResolvedProfile:
    auth = {
        "token_url": server.token_url, "client_id": server.client_id, "client_secret": SECRET,
        "refresh_token": refresh_token, "scopes": [], "client_auth": "header",
    }
    return ResolvedProfile(
        id=profile_id, name=f"p{profile_id}", base_url=server.url, headers={}, timeout_s=10,
        verify_tls=True, auth_kind=AuthKind.OAUTH2_REFRESH_TOKEN, auth=auth,
    )


@pytest.fixture
def rotating() -> Iterator[OAuthServer]:
    running = OAuthServer(client_secret=SECRET, rotate_refresh_tokens=True).start()
    running.refresh_tokens.add("rt-first-4242")
    yield running
    running.stop()


async def test_a_stopping_worker_lets_a_renewal_in_flight_keep_its_new_refresh_token(
    redis: Redis, rotating: OAuthServer
) -> None:
    """The server rotates (and revokes the token sent) as it answers; a
    worker stopping meanwhile must not lose the new one."""
    rotating.token_delay_s = 1.0
    store = MemoryTokenStore()
    tokens = TokenManager(redis=redis, store=store)
    profile = _rotating(rotating, 3, "rt-first-4242")
    assert await tokens.start_due_refreshes([profile]) == [3]
    await asyncio.sleep(0.3)  # asking

    await tokens.cancel_background_refreshes()

    [kept] = store.refresh_tokens[3]
    assert kept in rotating.refresh_tokens and "rt-first-4242" not in rotating.refresh_tokens
    # Another worker (a new manager, the profile as stored before) goes on with it.
    later = TokenManager(redis=redis, store=store)
    assert await later.refresh(profile, force=True)
    assert len(store.refresh_tokens[3]) == 2


class SlowSavingStore(MemoryTokenStore):
    """Saving a rotated refresh token takes a while (a busy database)."""

    def __init__(self) -> None:
        super().__init__()
        self.saving = asyncio.Event()

    async def store_refresh_token(
        self, profile_id: int, refresh_token: str, *, replaces_sha256: Collection[str] = ()
    ) -> None:
        self.saving.set()
        await asyncio.sleep(0.5)
        await super().store_refresh_token(profile_id, refresh_token)


async def test_a_renewal_cancelled_while_saving_the_new_refresh_token_still_saves_it(
    redis: Redis, rotating: OAuthServer
) -> None:
    store = SlowSavingStore()
    tokens = TokenManager(redis=redis, store=store)
    assert await tokens.start_due_refreshes([_rotating(rotating, 4, "rt-first-4242")]) == [4]
    await asyncio.wait_for(store.saving.wait(), 10)

    await tokens.cancel_background_refreshes(grace_s=0)  # cut off at once

    [kept] = store.refresh_tokens[4]
    assert kept in rotating.refresh_tokens
