"""Waiting for a "Test connection" job: complete, failed, gone, too slow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from app.errors import QueueUnavailable, ServiceUnavailable
from app.services.connection_tests import run_connection_test, wait_for_job


@dataclass
class Result:
    success: bool
    result: Any


class ScriptedJob:
    """Reports the statuses given, one per poll, then the last one forever."""

    def __init__(self, statuses: list[str], result: Result | None = None) -> None:
        self.statuses = statuses
        self.result = result
        self.polls = 0

    async def status(self) -> str:
        self.polls += 1
        return self.statuses[min(self.polls, len(self.statuses)) - 1]

    async def result_info(self) -> Result | None:
        return self.result


class Queue:
    def __init__(self, job: ScriptedJob | None) -> None:
        self.job = job
        self.enqueued: list[tuple[str, tuple[Any, ...]]] = []

    async def enqueue_job(self, function: str, *args: Any) -> ScriptedJob | None:
        self.enqueued.append((function, args))
        return self.job


async def test_waits_through_queued_and_in_progress_for_the_result() -> None:
    job = ScriptedJob(["queued", "in_progress", "complete"], Result(True, {"ok": True}))
    assert await wait_for_job(job, timeout_s=5, poll_s=0) == {"ok": True}
    assert job.polls == 3


async def test_a_job_that_raised_raises_the_same_error() -> None:
    job = ScriptedJob(["complete"], Result(False, ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        await wait_for_job(job, timeout_s=5, poll_s=0)


async def test_a_job_gone_without_a_result_is_a_clear_error() -> None:
    with pytest.raises(ServiceUnavailable, match="without a result"):
        await wait_for_job(ScriptedJob(["queued", "not_found"]), timeout_s=5, poll_s=0)


async def test_a_job_nobody_runs_times_out() -> None:
    with pytest.raises(TimeoutError):
        await wait_for_job(ScriptedJob(["queued"]), timeout_s=0.05, poll_s=0.01)


async def test_run_connection_test_enqueues_and_answers_the_result() -> None:
    queue = Queue(ScriptedJob(["complete"], Result(True, {"ok": True, "status_code": 200})))
    result = await run_connection_test(queue, profile_id=7, path="/ping")
    assert result == {"ok": True, "status_code": 200}
    assert queue.enqueued == [("test_profile_connection", (7, "/ping"))]


async def test_run_connection_test_without_a_queue_or_a_job_is_refused() -> None:
    with pytest.raises(QueueUnavailable):
        await run_connection_test(None, profile_id=7, path="/")
    with pytest.raises(QueueUnavailable):
        await run_connection_test(Queue(None), profile_id=7, path="/")


async def test_run_connection_test_without_a_worker_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.services.connection_tests.TEST_TIMEOUT_S", 0.05)
    with pytest.raises(ServiceUnavailable, match="No worker answered"):
        await run_connection_test(Queue(ScriptedJob(["queued"])), profile_id=7, path="/")
