"""One-time hand-over of a new session from the websocket to an HTTP route.

Sign-in happens in a Reflex event (over the websocket), but only an HTTP
response can set an HttpOnly cookie. The event returns a short-lived ticket
(the session token encrypted and signed under a purpose key); the browser
follows `/auth/ticket?t=…`, which sets the cookie and forgets the ticket.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken

from app.crypto import fernet_for

TICKET_TTL_S = 30
_PURPOSE = "sign-in-ticket"


def issue_ticket(session_token: str) -> str:
    return fernet_for(_PURPOSE).encrypt(session_token.encode()).decode()


def redeem_ticket(ticket: str) -> str | None:
    """The session token inside a fresh, genuine ticket; None otherwise."""
    try:
        return fernet_for(_PURPOSE).decrypt(ticket.encode(), ttl=TICKET_TTL_S).decode()
    except (InvalidToken, ValueError):
        return None
