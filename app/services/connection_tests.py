""""Test connection" runs as a job on a worker (which holds the token cache
and the outbound client); the caller waits for its result."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from app.errors import QueueUnavailable, ServiceUnavailable

TEST_CONNECTION_JOB = "test_profile_connection"
# The outbound client retries and may wait for a token: leave it room.
TEST_TIMEOUT_S = 90.0
RESULT_POLL_S = 0.1


class JobResultLike(Protocol):
    success: bool
    result: Any


class JobLike(Protocol):
    async def status(self) -> str: ...

    async def result_info(self) -> JobResultLike | None: ...


class ConnectionTestQueue(Protocol):
    async def enqueue_job(self, function: str, *args: Any) -> JobLike | None: ...


async def wait_for_job(job: JobLike, *, timeout_s: float, poll_s: float = RESULT_POLL_S) -> Any:
    """The job's result (its exception raised), TimeoutError after `timeout_s`.

    Not arq 0.25's `Job.result()`: it reads the result and then the queue in
    two separate calls, so a job finishing between them is reported as
    "not in queue" although it succeeded. `status()` reads all three keys
    in one transaction."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await job.status()  # arq's JobStatus is a str enum
        if status == "complete":
            info = await job.result_info()
            if info is not None:
                if info.success:
                    return info.result
                raise info.result
        elif status == "not_found":
            raise ServiceUnavailable("The job is gone from the queue without a result")
        if time.monotonic() >= deadline:
            raise TimeoutError
        await asyncio.sleep(poll_s)


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
        result: dict[str, Any] = await wait_for_job(job, timeout_s=TEST_TIMEOUT_S)
    except TimeoutError:
        raise ServiceUnavailable(
            "No worker answered in time: is `taskdeck worker` running?",
            details={"timeout_s": TEST_TIMEOUT_S},
        ) from None
    return result
