"""Sign-in and first-run set-up. Passwords arrive in the form event and are
never stored in a state var; the new session reaches the browser as an
HttpOnly cookie through a one-time ticket (see app/services/sign_in_tickets.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from app.db import session_scope
from app.errors import TaskdeckError, ValidationFailed
from app.queue import get_queue_or_none
from app.services import auth as auth_service
from app.services import users as user_store
from app.services.sign_in_tickets import issue_ticket
from app.session_cookie import post_form_script, safe_next
from state.auth import count_users_now, principal_of

MAX_FIELD_CHARS = 2000


def _field(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else ""


def _go_with_ticket(session_token: str, next_path: str) -> Any:
    # A full page load: the new websocket then carries the cookie.
    fields = {"t": issue_ticket(session_token), "next": next_path}
    return rx.call_script(post_form_script("/auth/ticket", fields))


class SignInState(rx.State):
    error: str = ""
    submitting: bool = False

    @rx.var
    def next_path(self) -> str:
        return safe_next(self.router.url.query_parameters.get("next", "/"))

    @rx.var
    def expired_ticket(self) -> bool:
        return self.router.url.query_parameters.get("expired") == "1"

    @rx.event
    async def open_sign_in(self) -> Any:
        """on_load of /login: first run goes to set-up, a signed-in user home."""
        self.error = ""
        self.submitting = False
        if await asyncio.to_thread(count_users_now) == 0:
            return rx.redirect("/setup")
        if await principal_of(self) is not None:
            return rx.redirect(self.next_path)
        return None

    @rx.event
    async def sign_in(self, form: dict[str, Any]):  # type: ignore[no-untyped-def]
        if self.submitting:
            return
        self.submitting = True
        self.error = ""
        yield
        try:
            result = await auth_service.sign_in(
                redis=await get_queue_or_none(),
                email=_field(form, "email"),
                password=_field(form, "password"),
                ip=self.router.session.client_ip,
                user_agent=self.router.headers.user_agent,
            )
        except TaskdeckError as error:
            self.error = error.message
            return
        finally:
            self.submitting = False
        yield _go_with_ticket(result.session_token, self.next_path)


class SetupState(rx.State):
    """The one-time "create the admin account" page."""

    field_errors: dict[str, str] = {}
    error: str = ""
    submitting: bool = False

    @rx.event
    async def open_setup(self) -> Any:
        self.field_errors = {}
        self.error = ""
        self.submitting = False
        if await asyncio.to_thread(count_users_now) > 0:
            return rx.redirect("/login")
        return None

    @rx.event
    async def create_admin(self, form: dict[str, Any]):  # type: ignore[no-untyped-def]
        if self.submitting:
            return
        email, password = _field(form, "email"), _field(form, "password")
        if password != _field(form, "confirm_password"):
            self.field_errors = {"confirm_password": "The two passwords differ"}
            return
        self.submitting = True
        self.field_errors = {}
        self.error = ""
        ip = self.router.session.client_ip
        yield

        def create() -> None:
            with session_scope() as session:
                user_store.create_first_admin(
                    session=session,
                    email=email,
                    display_name=_field(form, "display_name"),
                    password=password,
                    ip=ip,
                )

        try:
            await asyncio.to_thread(create)
            result = await auth_service.sign_in(
                redis=await get_queue_or_none(),
                email=email,
                password=password,
                ip=self.router.session.client_ip,
                user_agent=self.router.headers.user_agent,
            )
        except ValidationFailed as error:
            self.field_errors = dict(error.details.get("fields", {}))
            self.submitting = False
            return
        except TaskdeckError as error:
            self.error = error.message
            self.submitting = False
            return
        yield _go_with_ticket(result.session_token, "/")
