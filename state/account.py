"""Settings → My account: change password, sign out everywhere."""

from __future__ import annotations

from typing import Any

import reflex as rx

from app.errors import TaskdeckError, ValidationFailed
from app.queue import get_queue_or_none
from app.services import auth as auth_service
from app.services.permissions import Permission, can
from state.auth import acting_principal, announce_ended_sessions, requires

PASSWORD_FORM_ID = "change-password"


class AccountState(rx.State):
    field_errors: dict[str, str] = {}

    @rx.event
    @requires(Permission.READ)
    async def change_password(self, form: dict[str, Any]) -> Any:
        principal, ip = acting_principal(), self.router.session.client_ip
        new = str(form.get("new_password", ""))[:2000]
        if new != str(form.get("confirm_password", ""))[:2000]:
            self.field_errors = {"confirm_password": "The two passwords differ"}
            return None

        try:
            ended = await auth_service.change_own_password(
                redis=await get_queue_or_none(),
                principal=principal,
                current=str(form.get("current_password", ""))[:2000],
                new=new,
                ip=ip,
            )
        except ValidationFailed as error:
            self.field_errors = dict(error.details.get("fields", {}))
            return None
        except TaskdeckError as error:
            self.field_errors = {"current_password": error.message}
            return None
        self.field_errors = {}
        await announce_ended_sessions(ended, "password_changed")
        return [
            rx.call_script(f"document.getElementById('{PASSWORD_FORM_ID}').reset()"),
            rx.toast.success("Password changed; your other sessions were signed out"),
        ]


class SettingsState(rx.State):
    @rx.event
    @requires(Permission.READ)
    async def open_settings(self) -> Any:
        """on_load of /settings: load what this role may see."""
        from state.audit import AuditState
        from state.tokens import TokensState
        from state.users import UsersState

        events: list[Any] = [TokensState.load_tokens]
        if can(acting_principal(), Permission.MANAGE_USERS):
            events += [UsersState.load_users, AuditState.load_audit]
        return events
