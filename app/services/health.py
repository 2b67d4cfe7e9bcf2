"""Health of the parts Taskdeck depends on: database, Redis and workers.

Overall status: `down` when the database is down (nothing works without it),
`degraded` when Redis or the workers are missing, `ok` otherwise.

Workers: each one refreshes a heartbeat key every HEARTBEAT_INTERVAL_S, with
an expiry of TASKDECK_WORKER_HEARTBEAT_TTL_S. A worker killed outright
(`kill -9`, a lost host) cannot delete its key, so health also reads how old
the last beat is, on the Redis clock (the key's remaining TTL, so clocks of
other hosts do not matter), and counts no worker whose beat is older than
STALE_AFTER_BEATS intervals: about 4 s instead of the whole TTL.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from sqlalchemy import text

from app.db import get_engine

WORKER_KEY_PREFIX = "taskdeck:worker:"
CHECK_TIMEOUT_S = 3.0
HEARTBEAT_INTERVAL_S = 2.0
STALE_AFTER_BEATS = 3  # two missed beats: a stall of a few seconds is not a death


class HealthRedis(Protocol):
    async def ping(self) -> Any: ...

    def scan_iter(self, match: str) -> Any: ...

    def pipeline(self, transaction: bool = ...) -> Any: ...


def heartbeat_interval_s(ttl_s: float) -> float:
    """How often a worker beats: every HEARTBEAT_INTERVAL_S, or three times
    per TTL when the TTL is shorter than three intervals."""
    return min(HEARTBEAT_INTERVAL_S, ttl_s / 3)


def is_fresh(beat: dict[str, Any], remaining_ms: int) -> bool:
    """Whether a heartbeat whose key expires in `remaining_ms` is recent.

    The age is the key's TTL minus what remains of it. A beat that does not
    carry `ttl_s` and `interval_s` (a worker of an older version) is trusted
    until its key expires.
    """
    ttl_s, interval_s = beat.get("ttl_s"), beat.get("interval_s")
    if not isinstance(ttl_s, int | float) or not isinstance(interval_s, int | float):
        return True
    if remaining_ms < 0:  # -1: no expiry (set by hand); -2: gone since the scan
        return remaining_ms == -1
    age_s = ttl_s - remaining_ms / 1000
    return age_s <= STALE_AFTER_BEATS * interval_s


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
    """Workers whose last heartbeat is recent (see `is_fresh`)."""
    keys = [key async for key in redis.scan_iter(match=WORKER_KEY_PREFIX + "*")]
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    beats = [
        (json.loads(value), remaining_ms)
        for value, remaining_ms in zip(replies[::2], replies[1::2], strict=True)
        if value
    ]
    return [beat for beat, remaining_ms in beats if is_fresh(beat, remaining_ms)]


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
