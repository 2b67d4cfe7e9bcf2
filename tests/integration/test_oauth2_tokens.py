"""The OAuth2 token life cycle (app.services.oauth2) against a real token
server on loopback and the private Redis: grants and client
authentication, the encrypted cache, refresh before expiry, refresh-token
rotation, 401 recovery, one refresh across concurrent callers and
processes, and clear failures that cache nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.crypto import fernet_for
from app.errors import TokenRefreshFailed
from app.models.profiles import AuthKind, ResolvedProfile, TokenStatus
from app.services import outbound
from app.services.oauth2 import (
    FERNET_PURPOSE,
    REFRESH_KEY_PREFIX,
    TOKEN_KEY_PREFIX,
    TokenManager,
    token_state,
)
from app.settings import get_settings
from tests.integration.oauth_server import MemoryTokenStore, OAuthServer

pytestmark = pytest.mark.integration

SECRET = "s3cret-client-secret"


@pytest.fixture
def settings(isolated_settings: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKDECK_REDIS_URL", redis_url)
    get_settings.cache_clear()


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    running = OAuthServer(client_secret=SECRET).start()
    yield running
    running.stop()


@pytest.fixture
async def redis(settings: None, redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
    await outbound.close_http_client()


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def tokens(redis: Redis, store: MemoryTokenStore) -> TokenManager:
    return TokenManager(redis=redis, store=store)


def client_credentials(
    server: OAuthServer,
    *,
    profile_id: int = 1,
    client_auth: str = "header",
    secret: str = SECRET,
    scopes: list[str] | None = None,
    audience: str | None = None,
) -> ResolvedProfile:
    return ResolvedProfile(
        id=profile_id,
        name=f"api-{profile_id}",
        base_url=server.url,
        headers={},
        timeout_s=5,
        verify_tls=True,
        auth_kind=AuthKind.OAUTH2_CLIENT_CREDENTIALS,
        auth={
            "token_url": server.token_url,
            "client_id": server.client_id,
            "client_secret": secret,
            "scopes": scopes or [],
            "audience": audience,
            "client_auth": client_auth,
        },
    )


def refresh_token_profile(
    server: OAuthServer, refresh_token: str, *, profile_id: int = 5
) -> ResolvedProfile:
    return ResolvedProfile(
        id=profile_id,
        name="rotating",
        base_url=server.url,
        headers={},
        timeout_s=5,
        verify_tls=True,
        auth_kind=AuthKind.OAUTH2_REFRESH_TOKEN,
        auth={
            "token_url": server.token_url,
            "client_id": server.client_id,
            "client_secret": SECRET,
            "refresh_token": refresh_token,
            "scopes": ["offline"],
            "client_auth": "body",
        },
    )


# ----- grants and client authentication -----


async def test_client_credentials_with_header_auth_scopes_and_audience(
    server: OAuthServer, tokens: TokenManager, store: MemoryTokenStore
) -> None:
    server.client_auth = "header"
    profile = client_credentials(server, scopes=["read", "write"], audience="https://api.example")

    before = datetime.now(UTC)
    token = await tokens.get_token(profile)

    assert token.startswith("at-")
    [request] = server.seen("/token")
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["accept"] == "application/json"
    assert request.form == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "audience": "https://api.example",
    }
    assert store.statuses(1) == [TokenStatus.REFRESHING, TokenStatus.VALID]
    _, _, expires_at, error = store.last(1)
    assert error is None
    assert expires_at is not None
    assert before + timedelta(seconds=25) < expires_at < before + timedelta(seconds=35)


async def test_client_credentials_with_body_auth(
    server: OAuthServer, tokens: TokenManager
) -> None:
    server.client_auth = "body"

    await tokens.get_token(client_credentials(server, client_auth="body"))

    [request] = server.seen("/token")
    assert "authorization" not in request.headers
    assert request.form == {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": SECRET,
    }


async def test_cached_token_is_reused(server: OAuthServer, tokens: TokenManager) -> None:
    profile = client_credentials(server)

    seen = {await tokens.get_token(profile) for _ in range(20)}

    assert len(seen) == 1
    assert server.token_requests == 1


async def test_token_is_encrypted_in_redis_with_a_ttl_until_expiry(
    server: OAuthServer, tokens: TokenManager, redis: Redis
) -> None:
    token = await tokens.get_token(client_credentials(server))

    key = TOKEN_KEY_PREFIX + "1"
    raw = await redis.get(key)
    assert raw is not None
    assert token.encode() not in raw
    assert b"access_token" not in raw
    assert 0 < await redis.pttl(key) <= 30_000
    cached = json.loads(fernet_for(FERNET_PURPOSE).decrypt(raw))
    assert cached["access_token"] == token
    assert cached["expires_at"] - cached["obtained_at"] == pytest.approx(30)


# ----- refresh before expiry -----


async def test_short_lived_tokens_are_renewed_before_they_expire(
    server: OAuthServer, tokens: TokenManager
) -> None:
    """expires_in 2 s: renewed at ~1.6 s, so over 6 s of calls the API
    never sees an expired token."""
    server.expires_in = 2
    profile = client_credentials(server)
    statuses = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        response = await outbound.send(profile, "GET", "/api/ping", tokens=tokens)
        statuses.append(response.status_code)
        await asyncio.sleep(0.05)

    assert set(statuses) == {200}
    assert server.unauthorized == 0
    assert 3 <= server.token_requests <= 6


async def test_a_30_s_token_is_renewed_at_24_s(
    server: OAuthServer, tokens: TokenManager, redis: Redis
) -> None:
    profile = client_credentials(server)
    now = time.time()

    async def cache(token: str, age_s: float) -> None:
        body = {"access_token": token, "obtained_at": now - age_s, "expires_at": now - age_s + 30}
        encrypted = fernet_for(FERNET_PURPOSE).encrypt(json.dumps(body).encode())
        await redis.set(TOKEN_KEY_PREFIX + "1", encrypted, ex=30)

    await cache("at-young", 23)
    assert await tokens.get_token(profile) == "at-young"

    await cache("at-old", 25)
    renewed = await tokens.get_token(profile)

    assert renewed not in ("at-old", "at-young")
    assert server.token_requests == 1


async def test_refresh_due_renews_only_what_is_due_and_survives_failures(
    server: OAuthServer, tokens: TokenManager, store: MemoryTokenStore
) -> None:
    server.expires_in = 2
    fine = client_credentials(server, profile_id=1)
    broken = client_credentials(server, profile_id=2, secret="wrong")
    plain = ResolvedProfile(
        id=3, name="plain", base_url=server.url, headers={}, timeout_s=5,
        verify_tls=True, auth_kind=AuthKind.NONE, auth={},
    )
    first = await tokens.get_token(fine)

    assert await tokens.refresh_due([fine, plain]) == []
    await asyncio.sleep(1.7)
    assert await tokens.refresh_due([broken, fine, plain]) == [1]

    assert await tokens.get_token(fine) != first
    assert store.last(2)[1] == TokenStatus.FAILED
    requests = server.token_requests
    assert await tokens.refresh_due([broken]) == []  # failed just now: left alone
    assert server.token_requests == requests
    info = await tokens.token_info(1)
    assert info is not None and info.status == TokenStatus.VALID


def test_token_state_from_expiry() -> None:
    obtained = datetime(2026, 1, 1, tzinfo=UTC)
    expires = obtained + timedelta(seconds=100)

    def at(seconds: float) -> TokenStatus:
        return token_state(
            obtained_at=obtained, expires_at=expires, now=obtained + timedelta(seconds=seconds)
        )

    assert at(10) == TokenStatus.VALID
    assert at(79) == TokenStatus.VALID
    assert at(81) == TokenStatus.EXPIRING
    assert at(120) == TokenStatus.EXPIRING


# ----- refresh-token rotation -----


async def test_rotated_refresh_tokens_are_stored_and_used_next(
    server: OAuthServer,
    tokens: TokenManager,
    store: MemoryTokenStore,
    redis: Redis,
    redis_url: str,
) -> None:
    server.rotate_refresh_tokens = True
    first_rt = server.issue_refresh_token()
    profile = refresh_token_profile(server, first_rt)

    await tokens.get_token(profile)
    [second_rt] = store.refresh_tokens[5]
    assert server.seen("/token")[0].form["refresh_token"] == first_rt
    assert server.seen("/token")[0].form["scope"] == "offline"

    await tokens.refresh(profile, force=True)  # same (stale) profile object
    assert server.seen("/token")[1].form["refresh_token"] == second_rt
    third_rt = store.refresh_tokens[5][1]
    assert third_rt not in (first_rt, second_rt)

    raw = await redis.get(REFRESH_KEY_PREFIX + "5")
    assert raw is not None and third_rt.encode() not in raw

    # The server no longer takes the first one.
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            server.token_url,
            data={"grant_type": "refresh_token", "refresh_token": first_rt},
            auth=(server.client_id, SECRET),
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"

    # Another process holding the old profile still uses the newest token.
    other_redis = Redis.from_url(redis_url)
    try:
        other = TokenManager(redis=other_redis, store=store)
        await other.refresh(profile, force=True)
    finally:
        await other_redis.aclose()
    assert server.seen("/token")[-1].form["refresh_token"] == third_rt  # [2] was ours


async def test_a_refresh_token_the_user_replaced_wins_over_the_rotated_one(
    server: OAuthServer, tokens: TokenManager
) -> None:
    server.rotate_refresh_tokens = True
    await tokens.get_token(refresh_token_profile(server, server.issue_refresh_token()))

    pasted = server.issue_refresh_token()
    await tokens.refresh(refresh_token_profile(server, pasted), force=True)

    assert server.seen("/token")[1].form["refresh_token"] == pasted


# ----- 401 -----


async def test_401_refreshes_once_and_repeats(
    server: OAuthServer, tokens: TokenManager
) -> None:
    profile = client_credentials(server)
    assert (await outbound.send(profile, "GET", "/api/ping", tokens=tokens)).status_code == 200

    server.revoke_all()
    response = await outbound.send(profile, "GET", "/api/ping", tokens=tokens)

    assert response.status_code == 200
    assert server.unauthorized == 1
    assert server.token_requests == 2

    server.revoke_all()
    responses = await asyncio.gather(
        *(outbound.send(profile, "GET", "/api/ping", tokens=tokens) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    assert server.token_requests == 3  # ten 401s, one refresh


# ----- one refresh at a time -----


async def test_concurrent_callers_cause_one_token_request(
    server: OAuthServer, tokens: TokenManager
) -> None:
    server.token_delay_s = 0.3
    profile = client_credentials(server)

    got = await asyncio.gather(*(tokens.get_token(profile) for _ in range(50)))

    assert len(set(got)) == 1
    assert server.token_requests == 1


async def test_two_workers_cause_one_token_request(
    server: OAuthServer, redis_url: str, redis: Redis, store: MemoryTokenStore
) -> None:
    server.token_delay_s = 0.3
    profile = client_credentials(server)
    other_redis = Redis.from_url(redis_url)
    try:
        first = TokenManager(redis=redis, store=store)
        second = TokenManager(redis=other_redis, store=MemoryTokenStore())
        got = await asyncio.gather(
            *(worker.get_token(profile) for _ in range(25) for worker in (first, second))
        )
    finally:
        await other_redis.aclose()

    assert len(set(got)) == 1
    assert server.token_requests == 1


async def test_waiters_share_a_failed_refresh_instead_of_repeating_it(
    server: OAuthServer, tokens: TokenManager
) -> None:
    server.token_delay_s = 0.2
    profile = client_credentials(server, secret="wrong")

    results = await asyncio.gather(
        *(tokens.get_token(profile) for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(result, TokenRefreshFailed) for result in results)
    assert server.token_requests == 1


# ----- failures -----


async def test_invalid_client_is_recorded_with_the_server_text(
    server: OAuthServer, tokens: TokenManager, store: MemoryTokenStore, redis: Redis
) -> None:
    with pytest.raises(TokenRefreshFailed) as caught:
        await tokens.get_token(client_credentials(server, secret="wrong-secret-value"))

    assert "invalid_client: Client authentication failed" in caught.value.message
    assert caught.value.details["reason"] == "invalid_client: Client authentication failed"
    assert caught.value.http_status == 502
    assert "wrong-secret-value" not in repr(caught.value.details) + caught.value.message
    assert store.statuses(1) == [TokenStatus.REFRESHING, TokenStatus.FAILED]
    assert store.last(1)[3] == "invalid_client: Client authentication failed"
    assert await redis.get(TOKEN_KEY_PREFIX + "1") is None


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("html", "token endpoint returned text/html instead of JSON (status 200)"),
        ("invalid_json", "token endpoint returned invalid JSON (status 200)"),
        ("no_expires_in", "token endpoint returned no expires_in"),
    ],
)
async def test_unusable_token_responses_fail_clearly_and_cache_nothing(
    server: OAuthServer,
    tokens: TokenManager,
    store: MemoryTokenStore,
    redis: Redis,
    failure: str,
    expected: str,
) -> None:
    server.failure = failure

    with pytest.raises(TokenRefreshFailed) as caught:
        await tokens.get_token(client_credentials(server))

    assert caught.value.details["reason"] == expected
    assert store.last(1)[1:] == (TokenStatus.FAILED, None, expected)
    assert await redis.get(TOKEN_KEY_PREFIX + "1") is None


@pytest.mark.parametrize("expires_in", ["soon", 0, -5])
async def test_bad_expires_in_is_refused(
    server: OAuthServer, tokens: TokenManager, expires_in: Any
) -> None:
    server.expires_in = expires_in

    with pytest.raises(TokenRefreshFailed, match="expires_in"):
        await tokens.get_token(client_credentials(server))


async def test_transient_500s_are_retried(server: OAuthServer, tokens: TokenManager) -> None:
    server.fail_next_500 = 2

    token = await tokens.get_token(client_credentials(server))

    assert token.startswith("at-")
    assert server.token_requests == 3


async def test_test_connection_reports_a_token_failure(
    server: OAuthServer, tokens: TokenManager
) -> None:
    result = await outbound.test_connection(
        client_credentials(server, secret="wrong"), tokens=tokens, path="/api/ping"
    )

    assert result["ok"] is False
    assert result["status_code"] is None
    assert "invalid_client" in result["error"]


async def test_forget_drops_the_cached_token_and_refresh_token(
    server: OAuthServer, tokens: TokenManager, redis: Redis
) -> None:
    server.rotate_refresh_tokens = True
    profile = refresh_token_profile(server, server.issue_refresh_token())
    await tokens.get_token(profile)
    assert await redis.exists(TOKEN_KEY_PREFIX + "5", REFRESH_KEY_PREFIX + "5") == 2

    await tokens.forget(5)

    assert await redis.exists(TOKEN_KEY_PREFIX + "5", REFRESH_KEY_PREFIX + "5") == 0
