"""The OAuth2 token life cycle (app.services.oauth2) against a real token
server on loopback and the private Redis: grants and client
authentication, the encrypted cache, refresh before expiry, refresh-token
rotation, 401 recovery, one refresh across concurrent callers and
processes, and clear failures that cache nothing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from app.crypto import fernet_for
from app.errors import TokenRefreshFailed
from app.models.profiles import AuthKind, ResolvedProfile, TokenStatus
from app.services import outbound
from app.services.oauth2 import (
    FAILURE_KEY_PREFIX,
    FERNET_PURPOSE,
    MAX_REASON_CHARS,
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
def redis(settings: None, redis_client: Redis) -> Redis:
    return redis_client


class RotationStore(MemoryTokenStore):
    """MemoryTokenStore with the compare-and-set the TokenStateStore
    protocol asks for: records each rotated token and what it may replace."""

    def __init__(self) -> None:
        super().__init__()
        self.replaces: dict[int, list[frozenset[str]]] = {}

    async def store_refresh_token(
        self, profile_id: int, refresh_token: str, *, replaces_sha256: Collection[str] = ()
    ) -> None:
        await super().store_refresh_token(profile_id, refresh_token)
        self.replaces.setdefault(profile_id, []).append(frozenset(replaces_sha256))


@pytest.fixture
def store() -> RotationStore:
    return RotationStore()


@pytest.fixture
def tokens(redis: Redis, store: RotationStore) -> TokenManager:
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
    server: OAuthServer, tokens: TokenManager, store: RotationStore
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
    profile = client_credentials(server)
    token = await tokens.get_token(profile)

    key = await tokens.cache_key(profile)
    assert key.startswith(TOKEN_KEY_PREFIX + "1:")
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
        await redis.set(await tokens.cache_key(profile), encrypted, ex=30)

    await cache("at-young", 23)
    assert await tokens.get_token(profile) == "at-young"

    await cache("at-old", 25)
    renewed = await tokens.get_token(profile)

    assert renewed not in ("at-old", "at-young")
    assert server.token_requests == 1


async def test_refresh_due_renews_only_what_is_due_and_survives_failures(
    server: OAuthServer, tokens: TokenManager, store: RotationStore
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
    info = await tokens.token_info(fine)
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
    store: RotationStore,
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
    server: OAuthServer, redis_url: str, redis: Redis, store: RotationStore
) -> None:
    server.token_delay_s = 0.3
    profile = client_credentials(server)
    other_redis = Redis.from_url(redis_url)
    try:
        first = TokenManager(redis=redis, store=store)
        second = TokenManager(redis=other_redis, store=RotationStore())
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
    server: OAuthServer, tokens: TokenManager, store: RotationStore, redis: Redis
) -> None:
    with pytest.raises(TokenRefreshFailed) as caught:
        await tokens.get_token(client_credentials(server, secret="wrong-secret-value"))

    assert "invalid_client: Client authentication failed" in caught.value.message
    assert caught.value.details["reason"] == "invalid_client: Client authentication failed"
    assert caught.value.http_status == 502
    assert "wrong-secret-value" not in repr(caught.value.details) + caught.value.message
    assert store.statuses(1) == [TokenStatus.REFRESHING, TokenStatus.FAILED]
    assert store.last(1)[3] == "invalid_client: Client authentication failed"
    assert await redis.keys(TOKEN_KEY_PREFIX + "*") == []


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
    store: RotationStore,
    redis: Redis,
    failure: str,
    expected: str,
) -> None:
    server.failure = failure

    with pytest.raises(TokenRefreshFailed) as caught:
        await tokens.get_token(client_credentials(server))

    assert caught.value.details["reason"] == expected
    assert store.last(1)[1:] == (TokenStatus.FAILED, None, expected)
    assert await redis.keys(TOKEN_KEY_PREFIX + "*") == []


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
    key = await tokens.cache_key(profile)
    assert await redis.exists(key, REFRESH_KEY_PREFIX + "5") == 2

    await tokens.forget(5)

    assert await redis.exists(key, REFRESH_KEY_PREFIX + "5") == 0
    assert await redis.keys(TOKEN_KEY_PREFIX + "5:*") == []


# ----- no secret in an error text, whatever the server echoes -----

ECHOED_SECRET = 'S3cr+t/"Va\\lue-é-9876'


class EchoingTokenServer(OAuthServer):
    """A token endpoint that refuses every request with an error_description
    echoing what it was sent, as `echo(headers, form)` renders it."""

    def __init__(self, echo: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.echo = echo

    def token_response(
        self, headers: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        self.token_requests += 1
        body = {"error": "invalid_request", "error_description": self.echo(headers, form)}
        return 400, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _leaks(text: str, client_id: str) -> list[str]:
    """Fragments of ECHOED_SECRET (in any form it was sent in) found in `text`."""
    credential = base64.b64encode(f"{client_id}:{ECHOED_SECRET}".encode()).decode()
    secret_only = -(-len(f"{client_id}:") * 8 // 6)  # base64 made of secret bits only
    fragments = [
        ECHOED_SECRET[:4],
        quote_plus(ECHOED_SECRET)[:7],
        json.dumps(ECHOED_SECRET)[1:8],
        credential[secret_only : secret_only + 8],
        "9876",
    ]
    return [fragment for fragment in fragments if fragment in text]


# "invalid_request: " is 17 characters: the raw echo puts the secret across the 300 cut.
@pytest.mark.parametrize(
    ("client_auth", "echo"),
    [
        ("body", lambda headers, form: "x" * 277 + form["client_secret"]),
        ("body", lambda headers, form: "got " + urlencode(form)),
        ("body", lambda headers, form: "got " + json.dumps(form)),
        ("header", lambda headers, form: "got " + headers["authorization"]),
    ],
    ids=["raw-across-the-cut", "form-body", "json-of-form", "basic-header"],
)
async def test_token_error_text_masks_every_echoed_form_of_the_secret(
    redis: Redis, store: RotationStore, client_auth: str, echo: Any
) -> None:
    server = EchoingTokenServer(echo, client_secret=ECHOED_SECRET).start()
    try:
        tokens = TokenManager(redis=redis, store=store)
        profile = client_credentials(server, client_auth=client_auth, secret=ECHOED_SECRET)
        with capture_logs() as logs, pytest.raises(TokenRefreshFailed) as caught:
            await tokens.get_token(profile)
    finally:
        server.stop()

    failure = await redis.get(FAILURE_KEY_PREFIX + "1")
    assert failure is not None
    seen = [
        caught.value.message,
        repr(caught.value.details),
        str(store.last(1)[3]),
        failure.decode(),
        repr(logs),
    ]
    reason = caught.value.details["reason"]
    assert reason.startswith("invalid_request: ") and "[reda" in reason
    assert len(reason) <= MAX_REASON_CHARS
    for text in seen:
        assert _leaks(text, server.client_id) == []


async def test_token_error_text_masks_a_rotated_refresh_token_it_echoes(
    redis: Redis, store: RotationStore
) -> None:
    server = EchoingTokenServer(lambda headers, form: "got " + urlencode(form)).start()
    refresh_token = "rt+" + ECHOED_SECRET
    try:
        tokens = TokenManager(redis=redis, store=store)
        with pytest.raises(TokenRefreshFailed) as caught:
            await tokens.get_token(refresh_token_profile(server, refresh_token))
    finally:
        server.stop()

    assert "got grant_type=refresh_token&refresh_token=[redacted]" in caught.value.message
    assert _leaks(caught.value.message + str(store.last(5)[3]), server.client_id) == []


# ----- a failed early refresh does not fail the calls -----


async def _cache(
    tokens: TokenManager, redis: Redis, profile: ResolvedProfile, token: str, *, age_s: float,
    lifetime_s: float,
) -> None:
    now = time.time()
    body = {"access_token": token, "obtained_at": now - age_s, "expires_at": now - age_s + lifetime_s}
    encrypted = fernet_for(FERNET_PURPOSE).encrypt(json.dumps(body).encode())
    await redis.set(await tokens.cache_key(profile), encrypted, ex=int(lifetime_s))


async def test_a_failed_early_refresh_keeps_serving_the_still_valid_token(
    server: OAuthServer, tokens: TokenManager, store: RotationStore, redis: Redis
) -> None:
    """Past the refresh point (85 of 100 s) but valid for 15 s more: the
    failure shows as FAILED, the calls go on with the valid token, and the
    endpoint is not asked again at every call."""
    profile = client_credentials(server)
    valid = server.issue_access_token(expires_in=60)
    await _cache(tokens, redis, profile, valid, age_s=85, lifetime_s=100)
    server.failure = "invalid_client"

    assert await tokens.get_token(profile) == valid
    response = await outbound.send(profile, "GET", "/api/ping", tokens=tokens)

    assert response.status_code == 200
    assert store.last(1)[1] == TokenStatus.FAILED
    assert store.last(1)[3] == "invalid_client: Client authentication failed"
    assert server.token_requests == 1
    assert await tokens.refresh_due([profile]) == []  # failed just now: left alone
    assert server.token_requests == 1


async def test_a_failed_refresh_of_a_token_about_to_expire_still_fails(
    server: OAuthServer, tokens: TokenManager, redis: Redis
) -> None:
    """Within the expiry margin the old token is no longer offered."""
    profile = client_credentials(server)
    await _cache(tokens, redis, profile, "at-about-to-expire", age_s=98, lifetime_s=100)
    server.failure = "invalid_client"

    with pytest.raises(TokenRefreshFailed):
        await tokens.get_token(profile)


# ----- a rotated refresh token is kept even from an unusable answer -----


async def test_a_rotated_refresh_token_is_kept_when_the_rest_of_the_answer_is_bad(
    server: OAuthServer, tokens: TokenManager, store: RotationStore, redis: Redis
) -> None:
    """The server revoked the token we sent and answered without expires_in:
    the new refresh token is all that is left of the grant."""
    server.rotate_refresh_tokens = True
    sent = server.issue_refresh_token()
    profile = refresh_token_profile(server, sent)
    server.failure = "no_expires_in"

    with pytest.raises(TokenRefreshFailed, match="no expires_in"):
        await tokens.get_token(profile)

    [rotated] = store.refresh_tokens[5]
    assert store.replaces[5] == [frozenset({hashlib.sha256(sent.encode()).hexdigest()})]
    server.failure = None
    assert (await tokens.get_token(profile)).startswith("at-")
    assert server.seen("/token")[1].form["refresh_token"] == rotated


# ----- a cached token only for what it was obtained for -----


async def test_a_token_fetched_for_a_deleted_profile_never_reaches_a_new_one_with_its_id(
    server: OAuthServer, tokens: TokenManager
) -> None:
    """SQLite reuses the id of a deleted profile; the refresh in flight at
    the delete writes its token after the cache was cleared."""
    other = OAuthServer(client_id="other-client", client_secret="other-secret").start()
    try:
        server.token_delay_s = 0.5
        in_flight = asyncio.create_task(tokens.get_token(client_credentials(server, profile_id=9)))
        while not server.seen("/token"):
            await asyncio.sleep(0.01)
        await tokens.forget(9)  # the profile is deleted...
        old_token = await in_flight  # ...and its refresh lands afterwards
        recreated = dataclasses.replace(
            client_credentials(other, profile_id=9, secret="other-secret"), name="new"
        )

        new_token = await tokens.get_token(recreated)
    finally:
        other.stop()

    assert new_token != old_token
    assert other.token_requests == 1


@pytest.mark.parametrize(
    "change",
    [
        {"scopes": ["admin"]},
        {"audience": "https://other.example"},
        {"token_url": "TOKEN_URL_WITH_QUERY"},
    ],
    ids=["scopes", "audience", "token_url"],
)
async def test_a_changed_profile_does_not_use_the_old_token(
    server: OAuthServer, tokens: TokenManager, change: dict[str, Any]
) -> None:
    profile = client_credentials(server, scopes=["read"])
    old_token = await tokens.get_token(profile)
    if change.get("token_url"):
        change = {"token_url": server.token_url + "?tenant=2"}

    changed = dataclasses.replace(profile, auth={**profile.auth, **change})

    assert await tokens.get_token(changed) != old_token
    assert server.token_requests == 2


async def test_rotation_keeps_the_cache_key_and_a_pasted_refresh_token_changes_it(
    server: OAuthServer, tokens: TokenManager, store: RotationStore, redis: Redis
) -> None:
    server.rotate_refresh_tokens = True
    first = server.issue_refresh_token()
    token = await tokens.get_token(refresh_token_profile(server, first))
    [second] = store.refresh_tokens[5]

    # The profile as read from the database after the rotation: same grant.
    assert await tokens.get_token(refresh_token_profile(server, second)) == token
    assert server.token_requests == 1

    pasted = server.issue_refresh_token()  # another grant, maybe another account
    assert await tokens.get_token(refresh_token_profile(server, pasted)) != token
    assert server.seen("/token")[-1].form["refresh_token"] == pasted

    keys = [key.decode() for key in await redis.keys("taskdeck:oauth2:*")]
    for secret in (SECRET, first, second, pasted):
        for shown in (secret, hashlib.sha256(secret.encode()).hexdigest()[:16]):
            assert not [key for key in keys if shown in key]
