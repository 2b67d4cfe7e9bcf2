"""Who is at the other end of a websocket, and what they may do.

The session cookie is HttpOnly: states read it from the handshake headers
and resolve it against the database on every protected event, so a session
ended elsewhere (sign-out, deactivation) stops working at once. Open tabs of
an ended session are also told live and sent to the sign-in page.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import reflex as rx
import structlog

from app.db import session_scope
from app.errors import TaskdeckError, Unauthenticated
from app.models.users import Principal
from app.queue import get_queue_or_none
from app.services import auth as auth_service
from app.services import users as user_store
from app.services.events import Event, publish_quietly
from app.services.permissions import Permission, can, require
from app.session_cookie import post_form_script, session_token_from_header
from state.live import hub

log = structlog.get_logger(__name__)

_acting: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "acting_principal", default=None
)


def session_topic(session_id: int) -> str:
    return f"session:{session_id}"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def ended_session_event(session_id: int, reason: str) -> Event:
    return Event(
        topic=session_topic(session_id), type="ended", id=str(session_id), data={"reason": reason}
    )


async def announce_ended_sessions(session_ids: Sequence[int], reason: str) -> None:
    """Tell every open tab of these sessions that they are over."""
    redis = await get_queue_or_none()
    for session_id in session_ids:
        await publish_quietly(redis, ended_session_event(session_id, reason))


async def principal_of(state: rx.State) -> Principal | None:
    token = session_token_from_header(state.router.headers.cookie)
    if token is None:
        return None
    return await asyncio.to_thread(auth_service.principal_for_session, token)


def acting_principal() -> Principal:
    """The principal of the event being handled (set by @requires)."""
    principal = _acting.get()
    if principal is None:
        raise Unauthenticated("Sign in to continue")
    return principal


def _refusal(state: rx.State, error: TaskdeckError) -> Any:
    if isinstance(error, Unauthenticated):
        return rx.redirect(f"/login?next={quote(state.router.url.path or '/')}")
    return rx.toast.error(error.message)


def _log_context(principal: Principal | None) -> Any:
    """Log lines of the handler say whose event it was."""
    user_id = principal.user_id if principal is not None else None
    return structlog.contextvars.bound_contextvars(user_id=user_id)


def requires(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Check the session and the role on the server before the handler runs.

    A refused event does nothing but answer with a redirect to sign-in (no
    session) or an error toast (a role that may not do it).
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def check(state: rx.State) -> tuple[Any, Principal | None]:
            try:
                principal = require(await principal_of(state), permission)
            except TaskdeckError as error:
                log.warning(
                    "event_refused", handler=handler.__name__, permission=permission.value,
                    reason=error.code,
                )
                return _refusal(state, error), None
            return None, principal

        if inspect.isasyncgenfunction(handler):

            @functools.wraps(handler)
            async def generator_wrapper(self: rx.State, *args: Any, **kwargs: Any) -> Any:
                refusal, principal = await check(self)
                if refusal is not None:
                    yield refusal
                    return
                reset = _acting.set(principal)
                try:
                    with _log_context(principal):
                        async for update in handler(self, *args, **kwargs):
                            yield update
                finally:
                    _acting.reset(reset)

            generator_wrapper.required_permission = permission  # type: ignore[attr-defined]
            return generator_wrapper

        @functools.wraps(handler)
        async def wrapper(self: rx.State, *args: Any, **kwargs: Any) -> Any:
            refusal, principal = await check(self)
            if refusal is not None:
                return refusal
            reset = _acting.set(principal)
            try:
                with _log_context(principal):
                    return await handler(self, *args, **kwargs)
            finally:
                _acting.reset(reset)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorate


def count_users_now() -> int:
    with session_scope() as session:
        return user_store.count_users(session=session)


class AuthState(rx.State):
    """The signed-in user as the page shows them (no secrets)."""

    user_email: str = ""
    user_name: str = ""
    user_role: str = ""
    session_ended: bool = False
    _session_id: int | None = None

    @rx.var
    def is_admin(self) -> bool:
        return self.user_role == "admin"

    @rx.var
    def can_run(self) -> bool:
        return self.user_role in ("admin", "operator")

    @rx.event
    async def check_session(self) -> Any:
        """on_load of every page that needs a user."""
        principal = await principal_of(self)
        if principal is None:
            if await asyncio.to_thread(count_users_now) == 0:
                return rx.redirect("/setup")
            return rx.redirect(f"/login?next={quote(self.router.url.path or '/')}")
        self.user_email = principal.email
        self.user_name = principal.display_name
        self.user_role = principal.role.value
        await self._forget_what_the_role_may_not_see(principal)
        self.session_ended = False
        self._session_id = principal.session_id
        topics = [user_topic(principal.user_id)]
        if principal.session_id is not None:
            topics.append(session_topic(principal.session_id))
        hub.watch(self.router.session.client_token, topics, AuthState)
        return None

    @rx.event
    async def sign_out(self) -> Any:
        token = session_token_from_header(self.router.headers.cookie)
        if token is not None:
            session_id = await auth_service.sign_out(
                token=token, ip=self.router.session.client_ip
            )
            if session_id is not None:
                await announce_ended_sessions([session_id], "signed_out")
        return rx.call_script(post_form_script("/auth/signed-out", {}))

    @rx.event
    @requires(Permission.READ)
    async def sign_out_everywhere(self) -> Any:
        ended = await auth_service.sign_out_everywhere(
            principal=acting_principal(), ip=self.router.session.client_ip
        )
        await announce_ended_sessions(ended, "signed_out_everywhere")
        return rx.call_script(post_form_script("/auth/signed-out", {}))

    async def _forget_what_the_role_may_not_see(self, principal: Principal) -> None:
        """A tab's states are sent whole to the browser at every page load:
        after a demotion, the lists only admins may read must go too (the
        settings page hides them, which is not the protection)."""
        from state.audit import AuditState  # these import this module
        from state.tokens import TokensState
        from state.users import UsersState

        if not can(principal, Permission.MANAGE_USERS):
            (await self.get_state(UsersState)).users = []
            (await self.get_state(AuditState)).events = []
        if not can(principal, Permission.MANAGE_TOKENS):
            tokens = await self.get_state(TokensState)
            tokens.rows = [row for row in tokens.rows if row.owner_email == principal.email]

    def _end_session(self) -> None:
        """The tab leaves (see _session_watch); until it does, or if a
        hand-made client never does, no live data reaches it."""
        self.session_ended = True
        hub.unwatch(self.router.session.client_token)

    async def _apply_live_events(self, events: Sequence[Event]) -> None:
        if any(event.type == "ended" for event in events):
            self._end_session()
        elif any(event.type == "changed" for event in events):
            # Role or name changed by an admin: show what the server now enforces.
            principal = await principal_of(self)
            if principal is None:
                self._end_session()
            else:
                self.user_name = principal.display_name
                self.user_role = principal.role.value
                await self._forget_what_the_role_may_not_see(principal)

    async def _on_live_status(self, connected: bool) -> None:
        return None
