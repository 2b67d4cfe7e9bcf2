"""Integration fixtures: a real Redis (a private redis-server, never the
machine's own on 6379), a real SQLite file and real arq workers in burst mode."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from argon2 import PasswordHasher

from app.embedded_redis import plan_embedded_redis, wait_for_redis
from app.migrate import upgrade_to_head
from app.queue import close_queue, get_queue
from app.services import outbound, passwords


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id with small parameters, so that the suite stays quick
    (the default parameters are covered by tests/unit/test_passwords.py)."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    plan = plan_embedded_redis(tmp_path_factory.mktemp("redis"))
    process = subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL)
    try:
        wait_for_redis(plan.url)
        yield plan.url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    return redis_server


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the private Redis. The shared outbound HTTP
    client is closed after it too: it belongs to this test's event loop."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
    await outbound.close_http_client()


@pytest.fixture
def taskdeck(isolated_settings: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with the private Redis and a migrated SQLite database."""
    monkeypatch.setenv("TASKDECK_REDIS_URL", redis_url)
    from tests.conftest import _clear_caches

    _clear_caches()
    upgrade_to_head()
    return isolated_settings


@pytest.fixture
async def queue(taskdeck: Path) -> AsyncIterator[object]:
    pool = await get_queue()
    yield pool
    await close_queue()


@pytest.fixture(scope="session")
def reflex_app() -> object:
    """One Reflex app for the tests that run handlers through Reflex's event
    processor (its page lookups need one; Reflex allows one per process)."""
    import reflex as rx

    return rx.App()
