"""The browser session cookie: its name and how to read it from a Cookie header.

It is set only by an HTTP response (HttpOnly, SameSite=Lax, Secure over
https); Reflex states read it from the websocket handshake headers.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

SESSION_COOKIE = "taskdeck_session"


def session_token_from_header(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel and morsel.value else None
