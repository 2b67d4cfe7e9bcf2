"""The live-update hub's routing: which client gets which event, and that
clients whose socket is gone are forgotten."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.services.events import Event
from state.auth import AuthState
from state.live import LiveHub
from state.live import hub as app_hub
from state.profiles import ProfileState
from state.runs import RunsState


def _event(topic: str) -> Event:
    return Event(topic=topic, type="status", id=topic.split(":")[1], data={})


def _inbox(hub: LiveHub) -> dict[str, list[str]]:
    return {token: [e.topic for e in events] for (token, _), events in hub._inbox.items()}


def test_events_reach_exact_and_prefix_watchers_only() -> None:
    hub = LiveHub()
    hub.watch("tab-a", ["run:*"], RunsState)
    hub.watch("tab-b", ["profile:7"], ProfileState)

    for topic in ("run:1", "profile:7", "profile:8", "session:3"):
        hub.dispatch(_event(topic))

    assert _inbox(hub) == {"tab-a": ["run:1"], "tab-b": ["profile:7"]}


def test_unwatch_one_topic_or_all() -> None:
    hub = LiveHub()
    hub.watch("tab", ["profile:1", "run:*"], RunsState)
    hub.unwatch("tab", ["profile:1"])
    hub.dispatch(_event("profile:1"))
    assert _inbox(hub) == {}
    hub.unwatch("tab")
    hub.dispatch(_event("run:5"))
    assert _inbox(hub) == {} and hub.watcher_count() == 0


def test_sweep_forgets_clients_whose_socket_is_gone() -> None:
    hub = LiveHub()
    app: Any = SimpleNamespace(event_namespace=SimpleNamespace(token_to_sid={"open": "sid-1"}))
    hub.bind(app)
    hub.watch("open", ["run:*"], RunsState)
    hub.watch("closed", ["run:*", "profile:2"], RunsState)

    assert hub.sweep() == 1
    assert hub.watcher_count() == 1
    hub.dispatch(_event("run:9"))
    assert list(_inbox(hub)) == ["open"]


def test_an_ended_session_drops_the_tab_from_every_topic() -> None:
    """Until the tab leaves, or if a hand-made client never does, no live
    data reaches a tab whose session ended."""

    app_hub.watch("ended-tab", ["run:*", "profile:*", "session:9"], RunsState)
    app_hub.watch("other-tab", ["run:*"], RunsState)
    tab = SimpleNamespace(
        session_ended=False,
        router=SimpleNamespace(session=SimpleNamespace(client_token="ended-tab")),
    )
    try:
        AuthState._end_session(tab)  # type: ignore[arg-type]
        app_hub.dispatch(_event("run:3"))
        assert tab.session_ended is True
        assert _inbox(app_hub) == {"other-tab": ["run:3"]}
    finally:
        app_hub.unwatch("other-tab")
        app_hub._inbox.clear()
