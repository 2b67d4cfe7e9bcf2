"""A demo run through every layer below the UI: database row, arq queue, a
real worker, progress and log events on Redis, final status in the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.db import session_scope
from app.models.runs import RunStatus, RunTrigger
from app.services import runs as run_store
from app.services.dispatch import launch_run
from app.services.events import CHANNEL_PATTERN, Event, decode
from jobs.worker import create_worker

pytestmark = pytest.mark.integration


async def _collect_events(url: str, into: list[Event], ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url)
    async with client.pubsub() as pubsub:
        await pubsub.psubscribe(CHANNEL_PATTERN)
        ready.set()
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                into.append(decode(message["data"]))
    await client.aclose()


async def _run_with_events(
    queue: Any, redis_url: str, params: dict[str, Any]
) -> tuple[int, list[Event]]:
    events: list[Event] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect_events(redis_url, events, ready))
    await ready.wait()
    run = await launch_run(queue=queue, kind="demo", params=params, trigger=RunTrigger.MANUAL)
    worker = create_worker(burst=True, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    await asyncio.sleep(0.2)  # let the last events arrive
    listener.cancel()
    return run.id, [e for e in events if e.id == str(run.id)]


def _read(run_id: int) -> Any:
    with session_scope() as session:
        return run_store.get_run(session=session, run_id=run_id), run_store.list_run_logs(
            session=session, run_id=run_id
        )


async def test_demo_run_succeeds_with_live_progress(queue: Any, redis_url: str) -> None:
    run_id, events = await _run_with_events(queue, redis_url, {"steps": 5, "step_delay_s": 0.06})

    run, logs = _read(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.progress.percent == 100.0
    assert run.result == {"steps": 5}
    assert [a.outcome.value for a in run.attempts] == ["succeeded"]
    assert run.started_at is not None and run.finished_at is not None
    assert [line.message for line in logs] == [f"Step {i} of 5 done" for i in range(1, 6)]

    types = [e.type for e in events]
    assert types[0] == "created" and types[-1] == "status"
    assert events[-1].data["run"]["status"] == "succeeded"
    percents = [e.data["progress"]["percent"] for e in events if e.type == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert len(percents) >= 3, "progress must be published while the run goes"
    # One version counter per topic, growing by one per event, in order.
    assert [e.version for e in events] == list(range(1, len(events) + 1))


async def test_demo_run_told_to_fail_ends_failed_with_error(queue: Any, redis_url: str) -> None:
    run_id, events = await _run_with_events(
        queue, redis_url, {"steps": 4, "step_delay_s": 0.01, "fail_at_step": 3}
    )

    run, logs = _read(run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.type == "DemoFailure"
    assert "step 3" in run.error.message
    assert run.attempts[0].outcome.value == "failed"
    assert logs[-1].level == "error"
    assert events[-1].data["run"]["status"] == "failed"


async def test_run_is_kept_queued_when_redis_is_down(taskdeck: Any) -> None:
    run = await launch_run(queue=None, kind="demo", params={}, trigger=RunTrigger.MANUAL)
    stored, _ = _read(run.id)
    assert stored.status is RunStatus.QUEUED


async def test_bad_params_are_refused_and_store_nothing(taskdeck: Any) -> None:
    from app.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        await launch_run(queue=None, kind="demo", params={"steps": 0}, trigger=RunTrigger.MANUAL)
    assert "steps" in caught.value.details["fields"]
    with session_scope() as session:
        assert run_store.list_recent_runs(session=session) == []
