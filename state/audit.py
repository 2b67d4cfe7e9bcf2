"""Settings → Audit log (admins): who did what, when, to which object."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import reflex as rx

from app.db import session_scope
from app.models.users import AuditEventPublic
from app.services import audit
from app.services.permissions import Permission
from state.auth import requires

PAGE_SIZE = 50


@dataclasses.dataclass
class AuditRow:
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: str
    ip: str


def _row(event: AuditEventPublic) -> AuditRow:
    return AuditRow(
        id=event.id,
        at=event.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        actor=event.actor_email or "—",
        action=event.action,
        target=f"{event.object_type} {event.object_id}" if event.object_type else "",
        details=json.dumps(event.details, sort_keys=True) if event.details else "",
        ip=event.ip or "",
    )


def _read(action: str, before_id: int | None) -> list[AuditEventPublic]:
    with session_scope() as session:
        return audit.list_events(
            session=session, action=action or None, before_id=before_id, limit=PAGE_SIZE + 1
        )


class AuditState(rx.State):
    events: list[AuditRow] = []
    action_filter: str = ""
    has_more: bool = False
    loading: bool = True

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def load_audit(self) -> None:
        await self._load(before_id=None)

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def filter_action(self, action: str) -> None:
        self.action_filter = "" if action == "all" else action
        await self._load(before_id=None)

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def load_older(self) -> None:
        await self._load(before_id=self.events[-1].id if self.events else None, append=True)

    async def _load(self, *, before_id: int | None, append: bool = False) -> None:
        self.loading = True
        found = await asyncio.to_thread(_read, self.action_filter, before_id)
        rows = [_row(event) for event in found[:PAGE_SIZE]]
        self.events = [*self.events, *rows] if append else rows
        self.has_more = len(found) > PAGE_SIZE
        self.loading = False
