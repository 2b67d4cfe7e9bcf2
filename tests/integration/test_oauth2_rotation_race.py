"""A rotated refresh token reaches the database by compare-and-set: a
refresh in flight while a user pastes a new refresh token must not replace
it. Real token server on loopback, the private Redis, a real database."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.db import session_scope
from app.models.profiles import AuthKind, ProfileInput, ResolvedProfile
from app.services import profiles as profile_store
from app.services.oauth2 import TokenManager
from app.services.token_states import LiveTokenStateStore
from tests.integration.oauth_server import OAuthServer

pytestmark = pytest.mark.integration

SECRET = "s3cret-client-secret"


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    running = OAuthServer(client_secret=SECRET, rotate_refresh_tokens=True).start()
    yield running
    running.stop()


@pytest.fixture
def redis(taskdeck: Path, redis_client: Redis) -> Redis:
    return redis_client


def _input(server: OAuthServer, refresh_token: str | None) -> ProfileInput:
    auth = {
        "kind": AuthKind.OAUTH2_REFRESH_TOKEN.value,
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": SECRET,
        "refresh_token": refresh_token,
        "client_auth": "body",
    }
    return ProfileInput(name="rotating", base_url=server.url, auth=auth)


def _resolve(profile_id: int) -> ResolvedProfile:
    with session_scope() as session:
        return profile_store.resolve_profile(session=session, profile_id=profile_id)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def test_a_refresh_in_flight_does_not_overwrite_a_pasted_refresh_token(
    redis: Redis, server: OAuthServer
) -> None:
    first = server.issue_refresh_token()
    with session_scope() as session:
        profile_id = profile_store.create_profile(
            session=session, data=_input(server, first), actor=None
        ).id
    tokens = TokenManager(redis=redis, store=LiveTokenStateStore(redis))
    server.token_delay_s = 0.5

    in_flight = asyncio.create_task(tokens.get_token(_resolve(profile_id)))
    while not server.seen("/token"):
        await asyncio.sleep(0.01)
    pasted = server.issue_refresh_token()
    with session_scope() as session:  # the user pastes a new one meanwhile
        profile_store.update_profile(
            session=session, profile_id=profile_id, data=_input(server, pasted), actor=None
        )
    await in_flight

    assert _resolve(profile_id).auth["refresh_token"] == pasted

    # The pasted token is used next, and its own rotation is kept.
    server.token_delay_s = 0
    await tokens.refresh(_resolve(profile_id), force=True)
    assert server.seen("/token")[-1].form["refresh_token"] == pasted
    assert _resolve(profile_id).auth["refresh_token"] not in (first, pasted)


def test_store_rotated_refresh_token_compares_before_it_sets(
    taskdeck: Path, server: OAuthServer
) -> None:
    with session_scope() as session:
        profile_id = profile_store.create_profile(
            session=session, data=_input(server, "rt-stored-0001"), actor=None
        ).id

    with session_scope() as session:
        kept = profile_store.store_rotated_refresh_token(
            session=session, profile_id=profile_id, refresh_token="rt-rotated-0002",
            replaces_sha256={_sha256("rt-some-other-token")},
        )
    assert kept is False
    assert _resolve(profile_id).auth["refresh_token"] == "rt-stored-0001"

    with session_scope() as session:
        kept = profile_store.store_rotated_refresh_token(
            session=session, profile_id=profile_id, refresh_token="rt-rotated-0002",
            replaces_sha256={_sha256("rt-stored-0001")},
        )
    assert kept is True
    assert _resolve(profile_id).auth["refresh_token"] == "rt-rotated-0002"
