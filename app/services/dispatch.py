"""Starting runs: the row is committed first, then the job is enqueued with
job id = run id, then the change is announced. If the enqueue fails the run
stays `queued` in the database, which is the outbox a reconciler drains."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog

from app.db import session_scope
from app.models.runs import RunLogPublic, RunPublic, RunTrigger
from app.services import runs as run_store
from app.services.events import Event, RedisLike, publish_quietly, run_topic

EXECUTE_RUN_JOB = "execute_run"

log = structlog.get_logger(__name__)


class JobQueue(RedisLike, Protocol):
    async def enqueue_job(self, function: str, *args: Any, _job_id: str | None = None) -> Any: ...


def job_id_for(run_id: int) -> str:
    return f"run-{run_id}"


def run_event(run: RunPublic, event_type: str, counts: dict[str, int] | None = None) -> Event:
    """A run's new state; `counts` (runs per status), counted once by the
    writer, saves every watching view a query of its own."""
    data: dict[str, object] = {"run": run.model_dump(mode="json")}
    if counts is not None:
        data["counts"] = counts
    return Event(topic=run_topic(run.id), type=event_type, id=str(run.id), data=data)


def progress_event(run_id: int, percent: float, message: str) -> Event:
    return Event(
        topic=run_topic(run_id),
        type="progress",
        id=str(run_id),
        data={"progress": {"percent": percent, "message": message}},
    )


def log_event(run_id: int, line: RunLogPublic) -> Event:
    return Event(
        topic=run_topic(run_id),
        type="log",
        id=str(run_id),
        data={"line": line.model_dump(mode="json")},
    )


def count_runs() -> dict[str, int]:
    with session_scope() as session:
        return run_store.count_runs_by_status(session=session)


async def enqueue_run(queue: JobQueue | None, run_id: int) -> bool:
    """Put the run on the queue; False (run stays queued) if Redis is down."""
    if queue is None:
        log.warning("run_not_enqueued", run_id=run_id, reason="redis unavailable")
        return False
    try:
        await queue.enqueue_job(EXECUTE_RUN_JOB, run_id, _job_id=job_id_for(run_id))
    except Exception as error:
        log.warning("run_not_enqueued", run_id=run_id, reason=type(error).__name__)
        return False
    return True


async def launch_run(
    *,
    queue: JobQueue | None,
    kind: str,
    params: dict[str, Any],
    trigger: RunTrigger = RunTrigger.MANUAL,
    task_id: int | None = None,
) -> RunPublic:
    """Create a run, enqueue it and announce it; returns the queued run."""

    def create() -> RunPublic:
        with session_scope() as session:
            return run_store.create_run(
                session=session, kind=kind, params=params, trigger=trigger, task_id=task_id
            )

    run = await asyncio.to_thread(create)
    await enqueue_run(queue, run.id)
    await publish_quietly(queue, run_event(run, "created", await asyncio.to_thread(count_runs)))
    log.info("run_launched", run_id=run.id, kind=kind, trigger=trigger.value)
    return run
