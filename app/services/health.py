"""Health of the parts Taskdeck depends on: database, Redis and workers.

Overall status: `down` when the database is down (nothing works without it),
`degraded` when Redis or the workers are missing, `ok` otherwise.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from sqlalchemy import text

from app.db import get_engine

WORKER_KEY_PREFIX = "taskdeck:worker:"
CHECK_TIMEOUT_S = 3.0


class HealthRedis(Protocol):
    async def ping(self) -> Any: ...

    def scan_iter(self, match: str) -> Any: ...

    async def mget(self, keys: list[Any]) -> list[Any]: ...


def _ping_database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


async def check_database() -> dict[str, Any]:
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping_database), CHECK_TIMEOUT_S)
    except Exception as error:
        return {"status": "down", "error": type(error).__name__}
    return {"status": "ok"}


async def check_redis(redis: HealthRedis | None) -> dict[str, Any]:
    if redis is None:
        return {"status": "down", "error": "unreachable"}
    try:
        await asyncio.wait_for(redis.ping(), CHECK_TIMEOUT_S)
    except Exception as error:
        return {"status": "down", "error": type(error).__name__}
    return {"status": "ok"}


async def list_workers(redis: HealthRedis) -> list[dict[str, Any]]:
    """Workers whose heartbeat key has not expired."""
    keys = [key async for key in redis.scan_iter(match=WORKER_KEY_PREFIX + "*")]
    if not keys:
        return []
    values = await redis.mget(keys)
    return [json.loads(value) for value in values if value]


async def check_workers(redis: HealthRedis | None) -> dict[str, Any]:
    if redis is None:
        return {"status": "down", "count": 0, "error": "redis unreachable"}
    try:
        workers = await asyncio.wait_for(list_workers(redis), CHECK_TIMEOUT_S)
    except Exception as error:
        return {"status": "down", "count": 0, "error": type(error).__name__}
    if not workers:
        return {"status": "down", "count": 0, "error": "no workers running"}
    # Only the count: health needs no token, so it names no host or pid.
    return {"status": "ok", "count": len(workers)}


async def check_health(redis: HealthRedis | None) -> dict[str, Any]:
    database, redis_check, workers = await asyncio.gather(
        check_database(), check_redis(redis), check_workers(redis)
    )
    if database["status"] == "down":
        status = "down"
    elif redis_check["status"] == "down" or workers["status"] == "down":
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "checks": {"database": database, "redis": redis_check, "workers": workers},
    }
