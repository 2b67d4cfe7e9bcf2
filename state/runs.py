"""The live list of recent runs shown on the dashboard, and the Run demo action."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import reflex as rx
import structlog

from app.db import session_scope
from app.errors import TaskdeckError
from app.models.runs import FINAL_STATUSES, RunPublic, RunTrigger
from app.queue import get_queue_or_none
from app.services import runs as run_store
from app.services.dispatch import launch_run
from app.services.events import Event
from app.services.permissions import Permission
from state.auth import requires
from state.live import hub

RECENT_RUNS = 20
DEMO_PARAMS = {"steps": 10, "step_delay_s": 0.3}

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class RunRow:
    """What a run list shows of a run (client-visible: nothing secret here)."""

    id: int
    kind: str
    status: str
    percent: float
    message: str
    created_at: str
    error: str


def to_row(run: RunPublic) -> RunRow:
    return RunRow(
        id=run.id,
        kind=run.kind,
        status=run.status.value,
        percent=round(run.progress.percent, 1),
        message=run.progress.message,
        created_at=run.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        error=f"{run.error.type}: {run.error.message}" if run.error else "",
    )


def _load_recent() -> tuple[list[RunPublic], dict[str, int]]:
    with session_scope() as session:
        return (
            run_store.list_recent_runs(session=session, limit=RECENT_RUNS),
            run_store.count_runs_by_status(session=session),
        )


class RunsState(rx.State):
    runs: list[RunRow] = []
    counts: dict[str, int] = {}
    loading: bool = True
    load_error: str = ""
    live: bool = True
    launching: bool = False
    # Newest event version seen per run, to drop stale events and spot gaps.
    _versions: dict[int, int] = {}

    @rx.var
    def active_count(self) -> int:
        return sum(1 for row in self.runs if row.status not in _FINAL)

    @rx.event
    @requires(Permission.READ)
    async def load_runs(self) -> None:
        """Load from the database, then follow live events."""
        hub.watch(self.router.session.client_token, ["run:*"], RunsState)
        self.live = hub.connected
        await self._reload()

    @rx.event
    @requires(Permission.RUN)
    async def run_demo(self):  # type: ignore[no-untyped-def]
        if self.launching:
            return
        self.launching = True
        yield
        try:
            run = await launch_run(
                queue=await get_queue_or_none(),
                kind="demo",
                params=DEMO_PARAMS,
                trigger=RunTrigger.MANUAL,
            )
        except TaskdeckError as error:
            yield rx.toast.error(error.message)
            return
        finally:
            self.launching = False  # never a stuck button, whatever happened
        self._upsert(to_row(run))
        self.counts = {**self.counts, "queued": self.counts.get("queued", 0) + 1}
        if not hub.connected:
            yield rx.toast.warning("Run queued; live updates are paused until Redis is back")

    async def _reload(self) -> None:
        try:
            runs, counts = await asyncio.to_thread(_load_recent)
        except TaskdeckError as error:
            self.load_error = error.message
            self.loading = False
            return
        self.runs = [to_row(run) for run in runs]
        self.counts = counts
        self._versions = {}
        self.load_error = ""
        self.loading = False

    async def _on_live_status(self, connected: bool) -> None:
        self.live = connected
        if connected:
            await self._reload()

    async def _apply_live_events(self, events: Sequence[Event]) -> None:
        needs_reload = False
        for event in events:
            run_id = int(event.id)
            last = self._versions.get(run_id)
            if last is not None and event.version <= last:
                continue
            if last is not None and event.version > last + 1:
                needs_reload = True
            self._versions[run_id] = event.version
            if event.type in ("created", "status"):
                self._upsert(to_row(RunPublic.model_validate(event.data["run"])))
            elif event.type == "progress":
                self._set_progress(run_id, **event.data["progress"])
            if "counts" in event.data:
                self.counts = dict(event.data["counts"])
        if needs_reload:
            await self._reload()

    def _upsert(self, row: RunRow) -> None:
        rows = list(self.runs)
        for index, existing in enumerate(rows):
            if existing.id == row.id:
                # A finished run never goes back to an active status.
                if existing.status in _FINAL and row.status not in _FINAL:
                    return
                rows[index] = row
                self.runs = rows
                return
        self.runs = sorted([row, *rows], key=lambda r: r.id, reverse=True)[:RECENT_RUNS]

    def _set_progress(self, run_id: int, percent: float, message: str) -> None:
        rows = list(self.runs)
        for index, row in enumerate(rows):
            if row.id == run_id and row.status not in _FINAL:
                rows[index] = dataclasses.replace(row, percent=round(percent, 1), message=message)
                self.runs = rows
                return


_FINAL = frozenset(status.value for status in FINAL_STATUSES)


