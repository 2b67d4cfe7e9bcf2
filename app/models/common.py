"""Pieces shared by every table and public shape: UTC timestamps that stay
UTC, and public models that serialize times as ISO 8601 with a Z."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, field_serializer
from sqlalchemy import DateTime, TypeDecorator


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes; SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API promises (2026-12-03T18:00:00Z)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class PublicModel(BaseModel):
    """Base of the `*Public` shapes: times go out as ISO 8601 in UTC with a Z."""

    @field_serializer("*", when_used="json")
    def _times_as_iso(self, value: Any) -> Any:
        return iso_utc(value) if isinstance(value, datetime) else value
