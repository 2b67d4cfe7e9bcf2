"""HTTP routes that set and clear the HttpOnly session cookie (under /auth,
outside the token-protected /api/v1)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from app.queue import get_queue_or_none
from app.services.sessions import SESSION_TTL_S
from app.services.sign_in_tickets import claim_ticket, redeem_ticket
from app.session_cookie import SESSION_COOKIE, safe_next

AUTH_PREFIX = "/auth"


def _is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


async def redeem(request: Request) -> RedirectResponse:
    ticket = request.query_params.get("t", "")
    token = redeem_ticket(ticket)
    if token is None or not await claim_ticket(await get_queue_or_none(), ticket):
        return RedirectResponse("/login?expired=1", status_code=303)
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def signed_out(request: Request) -> RedirectResponse:
    """Forget the cookie; the session itself was ended by the sign-out event."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def create_browser_session_app() -> Starlette:
    return Starlette(
        routes=[Route("/ticket", redeem, methods=["GET"]), Route("/signed-out", signed_out)]
    )
