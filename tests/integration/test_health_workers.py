"""`GET /api/v1/health` against real workers: an arq worker in this process,
and a real `taskdeck worker` process killed with SIGKILL, which cannot delete
its heartbeat key on the way out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from app.api.main import API_PREFIX, create_api
from app.services.health import WORKER_KEY_PREFIX
from app.settings import get_settings
from jobs.worker import create_worker

pytestmark = pytest.mark.integration

TASKDECK = Path(sys.executable).with_name("taskdeck")
WORKER_START_TIMEOUT_S = 60.0


@pytest.fixture
async def client(queue: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API mounted under /api/v1 as app/app.py mounts it, served in-process."""
    app = Starlette(routes=[Mount(API_PREFIX, app=create_api())])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        yield client


async def _workers_check(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(f"{API_PREFIX}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    check: dict[str, Any] = body["checks"]["workers"]
    assert body["status"] == ("ok" if check["status"] == "ok" else "degraded")
    return check


async def _wait_for(
    client: httpx.AsyncClient, done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        check = await _workers_check(client)
        if done(check) or time.monotonic() > deadline:
            return check
        await asyncio.sleep(0.1)


async def test_health_reports_a_running_worker_and_none_once_it_stopped(
    client: httpx.AsyncClient,
) -> None:
    before = await _workers_check(client)
    assert before == {"status": "down", "count": 0, "error": "no workers running"}

    worker = create_worker(poll_delay=0.05, handle_signals=False)
    running = asyncio.create_task(worker.main())
    try:
        during = await _wait_for(client, lambda check: check["status"] == "ok", timeout_s=20)
        assert during == {"status": "ok", "count": 1}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()  # runs on_shutdown, which deletes the heartbeat

    after = await _workers_check(client)
    assert after == {"status": "down", "count": 0, "error": "no workers running"}


async def test_a_killed_worker_stops_counting_before_its_key_expires(
    client: httpx.AsyncClient, queue: Any, redis_url: str, taskdeck: Path
) -> None:
    """`kill -9` leaves the heartbeat key behind until its TTL (15 s) ends;
    health must stop counting the worker after a few missed beats anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKDECK_")}
    env.update(
        TASKDECK_DATA_DIR=str(taskdeck),
        TASKDECK_REDIS_URL=redis_url,
        TASKDECK_LOG_LEVEL="WARNING",
        TASKDECK_LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [str(TASKDECK), "worker"], env=env, cwd=taskdeck.parent,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        up = await _wait_for(
            client, lambda check: check["status"] == "ok" or process.poll() is not None,
            timeout_s=WORKER_START_TIMEOUT_S,
        )
        assert up == {"status": "ok", "count": 1}, process.stderr and process.stderr.read()

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = time.monotonic()
        down = await _wait_for(client, lambda check: check["status"] == "down", timeout_s=20)
        took_s = time.monotonic() - killed_at
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()

    assert down == {"status": "down", "count": 0, "error": "no workers running"}
    ttl_s = get_settings().worker_heartbeat_ttl_s
    assert took_s < ttl_s
    keys = [key async for key in queue.scan_iter(match=WORKER_KEY_PREFIX + "*")]
    assert len(keys) == 1, "the key is still there: health judged the beat's age"
