""""Test connection" runs as a job on a worker (which holds the token cache
and the outbound client); the caller waits for its result."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from app.errors import QueueUnavailable, ServiceUnavailable

TEST_CONNECTION_JOB = "test_profile_connection"
# The outbound client retries and may wait for a token: leave it room.
TEST_TIMEOUT_S = 90.0
RESULT_POLL_S = 0.1


class JobLike(Protocol):
    async def result(self, timeout: float | None = None, *, poll_delay: float = 0.5) -> Any: ...


class ConnectionTestQueue(Protocol):
    async def enqueue_job(self, function: str, *args: Any) -> JobLike | None: ...


async def run_connection_test(
    queue: ConnectionTestQueue | None, *, profile_id: int, path: str
) -> dict[str, Any]:
    """`{"ok", "status_code", "latency_ms", "excerpt", "error"}` from a worker."""
    if queue is None:
        raise QueueUnavailable("Redis is unavailable: connection tests run on a worker")
    job = await queue.enqueue_job(TEST_CONNECTION_JOB, profile_id, path)
    if job is None:  # arq answers None only for a duplicate job id; we set none
        raise QueueUnavailable("The connection test could not be queued")
    try:
        result: dict[str, Any] = await job.result(timeout=TEST_TIMEOUT_S, poll_delay=RESULT_POLL_S)
    except (TimeoutError, asyncio.TimeoutError):
        raise ServiceUnavailable(
            "No worker answered in time: is `taskdeck worker` running?",
            details={"timeout_s": TEST_TIMEOUT_S},
        ) from None
    return result
