"""Settings handlers run by Reflex's own event processor (a real database):
an admin who is demoted keeps no admin-only list in the tab's state, which
the browser would receive whole at the next page load."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import reflex as rx
from reflex_base.event import Event
from reflex_base.event.processor.base_state_processor import BaseStateEventProcessor

from app.db import session_scope
from app.models.users import Role, UserPublic
from app.services import api_tokens
from app.services import users as user_store
from app.services.sessions import create_session
from app.session_cookie import SESSION_COOKIE
from state.audit import AuditState
from state.auth import AuthState
from state.tokens import TokensState
from state.users import UsersState
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

TOKEN = "tab-settings"


class Browser:
    """Stands in for the websocket: the latest value of every var it was sent."""

    def __init__(self) -> None:
        self.vars: dict[str, dict[str, Any]] = {}

    async def emit_update(self, update: Any, token: str) -> None:
        for state, delta in (update.delta or {}).items():
            self.vars.setdefault(state, {}).update(delta)

    def value(self, state: type[rx.State], var: str) -> Any:
        values = self.vars.get(state.get_full_name(), {})
        return next(value for key, value in values.items() if key.startswith(var + "_"))


def _user(email: str, role: Role) -> UserPublic:
    with session_scope() as session:
        return user_store.create_user(
            session=session, email=email, display_name=email.split("@")[0],
            password="a long password 123", role=role, actor=None,
        )


@pytest.fixture
def admin(taskdeck: Path) -> tuple[UserPublic, str]:
    _user("other-admin@example.com", Role.ADMIN)  # so that this one may be demoted
    user = _user("ada@example.com", Role.ADMIN)
    operator = _user("op@example.com", Role.OPERATOR)
    with session_scope() as session:
        token, _ = create_session(session=session, user_id=user.id, ip=None, user_agent=None)
        for owner in (user.id, operator.id):
            api_tokens.create_token(session=session, owner_id=owner, name="ci",
                                    expires_at=None, actor=None)
    return user, f"{SESSION_COOKIE}={token}"


@pytest.fixture
async def send(
    reflex_app: rx.App, admin: tuple[UserPublic, str]
) -> AsyncIterator[tuple[Browser, Callable[..., Any]]]:
    browser = Browser()
    processor = BaseStateEventProcessor().configure(event_namespace=browser)  # type: ignore[arg-type]

    async def fire(state: type[rx.State], handler: str, **payload: Any) -> None:
        router_data = {
            "pathname": "/settings", "asPath": "/settings", "query": {},
            "headers": {"cookie": admin[1]}, "ip": "192.0.2.7", "token": TOKEN, "sid": "sid-1",
        }
        name = f"{state.get_full_name()}.{handler}"
        future = await processor.enqueue(
            TOKEN, Event(name=name, router_data=router_data, payload=payload)
        )
        await future

    async with processor:
        yield browser, fire


async def test_a_demoted_admins_tab_forgets_the_admin_only_lists(
    admin: tuple[UserPublic, str], send: tuple[Browser, Callable[..., Any]]
) -> None:
    browser, fire = send
    await fire(AuthState, "check_session")
    await fire(UsersState, "load_users")
    await fire(AuditState, "load_audit")
    await fire(TokensState, "load_tokens")
    assert len(browser.value(UsersState, "users")) == 3
    assert browser.value(AuditState, "events")
    assert {row.owner_email for row in browser.value(TokensState, "rows")} == {
        "ada@example.com", "op@example.com"
    }

    with session_scope() as session:
        user_store.set_role(session=session, user_id=admin[0].id, role=Role.VIEWER, actor=AUDITOR)
    await fire(AuthState, "check_session")

    assert browser.value(AuthState, "user_role") == "viewer"
    assert browser.value(UsersState, "users") == []
    assert browser.value(AuditState, "events") == []
    assert {row.owner_email for row in browser.value(TokensState, "rows")} == {
        "ada@example.com"
    }
