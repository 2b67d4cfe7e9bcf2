"""The web process's event subscriber against a real Redis that goes away
and comes back: it says so, resubscribes by itself and delivers again."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from app.embedded_redis import plan_embedded_redis, wait_for_redis
from app.services.events import Event, publish
from state import live
from state.live import LiveHub

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_subscriber_survives_a_redis_restart(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_embedded_redis(tmp_path / "redis")
    server = subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL)
    wait_for_redis(plan.url)
    monkeypatch.setenv("TASKDECK_REDIS_URL", plan.url)
    from tests.conftest import _clear_caches

    _clear_caches()
    monkeypatch.setattr(live, "RESUBSCRIBE_MAX_S", 1.0)
    hub = LiveHub()
    delivered: list[Event] = []
    monkeypatch.setattr(hub, "dispatch", delivered.append)
    statuses: list[bool] = []
    original = hub._set_connected

    async def record(connected: bool) -> None:
        statuses.append(connected)
        await original(connected)

    monkeypatch.setattr(hub, "_set_connected", record)
    task = asyncio.create_task(hub.run())
    try:
        await _until(lambda: hub.connected)
        async with aioredis.Redis.from_url(plan.url) as client:
            await publish(client, Event(topic="run:1", type="status", id="1", data={"n": 1}))
        await _until(lambda: len(delivered) == 1)
        assert delivered[0].version == 1 and delivered[0].data == {"n": 1}

        server.terminate()
        server.wait(timeout=10)
        await _until(lambda: not hub.connected)

        server = subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL)  # same port, password
        wait_for_redis(plan.url)
        await _until(lambda: hub.connected)
        async with aioredis.Redis.from_url(plan.url) as client:
            await publish(client, Event(topic="run:1", type="status", id="1", data={"n": 2}))
        await _until(lambda: len(delivered) == 2)
        assert delivered[1].data == {"n": 2}
        assert statuses[:3] == [True, False, True]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.terminate()
        server.wait(timeout=10)
        _clear_caches()
