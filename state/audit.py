"""Settings → Audit log (admins): who did what, when, to which object,
filtered by action, person, object type and days."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import reflex as rx

from app.db import in_session
from app.models.users import AuditEventPublic
from app.services import audit
from app.services.permissions import Permission
from state.auth import acting_principal, requires

PAGE_SIZE = 50
ALL = "all"


@dataclasses.dataclass
class AuditRow:
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: str
    ip: str


@dataclasses.dataclass(frozen=True)
class AuditFilters:
    """What the log is narrowed to; None is "any"."""

    action: str | None = None
    actor_email: str | None = None
    object_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


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


def _day(text: str) -> date | None:
    """A YYYY-MM-DD from a date input; ValueError for anything else."""
    return date.fromisoformat(text) if text else None


def parse_filters(form: dict[str, Any]) -> tuple[AuditFilters, dict[str, str]]:
    """(filters, field errors) from the filter form. Days are UTC and
    inclusive at both ends."""
    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    errors: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for name in ("from_day", "to_day"):
        try:
            days[name] = _day(text(name))
        except ValueError:
            errors[name] = "Use a date like 2026-12-03"
            days[name] = None
    first, last = days["from_day"], days["to_day"]
    if first and last and last < first:
        errors["to_day"] = "Must not be before the first day"
    action, object_type = text("action"), text("object_type")
    filters = AuditFilters(
        action=action if action and action != ALL else None,
        actor_email=text("actor_email") or None,
        object_type=object_type if object_type and object_type != ALL else None,
        since=datetime.combine(first, time(), UTC) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
    )
    return filters, errors


class AuditState(rx.State):
    events: list[AuditRow] = []
    filter_errors: dict[str, str] = {}
    has_more: bool = False
    loading: bool = True
    _filters: AuditFilters = AuditFilters()

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def load_audit(self) -> None:
        await self._load(before_id=None)

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def apply_filters(self, form: dict[str, Any]) -> None:
        filters, errors = parse_filters(form)
        self.filter_errors = errors
        if errors:
            return
        self._filters = filters
        await self._load(before_id=None)

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def load_older(self) -> None:
        await self._load(before_id=self.events[-1].id if self.events else None, append=True)

    async def _load(self, *, before_id: int | None, append: bool = False) -> None:
        self.loading = True
        found = await in_session(
            audit.list_events, actor=acting_principal(), before_id=before_id,
            limit=PAGE_SIZE + 1, **dataclasses.asdict(self._filters),
        )
        rows = [_row(event) for event in found[:PAGE_SIZE]]
        self.events = [*self.events, *rows] if append else rows
        self.has_more = len(found) > PAGE_SIZE
        self.loading = False
