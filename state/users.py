"""Settings → Users (admins): create users, change roles, deactivate."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import reflex as rx

from app.db import in_session, session_scope
from app.errors import TaskdeckError, ValidationFailed
from app.models.users import UserPublic
from app.queue import get_queue_or_none
from app.services import users as user_store
from app.services.events import Event, publish_quietly
from app.services.permissions import Permission
from state.auth import acting_principal, announce_ended_sessions, requires, user_topic

MAX_FIELD_CHARS = 2000


@dataclasses.dataclass
class UserRow:
    id: int
    email: str
    display_name: str
    role: str
    is_active: bool
    last_login: str


def _row(user: UserPublic) -> UserRow:
    return UserRow(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role.value,
        is_active=user.is_active,
        last_login=user.last_login_at.strftime("%Y-%m-%d %H:%M UTC")
        if user.last_login_at
        else "never",
    )


async def _announce_user_change(user_id: int) -> None:
    await publish_quietly(
        await get_queue_or_none(),
        Event(topic=user_topic(user_id), type="changed", id=str(user_id), data={}),
    )


class UsersState(rx.State):
    users: list[UserRow] = []
    loading: bool = True
    field_errors: dict[str, str] = {}
    create_open: bool = False
    saving: bool = False

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def load_users(self) -> None:
        self.users = [_row(u) for u in await in_session(user_store.list_users, actor=acting_principal())]
        self.loading = False

    @rx.event
    def set_create_open(self, value: bool) -> None:
        self.create_open = value
        self.field_errors = {}

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def create_user(self, form: dict[str, Any]) -> Any:
        actor, ip = acting_principal(), self.router.session.client_ip

        def create() -> UserPublic:
            with session_scope() as session:
                return user_store.create_user(
                    session=session,
                    email=str(form.get("email", ""))[:MAX_FIELD_CHARS],
                    display_name=str(form.get("display_name", ""))[:MAX_FIELD_CHARS],
                    password=str(form.get("password", ""))[:MAX_FIELD_CHARS],
                    role=str(form.get("role", "")),
                    actor=actor,
                    ip=ip,
                )

        try:
            user = await asyncio.to_thread(create)
        except ValidationFailed as error:
            self.field_errors = dict(error.details.get("fields", {}))
            return None
        except TaskdeckError as error:
            self.field_errors = {"email": error.message}
            return None
        self.create_open = False
        self.field_errors = {}
        self.users = [_row(u) for u in await in_session(user_store.list_users, actor=acting_principal())]
        return rx.toast.success(f"Created {user.email} ({user.role.value})")

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def change_role(self, user_id: int, role: str) -> Any:
        actor, ip = acting_principal(), self.router.session.client_ip

        def change() -> UserPublic:
            with session_scope() as session:
                return user_store.set_role(
                    session=session, user_id=user_id, role=role, actor=actor, ip=ip
                )

        try:
            user = await asyncio.to_thread(change)
        except TaskdeckError as error:
            return rx.toast.error(error.message)
        await _announce_user_change(user_id)
        self.users = [_row(u) for u in await in_session(user_store.list_users, actor=acting_principal())]
        return rx.toast.success(f"{user.email} is now {user.role.value}")

    @rx.event
    @requires(Permission.MANAGE_USERS)
    async def set_active(self, user_id: int, active: bool) -> Any:
        actor, ip = acting_principal(), self.router.session.client_ip

        def change() -> tuple[UserPublic, list[int]]:
            with session_scope() as session:
                return user_store.set_active(
                    session=session, user_id=user_id, active=active, actor=actor, ip=ip
                )

        try:
            user, ended = await asyncio.to_thread(change)
        except TaskdeckError as error:
            return rx.toast.error(error.message)
        await announce_ended_sessions(ended, "deactivated")
        self.users = [_row(u) for u in await in_session(user_store.list_users, actor=acting_principal())]
        verb = "reactivated" if active else "deactivated; their sessions ended"
        return rx.toast.success(f"{user.email} {verb}")
