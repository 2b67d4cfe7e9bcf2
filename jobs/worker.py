"""The arq worker: runs queued runs and tells the world it is alive.

`taskdeck worker` (or `taskdeck run`) starts it. On start it applies pending
migrations; while it lives it refreshes a heartbeat key in Redis that the
health check and the dashboard read.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from typing import Any

import structlog
from arq import func
from arq.worker import Worker

from app.db import session_scope
from app.kinds import get_kind
from app.logging import configure_logging
from app.migrate import upgrade_to_head
from app.models.common import iso_utc, utc_now
from app.models.runs import Run, RunError, RunStatus
from app.queue import redis_settings
from app.redaction import redact_url
from app.services import runs as run_store
from app.services.connection_tests import TEST_CONNECTION_JOB
from app.services.dispatch import EXECUTE_RUN_JOB, run_event
from app.services.events import publish_quietly
from app.services.health import WORKER_KEY_PREFIX, heartbeat_interval_s
from app.services.oauth2 import TokenManager
from app.services.outbound import close_http_client
from app.services.token_states import LiveTokenStateStore
from app.settings import get_settings
from jobs.profiles import refresh_tokens_forever, test_profile_connection
from jobs.reporter import RunReporter

log = structlog.get_logger(__name__)

# arq's own timeout is a backstop; per-task timeouts arrive with the engine.
JOB_TIMEOUT_S = 24 * 3600


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def _heartbeat(ctx: dict[str, Any]) -> None:
    """Refresh this worker's key every interval. The key outlives a beat by
    the TTL; health judges freshness by `ttl_s` and `interval_s` (see
    app.services.health), so a killed worker stops counting after two beats."""
    redis = ctx["redis"]
    ttl_s = get_settings().worker_heartbeat_ttl_s
    interval_s = heartbeat_interval_s(ttl_s)
    key = WORKER_KEY_PREFIX + ctx["worker_id"]
    while True:
        value = json.dumps(
            {
                "id": ctx["worker_id"],
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": ctx["started_at"],
                "seen_at": iso_utc(utc_now()),
                "ttl_s": ttl_s,
                "interval_s": interval_s,
            }
        )
        try:
            await redis.set(key, value, ex=ttl_s)
        except Exception as error:  # Redis blips: keep beating, it will come back.
            log.warning("heartbeat_failed", error=type(error).__name__)
        await asyncio.sleep(interval_s)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    await asyncio.to_thread(upgrade_to_head)
    ctx["worker_id"] = new_worker_id()
    ctx["started_at"] = iso_utc(utc_now())
    ctx["heartbeat"] = asyncio.create_task(_heartbeat(ctx))
    ctx["token_store"] = LiveTokenStateStore(ctx["redis"])
    ctx["tokens"] = TokenManager(redis=ctx["redis"], store=ctx["token_store"])
    ctx["token_refresher"] = asyncio.create_task(refresh_tokens_forever(ctx))
    log.info("worker_started", worker_id=ctx["worker_id"])


async def shutdown(ctx: dict[str, Any]) -> None:
    tasks = [task for name in ("heartbeat", "token_refresher") if (task := ctx.get(name))]
    for task in tasks:
        task.cancel()
    # Awaited before the HTTP client closes: the refresher lets renewals in
    # flight finish (a rotated refresh token must not be lost).
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_http_client()
    if "worker_id" in ctx:
        try:
            await ctx["redis"].delete(WORKER_KEY_PREFIX + ctx["worker_id"])
        except Exception:
            pass  # The key expires by itself.
    log.info("worker_stopped", worker_id=ctx.get("worker_id"))


def _describe(error: BaseException) -> RunError:
    return RunError(type=type(error).__name__, message=redact_url(str(error)) or repr(error))


async def _announce(redis: Any, run_id: int, event_type: str) -> None:
    def read() -> Any:
        with session_scope() as session:
            run = run_store.get_run(session=session, run_id=run_id)
            return run, run_store.count_runs_by_status(session=session)

    run, counts = await asyncio.to_thread(read)
    await publish_quietly(redis, run_event(run, event_type, counts))


async def execute_run(ctx: dict[str, Any], run_id: int) -> str:
    """Run one attempt of a run; returns the status it ended in."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    redis = ctx["redis"]

    def start() -> tuple[int | None, str, dict[str, Any]]:
        with session_scope() as session:
            attempt = run_store.start_attempt(
                session=session, run_id=run_id, worker_id=ctx["worker_id"]
            )
            run = session.get(Run, run_id)
            assert run is not None  # start_attempt raised RunNotFound otherwise
            return attempt, run.kind, dict(run.params)

    attempt, kind_name, raw_params = await asyncio.to_thread(start)
    if attempt is None:
        log.info("run_skipped", reason="not queued")
        return "skipped"
    await _announce(redis, run_id, "status")

    reporter = RunReporter(redis=redis, run_id=run_id, attempt=attempt)
    status, result, error = RunStatus.SUCCEEDED, None, None
    try:
        spec = get_kind(kind_name)
        params = spec.parse_params(raw_params)
        result = await spec.function(reporter, params)
    except asyncio.CancelledError:
        # The worker is stopping (or arq's backstop timeout fired). A user's
        # cancel has already moved the run out of `running`, and then
        # finish_run below changes nothing.
        status = RunStatus.FAILED
        error = RunError(type="WorkerStopped", message="The worker stopped during the run")
        raise
    except Exception as exc:
        status, error = RunStatus.FAILED, _describe(exc)
        log.warning("run_failed", error_type=error.type)
    finally:
        await _finish(redis, reporter, run_id, status, result, error)
    return status.value


async def _finish(
    redis: Any,
    reporter: RunReporter,
    run_id: int,
    status: RunStatus,
    result: dict[str, Any] | None,
    error: RunError | None,
) -> None:
    """Store the outcome whatever else fails: the last progress and the
    announcement are best effort, the final status is not."""

    def finish() -> bool:
        with session_scope() as session:
            return run_store.finish_run(
                session=session, run_id=run_id, status=status, result=result, error=error
            )

    try:
        await reporter.flush()
    except Exception as flush_error:
        log.warning("run_progress_not_flushed", error=type(flush_error).__name__)
    try:
        await asyncio.to_thread(finish)
    except Exception:
        log.exception("run_outcome_not_stored", status=status.value)
        return
    try:
        await _announce(redis, run_id, "status")
    except Exception as announce_error:
        log.warning("run_outcome_not_announced", error=type(announce_error).__name__)
    log.info("run_finished", status=status.value)


class WorkerSettings:
    functions = [
        func(execute_run, name=EXECUTE_RUN_JOB, timeout=JOB_TIMEOUT_S),
        func(test_profile_connection, name=TEST_CONNECTION_JOB, timeout=120),
    ]
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 50
    keep_result = 3600
    # Runs are retried by Taskdeck's own policy (attempt rows), not by arq.
    max_tries = 1
    health_check_interval = 60


def create_worker(**overrides: Any) -> Worker:
    """A Worker for the configured Redis; tests pass burst=True and friends."""
    settings = get_settings()
    options: dict[str, Any] = {
        "redis_settings": redis_settings(),
        "max_jobs": settings.worker_max_jobs,
    }
    options.update(overrides)
    return Worker(
        functions=WorkerSettings.functions,
        on_startup=WorkerSettings.on_startup,
        on_shutdown=WorkerSettings.on_shutdown,
        keep_result=WorkerSettings.keep_result,
        max_tries=WorkerSettings.max_tries,
        health_check_interval=WorkerSettings.health_check_interval,
        **options,
    )


def run_worker() -> None:
    """Run a worker until SIGINT/SIGTERM (blocking)."""
    create_worker().run()
