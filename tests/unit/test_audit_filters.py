"""The audit log's filter form: days are UTC and inclusive, bad days are
named, "all" means any."""

from __future__ import annotations

from datetime import UTC, datetime

from state.audit import AuditFilters, parse_filters


def test_empty_form_filters_nothing() -> None:
    assert parse_filters({}) == (AuditFilters(), {})
    assert parse_filters({"action": "all", "object_type": "all", "actor_email": " "}) == (
        AuditFilters(),
        {},
    )


def test_days_cover_the_whole_last_day() -> None:
    filters, errors = parse_filters(
        {"action": "user.create", "object_type": "user", "actor_email": "Ada@Example.com ",
         "from_day": "2026-12-01", "to_day": "2026-12-03"}
    )
    assert errors == {}
    assert filters == AuditFilters(
        action="user.create",
        actor_email="Ada@Example.com",
        object_type="user",
        since=datetime(2026, 12, 1, tzinfo=UTC),
        until=datetime(2026, 12, 4, tzinfo=UTC),
    )


def test_bad_or_reversed_days_are_named() -> None:
    _, errors = parse_filters({"from_day": "yesterday"})
    assert set(errors) == {"from_day"}
    _, errors = parse_filters({"from_day": "2026-12-03", "to_day": "2026-12-01"})
    assert set(errors) == {"to_day"}
