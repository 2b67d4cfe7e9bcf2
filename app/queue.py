"""The connection to Redis that carries the job queue and the event bus.

One arq pool per process (arq's ArqRedis is a redis-py client, so the same
pool enqueues jobs, publishes events and reads heartbeats).
"""

from __future__ import annotations

import asyncio

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from app.errors import QueueUnavailable
from app.settings import get_settings

REDIS_CONNECT_TIMEOUT_S = 2
REDIS_COMMAND_TIMEOUT_S = 5

_pool: ArqRedis | None = None
_pool_loop: asyncio.AbstractEventLoop | None = None


def redis_settings(redis_url: str | None = None) -> RedisSettings:
    url = redis_url or get_settings().redis_url
    if not url:
        raise QueueUnavailable(
            "TASKDECK_REDIS_URL is not set: `taskdeck web` and `taskdeck worker` need a "
            "shared Redis; `taskdeck run` starts a private one by itself"
        )
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = REDIS_CONNECT_TIMEOUT_S
    # Fail fast: callers treat Redis as optional and degrade.
    settings.conn_retries = 0
    return settings


async def get_queue() -> ArqRedis:
    """The process-wide pool, created on first use in the running loop."""
    global _pool, _pool_loop
    loop = asyncio.get_running_loop()
    if _pool is not None and _pool_loop is loop:
        return _pool
    try:
        pool = await create_pool(redis_settings())
    except QueueUnavailable:
        raise
    except Exception as error:
        raise QueueUnavailable(
            "Redis is unavailable", details={"reason": type(error).__name__}
        ) from error
    _pool, _pool_loop = pool, loop
    return pool


async def get_queue_or_none() -> ArqRedis | None:
    """The pool, or None while Redis is unreachable (callers degrade)."""
    try:
        return await get_queue()
    except QueueUnavailable:
        return None


async def close_queue() -> None:
    global _pool, _pool_loop
    if _pool is not None:
        await _pool.aclose()
    _pool, _pool_loop = None, None
