"""The refresh lock against a token endpoint that drips its answer (a byte
at a time, each within httpx's per-operation timeout): the fetch as a whole
ends before the lock expires, and callers waiting on it wait as long as the
lock may last, then share its failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.errors import TokenRefreshFailed
from app.models.profiles import AuthKind, ResolvedProfile
from app.services import oauth2
from app.services.oauth2 import LOCK_KEY_PREFIX, TokenManager
from app.settings import get_settings
from tests.integration.oauth_server import MemoryTokenStore

pytestmark = pytest.mark.integration

DRIP_INTERVAL_S = 0.1
TIMEOUT_S = 0.5  # per httpx operation: each drip arrives well within it


class DrippingTokenEndpoint:
    """A loopback HTTP server whose answer never ends: headers announcing a
    large body, then one byte every DRIP_INTERVAL_S."""

    def __init__(self) -> None:
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> DrippingTokenEndpoint:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return self

    @property
    def token_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/token"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )
            await reader.readexactly(length)
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            while True:
                await writer.drain()
                await asyncio.sleep(DRIP_INTERVAL_S)
                writer.write(b" ")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
def settings(isolated_settings: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKDECK_REDIS_URL", redis_url)
    get_settings.cache_clear()


@pytest.fixture
def redis(settings: None, redis_client: Redis) -> Redis:
    return redis_client


@pytest.fixture
async def endpoint() -> AsyncIterator[DrippingTokenEndpoint]:
    running = await DrippingTokenEndpoint().start()
    yield running
    await running.stop()


@pytest.fixture
def short_lock(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """Lock TTL 3 × (0.5 + 0.5) + 1 = 4 s, so the fetch may take 3 s."""
    monkeypatch.setattr(oauth2, "TOKEN_MAX_RETRY_AFTER_S", 0.5)
    monkeypatch.setattr(oauth2, "LOCK_MARGIN_S", 1.0)
    yield 4.0


def _profile(endpoint: DrippingTokenEndpoint) -> ResolvedProfile:
    return ResolvedProfile(
        id=1, name="drip", base_url="http://127.0.0.1:9", headers={}, timeout_s=TIMEOUT_S,
        verify_tls=True, auth_kind=AuthKind.OAUTH2_CLIENT_CREDENTIALS,
        auth={"token_url": endpoint.token_url, "client_id": "c", "client_secret": "s3cret-1",
              "scopes": [], "audience": None, "client_auth": "header"},
    )


async def test_a_dripping_token_endpoint_is_cut_before_the_lock_expires(
    redis: Redis, endpoint: DrippingTokenEndpoint, short_lock: float
) -> None:
    tokens = TokenManager(redis=redis, store=MemoryTokenStore(), lock_ttl_s=1)
    started = time.monotonic()

    with pytest.raises(TokenRefreshFailed, match="no complete answer within 3 s"):
        await asyncio.wait_for(tokens.get_token(_profile(endpoint)), timeout=10)

    assert time.monotonic() - started < short_lock  # ended while the lock was still ours
    assert endpoint.requests == 1
    assert await redis.exists(LOCK_KEY_PREFIX + "1") == 0  # released


async def test_waiters_wait_as_long_as_the_lock_and_share_its_failure(
    redis: Redis, endpoint: DrippingTokenEndpoint, short_lock: float
) -> None:
    """A waiter giving up after 1 s would fail while the refresh it waits
    for may still succeed; it waits for the holder and reports its reason."""
    tokens = TokenManager(redis=redis, store=MemoryTokenStore(), lock_ttl_s=1, wait_timeout_s=1)
    profile = _profile(endpoint)

    results = await asyncio.wait_for(
        asyncio.gather(*(tokens.get_token(profile) for _ in range(3)), return_exceptions=True),
        timeout=15,
    )

    assert all(isinstance(result, TokenRefreshFailed) for result in results)
    reasons = {result.details["reason"] for result in results}  # type: ignore[union-attr]
    assert len(reasons) == 1 and "no complete answer within 3 s" in reasons.pop()
    assert endpoint.requests == 1
