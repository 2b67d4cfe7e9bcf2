"""What a running kind reports, on its way to the views and the database.

Progress is published at most every PUBLISH_INTERVAL_S per run (the newest
value wins, and the last one is always sent) and written to the database at
most every PERSIST_INTERVAL_S, so live speed does not cost database load.
Log lines are stored and published one by one.
"""

from __future__ import annotations

import asyncio
import time

from app.db import session_scope
from app.services import runs as run_store
from app.services.dispatch import log_event, progress_event
from app.services.events import RedisLike, publish_quietly

PUBLISH_INTERVAL_S = 0.05
PERSIST_INTERVAL_S = 1.0


class RunReporter:
    """The RunContext handed to a kind by the worker."""

    def __init__(self, *, redis: RedisLike | None, run_id: int, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self._redis = redis
        self._latest: tuple[float, str] | None = None
        self._published: tuple[float, str] | None = None
        self._persisted: tuple[float, str] | None = None
        self._last_publish_s = 0.0
        self._last_persist_s = 0.0
        self._flush_task: asyncio.Task[None] | None = None

    async def progress(self, percent: float, message: str = "") -> None:
        self._latest = (max(0.0, min(100.0, float(percent))), message)
        now = time.monotonic()
        if now - self._last_publish_s >= PUBLISH_INTERVAL_S:
            await self._publish_latest()
        elif self._flush_task is None:
            delay = PUBLISH_INTERVAL_S - (now - self._last_publish_s)
            self._flush_task = asyncio.create_task(self._publish_later(delay))
        if now - self._last_persist_s >= PERSIST_INTERVAL_S:
            await self._persist_latest()

    async def log(self, message: str, level: str = "info") -> None:
        def store() -> object:
            with session_scope() as session:
                return run_store.add_log(
                    session=session,
                    run_id=self.run_id,
                    attempt_number=self.attempt,
                    message=message,
                    level=level,
                )

        line = await asyncio.to_thread(store)
        await publish_quietly(self._redis, log_event(self.run_id, line))  # type: ignore[arg-type]

    async def flush(self) -> None:
        """Send and store the last progress; called before a status change."""
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        await self._publish_latest()
        await self._persist_latest()

    async def _publish_later(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._flush_task = None
        await self._publish_latest()

    async def _publish_latest(self) -> None:
        if self._latest is None or self._latest == self._published:
            return
        self._published = self._latest
        self._last_publish_s = time.monotonic()
        percent, message = self._latest
        await publish_quietly(self._redis, progress_event(self.run_id, percent, message))

    async def _persist_latest(self) -> None:
        if self._latest is None or self._latest == self._persisted:
            return
        self._persisted = self._latest
        self._last_persist_s = time.monotonic()
        percent, message = self._latest

        def store() -> None:
            with session_scope() as session:
                run_store.record_progress(
                    session=session, run_id=self.run_id, percent=percent, message=message
                )

        await asyncio.to_thread(store)
