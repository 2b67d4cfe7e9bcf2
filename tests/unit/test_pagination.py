"""Cursors: what encode gives, decode takes back; anything else is refused
with a clear error naming the field."""

from __future__ import annotations

import base64

import pytest

from app.api.pagination import decode_cursor, encode_cursor, page_of
from app.errors import ValidationFailed


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    key = ("zoë/ops?&=", 41)
    cursor = encode_cursor(key)
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)
    assert decode_cursor(cursor, (str, int)) == key


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",  # not base64
        base64.urlsafe_b64encode(b"not json").decode(),
        encode_cursor(["only one"]),  # wrong length
        encode_cursor([1, "swapped"]),  # wrong types
        encode_cursor([True, 1]),  # a bool is not a str
        encode_cursor(["name", True]),  # nor an int
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),  # not a list
        "A" * 1001,  # too long to be ours
    ],
)
def test_a_cursor_not_made_here_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode_cursor(cursor, (str, int))
    assert raised.value.details == {"fields": {"cursor": "Not a cursor from this list"}}


def test_page_of_gives_a_cursor_only_when_more_rows_follow() -> None:
    rows = [("a", 1), ("b", 2), ("c", 3)]
    assert page_of(rows[:2], 2, lambda row: row) == (rows[:2], None)
    served, cursor = page_of(rows, 2, lambda row: row)
    assert served == rows[:2]
    assert cursor is not None and decode_cursor(cursor, (str, int)) == ("b", 2)
