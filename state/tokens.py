"""Settings → API tokens: everyone manages their own; admins see everyone's."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import reflex as rx

from app.db import session_scope
from app.errors import TaskdeckError, ValidationFailed
from app.models.common import utc_now
from app.models.users import ApiTokenPublic, Principal
from app.services import api_tokens
from app.services.permissions import Permission, can
from state.auth import acting_principal, requires

NEW_TOKEN_FIELD = "new-api-token"
EXPIRY_CHOICES = {"never": None, "30 days": 30, "90 days": 90, "1 year": 365}


@dataclasses.dataclass
class TokenRow:
    id: int
    name: str
    owner_email: str
    prefix: str
    created: str
    last_used: str
    expires: str
    revoked: bool


def _when(value: Any, empty: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


def _row(token: ApiTokenPublic) -> TokenRow:
    return TokenRow(
        id=token.id,
        name=token.name,
        owner_email=token.owner_email,
        prefix=f"td_{token.token_prefix}…",
        created=_when(token.created_at, ""),
        last_used=_when(token.last_used_at, "never"),
        expires=_when(token.expires_at, "never"),
        revoked=token.revoked_at is not None,
    )


def _list_for(principal: Principal) -> list[ApiTokenPublic]:
    owner = None if can(principal, Permission.MANAGE_TOKENS) else principal.user_id
    with session_scope() as session:
        return api_tokens.list_tokens(session=session, actor=principal, owner_id=owner)


class TokensState(rx.State):
    rows: list[TokenRow] = []
    loading: bool = True
    name_error: str = ""
    create_open: bool = False
    # The new token itself is never kept in state (states are persisted):
    # it goes to the browser once, as an event that fills NEW_TOKEN_FIELD.
    just_created: bool = False

    @rx.event
    @requires(Permission.READ)
    async def load_tokens(self) -> None:
        self.rows = [_row(t) for t in await asyncio.to_thread(_list_for, acting_principal())]
        self.loading = False

    @rx.event
    def set_create_open(self, value: bool) -> None:
        self.create_open = value
        self.name_error = ""
        if not value:
            self.just_created = False

    @rx.event
    @requires(Permission.READ)
    async def create_token(self, form: dict[str, Any]):  # type: ignore[no-untyped-def]
        principal, ip = acting_principal(), self.router.session.client_ip
        choice = str(form.get("expiry") or "never")
        if choice not in EXPIRY_CHOICES:
            yield rx.toast.error(f"Choose an expiry: {', '.join(EXPIRY_CHOICES)}")
            return
        days = EXPIRY_CHOICES[choice]
        expires_at = utc_now() + timedelta(days=days) if days else None

        def create() -> str:
            with session_scope() as session:
                created = api_tokens.create_token(
                    session=session,
                    owner_id=principal.user_id,
                    name=str(form.get("name", ""))[:200],
                    expires_at=expires_at,
                    actor=principal,
                    ip=ip,
                )
                return created.token

        try:
            token = await asyncio.to_thread(create)
        except ValidationFailed as error:
            self.name_error = next(iter(error.details.get("fields", {}).values()), error.message)
            return
        except TaskdeckError as error:
            yield rx.toast.error(error.message)
            return
        self.name_error = ""
        self.just_created = True
        self.rows = [_row(t) for t in await asyncio.to_thread(_list_for, principal)]
        yield  # render the field first, then fill it
        yield rx.set_value(NEW_TOKEN_FIELD, token)

    @rx.event
    @requires(Permission.READ)
    async def revoke_token(self, token_id: int) -> Any:
        principal, ip = acting_principal(), self.router.session.client_ip

        def revoke() -> None:
            with session_scope() as session:
                api_tokens.revoke_token(session=session, token_id=token_id, actor=principal, ip=ip)

        try:
            await asyncio.to_thread(revoke)
        except TaskdeckError as error:
            return rx.toast.error(error.message)
        self.rows = [_row(t) for t in await asyncio.to_thread(_list_for, principal)]
        return rx.toast.success("Token revoked")
