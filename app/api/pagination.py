"""Cursor pagination for list endpoints: `?limit=N&cursor=C`, answered with
`{"items": [...], "next_cursor": C | null}`.

A cursor is the sort key of the last item served, opaque to clients
(base64url JSON). Keyset paging stays correct while rows are added or
deleted between pages, and costs the same on page 1,000 as on page 1.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Query

from app.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 1000

Item = TypeVar("Item")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: tuple[Any, ...] | None


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this list gave out; start again without it",
        details={"fields": {"cursor": "Not a cursor from this list"}},
    )


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, shape: Sequence[type]) -> tuple[Any, ...]:
    """The key in `cursor`, whose items must have the types of `shape`."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    if not isinstance(key, list) or len(key) != len(shape):
        raise _bad_cursor()
    # bool is an int to Python, never a key here
    if any(type(value) is not kind for value, kind in zip(key, shape, strict=True)):
        raise _bad_cursor()
    return tuple(key)


def page_params(*shape: type) -> Callable[..., PageRequest]:
    """A FastAPI dependency reading `limit` and `cursor` for a list sorted by
    a key of these types."""

    def dependency(
        limit: int = Query(
            default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items on one page"
        ),
        cursor: str | None = Query(
            default=None, description="The next_cursor of the previous page"
        ),
    ) -> PageRequest:
        after = decode_cursor(cursor, shape) if cursor else None
        return PageRequest(limit=limit, after=after)

    return dependency


def page_of(
    rows: Sequence[Item], limit: int, key: Callable[[Item], Sequence[Any]]
) -> tuple[list[Item], str | None]:
    """The first `limit` of `rows` (fetched as limit + 1) and the cursor of
    the next page, None when there is none."""
    if len(rows) <= limit:
        return list(rows), None
    served = list(rows[:limit])
    return served, encode_cursor(key(served[-1]))
