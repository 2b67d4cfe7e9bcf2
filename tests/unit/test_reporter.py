"""RunReporter: progress is throttled on the way to Redis and the database,
the newest value always arrives in the end, log lines are stored and sent.

Redis is a small recording fake (what is under test is the throttling, not
Redis); the database is the real SQLite file of `isolated_settings`, migrated,
so the progress and log writes are the real ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.db import session_scope
from app.migrate import upgrade_to_head
from app.models.runs import RunPublic
from app.services import runs as run_store
from app.services.events import CHANNEL_PREFIX, Event, decode, run_topic
from jobs.reporter import PUBLISH_INTERVAL_S, RunReporter


class RecordingRedis:
    """Records every published event as the web side would decode it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.channels: list[str] = []

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> int:
        _key, channel, body, _ttl = keys_and_args
        version = len(self.events) + 1
        self.channels.append(channel)
        self.events.append(decode(f"{version}|{body}"))
        return version

    def of_type(self, event_type: str) -> list[Event]:
        return [event for event in self.events if event.type == event_type]


class BrokenRedis:
    """Redis that is down: every command fails."""

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> int:
        raise ConnectionError("redis is down")


@pytest.fixture
def running_run(isolated_settings: Path) -> tuple[int, int]:
    """A demo run in the real SQLite, started: (run id, attempt number)."""
    upgrade_to_head()
    with session_scope() as session:
        run = run_store.create_run(session=session, kind="demo", params={})
    with session_scope() as session:
        attempt = run_store.start_attempt(session=session, run_id=run.id, worker_id="w-test")
    assert attempt == 1
    return run.id, attempt


def _stored(run_id: int) -> RunPublic:
    with session_scope() as session:
        return run_store.get_run(session=session, run_id=run_id)


def _percents(redis: RecordingRedis) -> list[float]:
    return [e.data["progress"]["percent"] for e in redis.of_type("progress")]


async def test_burst_of_progress_is_throttled_and_flush_sends_the_last(
    running_run: tuple[int, int],
) -> None:
    """100 updates in a tight loop must not become 100 messages or 100 writes."""
    run_id, attempt = running_run
    redis = RecordingRedis()
    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)

    for i in range(1, 101):
        await reporter.progress(i * 0.9, f"step {i}")

    sent_during_burst = len(redis.of_type("progress"))
    assert 1 <= sent_during_burst <= 5
    assert _stored(run_id).progress.percent < 90.0, "the database is not written per update"

    await reporter.flush()

    percents = _percents(redis)
    assert len(percents) <= 6
    assert percents[-1] == pytest.approx(90.0)
    assert redis.of_type("progress")[-1].data["progress"]["message"] == "step 100"
    assert percents == sorted(percents), "progress never goes backwards"
    assert set(redis.channels) == {CHANNEL_PREFIX + run_topic(run_id)}
    stored = _stored(run_id)
    assert stored.progress.percent == pytest.approx(90.0)
    assert stored.progress.message == "step 100"


async def test_throttled_value_is_sent_later_without_flush(
    running_run: tuple[int, int],
) -> None:
    """The newest value wins and is always sent, even if the kind then goes quiet."""
    run_id, attempt = running_run
    redis = RecordingRedis()
    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)

    for percent in (10.0, 20.0, 30.0):
        await reporter.progress(percent)
    # Generous: the deferred send is due after PUBLISH_INTERVAL_S.
    for _ in range(100):
        if _percents(redis)[-1:] == [30.0]:
            break
        await asyncio.sleep(PUBLISH_INTERVAL_S)

    percents = _percents(redis)
    assert percents[-1] == 30.0
    assert percents == sorted(percents), "an outdated value is never sent after a newer one"
    await reporter.flush()
    assert _percents(redis).count(30.0) == 1, "flush does not repeat what was sent"


async def test_flush_without_new_progress_sends_nothing(running_run: tuple[int, int]) -> None:
    run_id, attempt = running_run
    redis = RecordingRedis()
    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)

    await reporter.flush()

    assert redis.events == []


async def test_percent_is_clamped_to_0_100(running_run: tuple[int, int]) -> None:
    run_id, attempt = running_run
    redis = RecordingRedis()
    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)

    await reporter.progress(250.0)
    await reporter.flush()

    assert _percents(redis)[-1] == 100.0
    assert _stored(run_id).progress.percent == 100.0


async def test_progress_reaches_the_database_when_redis_is_down(
    running_run: tuple[int, int],
) -> None:
    """Live updates are best effort; the database record must not depend on them."""
    run_id, attempt = running_run
    reporter = RunReporter(redis=BrokenRedis(), run_id=run_id, attempt=attempt)

    await reporter.progress(40.0, "first")
    await reporter.progress(55.0, "second")
    await reporter.flush()

    stored = _stored(run_id)
    assert stored.progress.percent == 55.0
    assert stored.progress.message == "second"


async def test_log_line_is_stored_and_published(running_run: tuple[int, int]) -> None:
    run_id, attempt = running_run
    redis = RecordingRedis()
    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)

    await reporter.log("fetched 20 rows", level="warning")
    await reporter.log("done")

    with session_scope() as session:
        lines = run_store.list_run_logs(session=session, run_id=run_id)
    assert [(line.message, line.level, line.attempt_number) for line in lines] == [
        ("fetched 20 rows", "warning", attempt),
        ("done", "info", attempt),
    ]
    published = redis.of_type("log")
    assert [e.data["line"]["message"] for e in published] == ["fetched 20 rows", "done"]
    assert all(e.id == str(run_id) and e.topic == run_topic(run_id) for e in published)
    assert published[0].data["line"]["level"] == "warning"
