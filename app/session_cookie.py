"""The browser session cookie: its name and how to read it from a Cookie header.

It is set only by an HTTP response (HttpOnly, SameSite=Lax, Secure over
https); Reflex states read it from the websocket handshake headers.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

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


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of this site. `/runs` yes;
    `//evil.example`, `/\\evil.example` (browsers read `\\` as `/`),
    `https://…` and anything with control characters no."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def post_form_script(path: str, fields: dict[str, str]) -> str:
    """JavaScript that navigates to `path` by POSTing `fields` as a form: the
    /auth routes take only that, because browsers send an Origin header
    with a POST (over plain http too) that pages cannot forge."""
    return (
        "(() => { const form = document.createElement('form'); form.method = 'post';"
        f" form.action = {json.dumps(path)};"
        f" for (const [name, value] of Object.entries({json.dumps(fields)})) {{"
        " const input = document.createElement('input'); input.type = 'hidden';"
        " input.name = name; input.value = value; form.appendChild(input); }"
        " document.body.appendChild(form); form.submit(); })()"
    )
