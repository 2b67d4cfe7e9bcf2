"""The session cookie helpers: reading the cookie, and where a sign-in may
send the browser next (never off the site)."""

from __future__ import annotations

import pytest

from app.session_cookie import SESSION_COOKIE, safe_next, session_token_from_header


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs", "/runs"),
        ("/profiles/3?tab=x", "/profiles/3?tab=x"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/%5Cevil.example", "/%5Cevil.example"),  # stays a path: %5C is not decoded
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\nb", "/"),
        ("/a\tb", "/"),
        ("runs", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next_keeps_the_browser_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_session_token_is_read_from_the_cookie_header() -> None:
    assert session_token_from_header(f"a=1; {SESSION_COOKIE}=tok123; b=2") == "tok123"
    assert session_token_from_header("a=1") is None
    assert session_token_from_header("") is None
    assert session_token_from_header(None) is None
    assert session_token_from_header('bad="unterminated') is None
