"""HTTP routes that set and clear the HttpOnly session cookie (under /auth,
outside the token-protected /api/v1).

Both answer with a tiny page that drops the tab's Reflex client token before
moving on: server-side state is kept per client token, so a tab that signs
out and in again (perhaps as someone else, on a shared computer) must start
with a fresh state, never the previous user's.
"""

from __future__ import annotations

import html
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from app.origins import is_allowed_origin
from app.queue import get_queue_or_none
from app.services.sessions import SESSION_TTL_S
from app.services.sign_in_tickets import claim_ticket, redeem_ticket
from app.session_cookie import SESSION_COOKIE, safe_next
from app.settings import get_settings

AUTH_PREFIX = "/auth"
# Where reflex keeps the client token (reflex/.templates/web/utils/state.js).
CLIENT_TOKEN_KEY = "token"

_LEAVE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Taskdeck</title></head>
<body><a id="next" href="{href}">Continue</a>
<script>sessionStorage.removeItem({key});location.replace({target});</script>
</body></html>
"""


def leave_to(path: str) -> HTMLResponse:
    """A page that forgets the tab's client token and goes to `path` (a
    local path: callers pass safe_next output or a constant)."""
    target = json.dumps(path).replace("<", "\\u003c")
    page = _LEAVE_PAGE.format(
        href=html.escape(path, quote=True), key=json.dumps(CLIENT_TOKEN_KEY), target=target
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def _is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _posted_by_our_page(request: Request) -> bool:
    """A form one of Taskdeck's own pages posted. Its Origin (sent by
    browsers with every POST, over plain http too, and not forgeable by a
    page) must be the origin the browser reached Taskdeck at, or an allowed
    one; Sec-Fetch-Site, which browsers send to https and localhost, must
    agree. This stops login CSRF: another site posting a ticket of the
    attacker's own session would sign the victim in as the attacker."""
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return False
    origin = request.headers.get("origin")
    allowed = get_settings().allowed_origins
    return bool(origin) and is_allowed_origin(origin, request.headers, allowed)


async def redeem(request: Request) -> HTMLResponse:
    if request.method != "POST" or not _posted_by_our_page(request):
        return leave_to("/login")  # changes nothing
    form = await request.form()
    ticket, next_path = str(form.get("t") or ""), str(form.get("next") or "")
    token = redeem_ticket(ticket)
    if token is None or not await claim_ticket(await get_queue_or_none(), ticket):
        return leave_to("/login?expired=1")
    response = leave_to(safe_next(next_path))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )
    return response


async def signed_out(request: Request) -> HTMLResponse:
    """Forget the cookie; the session itself was ended by the sign-out event.
    Only for a form our own pages posted (no logout CSRF)."""
    if request.method != "POST" or not _posted_by_our_page(request):
        return leave_to("/")
    response = leave_to("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def create_browser_session_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/ticket", redeem, methods=["GET", "POST"]),
            Route("/signed-out", signed_out, methods=["GET", "POST"]),
        ]
    )
