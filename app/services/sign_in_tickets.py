"""One-time hand-over of a new session from the websocket to an HTTP route.

Sign-in happens in a Reflex event (over the websocket), but only an HTTP
response can set an HttpOnly cookie. The event returns a short-lived ticket
(the session token encrypted and signed under a purpose key); the browser
posts it to `/auth/ticket`, which sets the cookie and forgets the ticket.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from cryptography.fernet import InvalidToken

from app.crypto import fernet_for

TICKET_TTL_S = 30
_PURPOSE = "sign-in-ticket"
USED_KEY_PREFIX = "taskdeck:ticket-used:"


class TicketRedis(Protocol):
    async def set(self, name: str, value: Any, *, nx: bool, ex: int) -> Any: ...


def issue_ticket(session_token: str) -> str:
    return fernet_for(_PURPOSE).encrypt(session_token.encode()).decode()


async def claim_ticket(redis: TicketRedis | None, ticket: str) -> bool:
    """True the first time a ticket is used; False for a replay. Without
    Redis every use is allowed (the ticket still dies after TICKET_TTL_S)."""
    if redis is None:
        return True
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    try:
        return bool(await redis.set(USED_KEY_PREFIX + digest, 1, nx=True, ex=TICKET_TTL_S))
    except Exception:  # Redis down: the short TTL is the remaining guard
        return True


def redeem_ticket(ticket: str) -> str | None:
    """The session token inside a fresh, genuine ticket; None otherwise."""
    try:
        return fernet_for(_PURPOSE).decrypt(ticket.encode(), ttl=TICKET_TTL_S).decode()
    except (InvalidToken, ValueError):
        return None
