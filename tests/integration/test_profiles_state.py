"""The profile page's handlers run by Reflex's own event processor (an
in-memory state manager, a real database and Redis): a double-clicked
Clone makes one copy, a second Save while one runs is refused, both show
their busy state, a profile shows its skeleton until it is loaded, and a
required secret cannot be cleared from the form."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import reflex as rx
from reflex_base.event import Event
from reflex_base.event.processor.base_state_processor import BaseStateEventProcessor

from app.db import session_scope
from app.models.profiles import ProfileInput
from app.models.users import Role
from app.services import audit
from app.services import profiles as profile_store
from app.services import users as user_store
from app.services.sessions import create_session
from app.session_cookie import SESSION_COOKIE
from state.profiles import ProfileState
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

TOKEN = "tab-1"
STATE = ProfileState.get_full_name()


class Browser:
    """Stands in for the websocket: records what the server sends the tab."""

    def __init__(self) -> None:
        self.deltas: list[dict[str, Any]] = []
        self.events: list[Any] = []

    async def emit_update(self, update: Any, token: str) -> None:
        if update.delta:
            self.deltas.append(update.delta.get(STATE, {}))
        self.events += update.events or []

    def values(self, var: str) -> list[Any]:
        return [delta[key] for delta in self.deltas for key in delta if key.startswith(var + "_")]


@pytest.fixture
def cookie(taskdeck: Path) -> str:
    with session_scope() as session:
        user = user_store.create_user(
            session=session, email="op@example.com", display_name="Op",
            password="a long password 123", role=Role.OPERATOR, actor=None,
        )
        token, _ = create_session(session=session, user_id=user.id, ip=None, user_agent=None)
    return f"{SESSION_COOKIE}={token}"


@pytest.fixture
async def tab(
    reflex_app: rx.App, cookie: str
) -> AsyncIterator[tuple[Browser, Callable[..., Any]]]:
    browser = Browser()
    processor = BaseStateEventProcessor().configure(event_namespace=browser)  # type: ignore[arg-type]

    async def send(handler: str, profile_id: int, **payload: Any) -> Any:
        router_data = {
            "pathname": "/profiles/[profile_id]", "asPath": f"/profiles/{profile_id}",
            "query": {"profile_id": str(profile_id)}, "headers": {"cookie": cookie},
            "ip": "192.0.2.7", "token": TOKEN, "sid": "sid-1",
        }
        return await processor.enqueue(
            TOKEN, Event(name=f"{STATE}.{handler}", router_data=router_data, payload=payload)
        )

    async with processor:
        yield browser, send


def _create(name: str = "Billing") -> int:
    with session_scope() as session:
        return profile_store.create_profile(
            session=session, actor=None,
            data=ProfileInput(name=name, base_url="https://api.example.com",
                              auth={"kind": "bearer", "token": "tok-Secret-123456"}),
        ).id


def _names() -> list[str]:
    with session_scope() as session:
        return [p.name for p in profile_store.list_profiles(session=session)]


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_profile_shows_its_skeleton_until_it_is_loaded(tab: Any) -> None:
    browser, send = tab
    first, second = _create("First"), _create("Second")

    await (await send("load_profile", first))
    browser.deltas.clear()
    await (await send("load_profile", second))  # e.g. the redirect after a clone

    assert browser.values("loading") == [True, False]
    skeleton = browser.deltas[0]  # sent before the profile is read
    assert not any(key.startswith("row_") for key in skeleton)
    assert browser.values("row")[-1].name == "Second"


async def test_a_double_clicked_clone_makes_one_copy(tab: Any) -> None:
    browser, send = tab
    profile_id = _create()
    await (await send("load_profile", profile_id))

    clicks = [await send("clone_profile", profile_id) for _ in range(2)]
    await asyncio.gather(*clicks)
    await _until(lambda: len(_names()) >= 2)
    await asyncio.sleep(0.5)  # time for a second copy, if one were coming

    assert sorted(_names()) == ["Billing", "Billing (copy)"]
    assert True in browser.values("cloning")  # the button spun and was disabled
    with session_scope() as session:
        (event,) = audit.list_events(session=session, actor=AUDITOR, action=profile_store.PROFILE_CLONE)
    assert event.ip == "192.0.2.7"


async def test_a_second_save_while_one_runs_is_refused(
    tab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser, send = tab
    profile_id = _create()
    await (await send("load_profile", profile_id))
    saves: list[str] = []
    real_update = profile_store.update_profile

    def slow_update(**kwargs: Any) -> Any:  # the real save, taking its time
        saves.append(kwargs["data"].description)
        time.sleep(0.5)
        return real_update(**kwargs)

    monkeypatch.setattr(profile_store, "update_profile", slow_update)
    form = {"name": "Billing", "base_url": "https://api.example.com", "description": "new",
            "timeout_s": "30"}

    clicks = [await send("save_profile", profile_id, form=form) for _ in range(2)]
    await asyncio.gather(*clicks)
    await _until(lambda: browser.values("saving")[-1:] == [False])

    assert saves == ["new"]
    assert browser.values("saving").count(True) == 1  # one save, shown busy
    assert browser.values("saving")[-2:] == [True, False]
    with session_scope() as session:
        assert profile_store.get_profile(session=session, profile_id=profile_id).description == "new"


async def test_clearing_a_required_secret_is_refused_on_its_field(tab: Any) -> None:
    browser, send = tab
    profile_id = _create()
    await (await send("load_profile", profile_id))
    form = {"name": "Billing", "base_url": "https://api.example.com", "timeout_s": "30",
            "clear_secret_token": "on"}

    await (await send("save_profile", profile_id, form=form))
    await _until(lambda: browser.values("saving")[-1:] == [False])

    assert "cannot be cleared" in browser.values("errors")[-1]["secret_token"]
    with session_scope() as session:
        resolved = profile_store.resolve_profile(session=session, profile_id=profile_id)
    assert resolved.auth["token"] == "tok-Secret-123456"
