"""Every Reflex event handler that reads or changes data checks the session
and the role on the server: hidden buttons are not the protection. The
handlers are found by walking the app's state classes, so a new handler
without @requires fails here until it gets one (or a reason below)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import reflex as rx

import state
from app.db import session_scope
from app.models.users import Role
from app.services import users as user_store
from app.services.permissions import ROLE_PERMISSIONS, Permission
from app.services.sessions import create_session
from app.session_cookie import SESSION_COOKIE

pytestmark = pytest.mark.integration

# Handlers anyone may call, and why that is safe.
PUBLIC = {
    ("AuthState", "check_session"): "resolves the session itself",
    ("AuthState", "sign_out"): "ends only the caller's own session",
    ("SignInState", "open_sign_in"): "the sign-in page",
    ("SignInState", "sign_in"): "checks the password, rate-limited",
    ("SetupState", "open_setup"): "the first-run page",
    ("SetupState", "create_admin"): "refused once any user exists",
    ("ProfilesState", "set_create_open"): "opens a dialog; no data",
    ("ProfilesState", "set_create_kind"): "picks a form; no data",
    ("ProfileState", "set_kind"): "picks a form; no data",
    ("TokensState", "set_create_open"): "opens a dialog; no data",
    ("UsersState", "set_create_open"): "opens a dialog; no data",
}


def _state_classes() -> Iterator[type[rx.State]]:
    for module in pkgutil.iter_modules(state.__path__):
        importlib.import_module(f"state.{module.name}")
    pending = list(rx.State.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("state."):
            yield cls


def _handlers() -> list[tuple[str, str, Any]]:
    found = []
    for cls in _state_classes():
        for name, handler in cls.event_handlers.items():
            if name != "setvar":  # only reaches set_* handlers, checked here too
                found.append((cls.__name__, name, handler.fn))
    return sorted(found, key=lambda item: item[:2])


def test_every_handler_checks_the_session_or_has_a_reason() -> None:
    handlers = _handlers()
    assert len(handlers) > 20
    unguarded = [
        (cls, name)
        for cls, name, fn in handlers
        if not hasattr(fn, "required_permission") and (cls, name) not in PUBLIC
    ]
    assert unguarded == []
    listed = {(cls, name) for cls, name, _ in handlers}
    assert set(PUBLIC) <= listed, "a public handler was renamed or removed"


def _tab_of(taskdeck: Path, role: Role) -> SimpleNamespace:
    """What a handler sees of a websocket signed in with `role`."""
    with session_scope() as session:
        user = user_store.create_user(
            session=session, email=f"{role.value}@example.com", display_name=role.value,
            password="a long password 123", role=role, actor=None,
        )
        token, _ = create_session(session=session, user_id=user.id, ip=None, user_agent=None)
    return SimpleNamespace(
        router=SimpleNamespace(
            headers=SimpleNamespace(cookie=f"{SESSION_COOKIE}={token}"),
            url=SimpleNamespace(path="/settings"),
            session=SimpleNamespace(client_ip="192.0.2.1", client_token="tab"),
        )
    )


async def _call(fn: Any, tab: SimpleNamespace) -> Any:
    """Call a guarded handler with made-up arguments. The tab has no state
    vars at all, so a handler body that ran would fail on them."""
    arguments = [{} for _ in list(inspect.signature(fn).parameters)[1:]]
    if inspect.isasyncgenfunction(fn):
        return [update async for update in fn(tab, *arguments)]
    return await fn(tab, *arguments)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
async def test_a_role_is_refused_every_handler_beyond_it(taskdeck: Path, role: Role) -> None:
    tab = _tab_of(taskdeck, role)
    beyond = [
        (cls, name, fn)
        for cls, name, fn in _handlers()
        if getattr(fn, "required_permission", None) not in (None, *ROLE_PERMISSIONS[role])
    ]
    assert beyond, "every role must have something it may not do"
    for cls, name, fn in beyond:
        answer = await _call(fn, tab)
        refusal = answer[0] if isinstance(answer, list) else answer
        assert refusal is not None, f"{cls}.{name} answered nothing"
        assert "may not do this" in str(refusal), f"{cls}.{name}: {refusal}"


async def test_without_a_session_every_guarded_handler_sends_to_sign_in(taskdeck: Path) -> None:
    tab = _tab_of(taskdeck, Role.ADMIN)
    tab.router.headers.cookie = f"{SESSION_COOKIE}=not-a-session"
    guarded = [(c, n, fn) for c, n, fn in _handlers() if hasattr(fn, "required_permission")]
    for cls, name, fn in guarded:
        answer = await _call(fn, tab)
        refusal = answer[0] if isinstance(answer, list) else answer
        assert "/login?next=/settings" in str(refusal), f"{cls}.{name}: {refusal}"
    assert {Permission.READ, Permission.EDIT, Permission.MANAGE_USERS} <= {
        fn.required_permission for _, _, fn in guarded
    }
